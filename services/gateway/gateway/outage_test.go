package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/gateway"
)

// When auth or Redis does not answer, requests fail in time with
// "unavailable" and the connection stays usable.
func TestOutages(t *testing.T) {
	rs := redistest.Start(t)
	a := startAuth(t)
	r := startReplica(t, a, rs.URL(), func(c *gateway.Config) { c.Conn.RequestTimeout = 300 * time.Millisecond })
	a.Grant("alice", "c1")
	a.Grant("alice", "c2")
	c := dial(t, r, a.Issue("alice", "s1", time.Hour))
	c.join("conversation:c1")

	t.Run("auth down: join", func(t *testing.T) {
		a.SetDown(true)
		defer a.SetDown(false)
		if f := c.call(protocol.Request{Type: protocol.TypeJoin, Room: "conversation:c2"}); errCode(f) != protocol.ErrUnavailable {
			t.Fatalf("got %+v, want unavailable", f)
		}
	})
	t.Run("redis paused: publish", func(t *testing.T) {
		rs.Pause()
		defer rs.Resume()
		f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:c1", Data: json.RawMessage(`1`)})
		if errCode(f) != protocol.ErrUnavailable {
			t.Fatalf("client publish: %+v, want unavailable", f)
		}
		req, _ := http.NewRequest(http.MethodPost, r.http+"/v1/publish", strings.NewReader(`{"room":"user:alice","data":1}`))
		req.Header.Set("Authorization", "Bearer "+serviceCred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("api publish: %s, want 503", resp.Status)
		}
	})
	t.Run("usable afterwards", func(t *testing.T) {
		poll(t, "a publish after Redis is back", func() bool {
			f := c.call(protocol.Request{Type: protocol.TypePublish, Room: "conversation:c1", Data: json.RawMessage(`2`)})
			return f.Error == nil
		})
		c.join("conversation:c2")
	})
}
