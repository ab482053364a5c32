package gateway_test

import (
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
)

// Revocations made while the revocation stream was down are found by the
// recheck once it is back, and applied as streamed ones are: the revoked
// session's connection closes with the session-revoked code, the member
// whose access was revoked gets the left push, and the rest stays. While
// auth cannot answer the recheck, nothing is closed.
func TestRevocationsMissedDuringAnOutageAreRechecked(t *testing.T) {
	a := startAuth(t)
	r := startReplica(t, a, "", nil)
	a.Grant("alice", "c1")
	a.Grant("bob", "c1")
	revoked := dial(t, r, a.Issue("alice", "s-revoked", time.Hour))
	alice := dial(t, r, a.Issue("alice", "s-kept", time.Hour))
	bob := dial(t, r, a.Issue("bob", "s-bob", time.Hour))
	revoked.connected()
	alice.join("conversation:c1")
	bob.join("conversation:c1")

	a.SetWatchDown(true)
	a.DropSession("alice", "s-revoked")
	a.DropAccess("alice", "c1")
	a.SetDown(true) // the first rechecks fail
	a.SetWatchDown(false)
	poll(t, "the revocation stream back", func() bool { return a.Watchers() > 0 })
	if f := revoked.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
		t.Fatalf("closed while auth could not recheck: %v", f.Error)
	}

	a.SetDown(false)
	if got := revoked.closed(); got != int(protocol.CloseSessionRevoked) {
		t.Fatalf("close code %d, want %d", got, protocol.CloseSessionRevoked)
	}
	f := alice.expect("left", func(f protocol.Frame) bool { return f.Type == protocol.TypeLeft })
	if f.Room != "conversation:c1" || f.Reason != protocol.ReasonAccessRevoked {
		t.Fatalf("left push %+v, want conversation:c1 %s", f, protocol.ReasonAccessRevoked)
	}
	publishHTTP(t, r, "conversation:c1", `"after"`)
	bob.message("conversation:c1")
	if f := alice.call(protocol.Request{Type: protocol.TypePing}); f.Error != nil {
		t.Fatalf("the other session's connection: %v", f.Error)
	}
}
