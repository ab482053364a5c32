package protocol_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReconnect(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{3000, true}, {3002, true}, {3499, true},
		{3500, false}, {3505, false}, {3999, false},
		{1006, true}, {1001, true}, {1012, true},
		{1000, false}, {1008, false}, {1009, false},
	}
	for _, tt := range tests {
		if got := protocol.Reconnect(tt.code); got != tt.want {
			t.Errorf("Reconnect(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestCatalog(t *testing.T) {
	seen := map[protocol.CloseCode]bool{}
	for _, c := range protocol.Closes {
		if seen[c.Code] || c.Reason == "" || c.When == "" || c.Code < 3000 || c.Code > 3999 {
			t.Errorf("bad catalog entry %+v", c)
		}
		seen[c.Code] = true
		if c.Code.Reason() != c.Reason || len(c.Reason) > 123 {
			t.Errorf("code %d: reason %q", c.Code, c.Code.Reason())
		}
	}
}

func TestParseRoom(t *testing.T) {
	tests := []struct {
		room   string
		prefix string
		ok     bool
	}{
		{"user:alice", protocol.UserPrefix, true},
		{"conversation:42", protocol.ConversationPrefix, true},
		{"conversation:a.b-c_d@e", protocol.ConversationPrefix, true},
		{"conversation:", protocol.ConversationPrefix, false},
		{"conversation:a b", protocol.ConversationPrefix, false},
		{"conversation:" + strings.Repeat("x", 129), protocol.ConversationPrefix, false},
		{"lobby", "", false},
		{"user:{x}", protocol.UserPrefix, false},
	}
	for _, tt := range tests {
		t.Run(tt.room, func(t *testing.T) {
			prefix, _, ok := protocol.ParseRoom(tt.room)
			if ok != tt.ok || prefix != tt.prefix {
				t.Fatalf("ParseRoom(%q) = %q, %v; want %q, %v", tt.room, prefix, ok, tt.prefix, tt.ok)
			}
		})
	}
}
