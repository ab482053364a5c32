package wsconn_test

import (
	"net/http"
	"testing"

	"switchboard/services/gateway/wsconn"
)

// acceptServer upgrades and closes at once.
func acceptServer(t *testing.T, o wsconn.Options) *server {
	return startServer(t, o, func(_ *server, c *wsconn.Conn) { c.CloseNow() })
}

// del and set change a handshake's header.
func del(name string) func(http.Header) { return func(h http.Header) { h.Del(name) } }

func set(name, v string) func(http.Header) { return func(h http.Header) { h.Set(name, v) } }

func TestHandshakeRefused(t *testing.T) {
	tests := []struct {
		name   string
		change func(http.Header)
		want   int
	}{
		{"no Upgrade", del("Upgrade"), http.StatusBadRequest},
		{"Upgrade to h2c", set("Upgrade", "h2c"), http.StatusBadRequest},
		{"no Connection", del("Connection"), http.StatusBadRequest},
		{"Connection keep-alive", set("Connection", "keep-alive"), http.StatusBadRequest},
		{"no key", del("Sec-WebSocket-Key"), http.StatusBadRequest},
		{"key not base64", set("Sec-WebSocket-Key", "not base64 at all!!!"), http.StatusBadRequest},
		{"key of 15 bytes", set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA"), http.StatusBadRequest},
		{"key of 17 bytes", set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA="), http.StatusBadRequest},
		{"version 8", set("Sec-WebSocket-Version", "8"), http.StatusUpgradeRequired},
		{"no version", del("Sec-WebSocket-Version"), http.StatusUpgradeRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := acceptServer(t, wsconn.Options{})
			h := handshakeHeader()
			tt.change(h)

			_, resp := openRaw(t, s, h, nil)
			resp.Body.Close()

			if resp.StatusCode != tt.want {
				t.Fatalf("answered %s, want %d", resp.Status, tt.want)
			}
			v := resp.Header.Get("Sec-WebSocket-Version")
			if tt.want == http.StatusUpgradeRequired && v != "13" {
				t.Errorf("Sec-WebSocket-Version: %q, want 13", v)
			}
		})
	}
}

func TestHandshakeAccepted(t *testing.T) {
	tests := []struct {
		name   string
		change func(http.Header)
	}{
		{"as in RFC 6455", func(http.Header) {}},
		{"tokens in lists", set("Connection", "keep-alive, Upgrade")},
		{"Connection in lower case", set("Connection", "upgrade")},
		{"Upgrade in mixed case", set("Upgrade", "WebSocket")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := acceptServer(t, wsconn.Options{})
			h := handshakeHeader()
			tt.change(h)

			_, resp := openRaw(t, s, h, nil)

			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answered %s, want 101", resp.Status)
			}
			want := map[string]string{
				"Upgrade":              "websocket",
				"Connection":           "Upgrade",
				"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", // RFC 6455, section 1.3
			}
			for name, v := range want {
				if got := resp.Header.Get(name); got != v {
					t.Errorf("%s: %q, want %q", name, got, v)
				}
			}
		})
	}
}

func TestDeflateNegotiation(t *testing.T) {
	const answer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	tests := []struct {
		offer    string
		accepted bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; client_max_window_bits", true},
		{"permessage-deflate; client_max_window_bits=10", true},
		{`permessage-deflate; client_max_window_bits="8"`, true},
		{"permessage-deflate; server_max_window_bits=15", true},
		{"permessage-deflate; client_no_context_takeover; server_no_context_takeover", true},
		{"permessage-deflate;client_no_context_takeover", true},
		{"x-webkit-deflate-frame, permessage-deflate", true},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", true},

		{"permessage-deflate; server_max_window_bits=10", false},
		{"permessage-deflate; server_max_window_bits", false},
		{"permessage-deflate; client_max_window_bits=16", false},
		{"permessage-deflate; client_max_window_bits=7", false},
		{"permessage-deflate; unknown_parameter", false},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false},
		{"permessage-deflate; server_no_context_takeover=1", false},
		{"x-webkit-deflate-frame", false},
		{"deflate-frame", false},
		{"permessage-deflate-x", false},
	}
	for _, tt := range tests {
		t.Run(tt.offer, func(t *testing.T) {
			s := acceptServer(t, wsconn.Options{CompressionThreshold: 1})
			h := handshakeHeader()
			h.Set("Sec-WebSocket-Extensions", tt.offer)

			_, resp := openRaw(t, s, h, nil)

			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answered %s, want 101", resp.Status)
			}
			got := resp.Header.Values("Sec-WebSocket-Extensions")
			switch {
			case tt.accepted && (len(got) != 1 || got[0] != answer):
				t.Errorf("Sec-WebSocket-Extensions: %q, want [%q]", got, answer)
			case !tt.accepted && len(got) != 0:
				t.Errorf("Sec-WebSocket-Extensions: %q, want none", got)
			}
		})
	}
}

func TestDeflateOffWithoutThreshold(t *testing.T) {
	s := acceptServer(t, wsconn.Options{})
	h := handshakeHeader()
	h.Set("Sec-WebSocket-Extensions", "permessage-deflate")

	_, resp := openRaw(t, s, h, nil)

	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answered %s, want 101", resp.Status)
	}
	if got := resp.Header.Values("Sec-WebSocket-Extensions"); len(got) != 0 {
		t.Errorf("Sec-WebSocket-Extensions: %q, want none with a zero threshold", got)
	}
}
