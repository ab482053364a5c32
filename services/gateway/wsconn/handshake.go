package wsconn

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Options configure Upgrade.
type Options struct {
	// CompressionThreshold turns permessage-deflate on when above 0:
	// messages of at least this many bytes are sent compressed to clients
	// that offered it.
	CompressionThreshold int
	// Poller parks idle connections; nil: a waiting reader holds a
	// goroutine.
	Poller *Poller
	// HandshakeTimeout bounds writing the handshake's answer; 10 s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each later write, which fails with
	// os.ErrDeadlineExceeded after between half of it and the whole of
	// it; 0: unbounded.
	WriteTimeout time.Duration
}

// acceptGUID is the key suffix of RFC 6455, section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Upgrade answers a WebSocket opening handshake and takes over the
// connection. A request that is not a valid handshake is answered with
// an HTTP error (400, or 426 for another protocol version) and an error
// is returned.
func Upgrade(w http.ResponseWriter, r *http.Request, o Options) (*Conn, error) {
	key, err := checkHandshake(r)
	if err != nil {
		if errors.Is(err, errVersion) {
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, err.Error(), http.StatusUpgradeRequired)
		} else {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
		return nil, err
	}
	deflate := o.CompressionThreshold > 0 && offersDeflate(r.Header.Values("Sec-WebSocket-Extensions"))

	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "the connection cannot be taken over", http.StatusInternalServerError)
		return nil, http.ErrNotSupported
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("wsconn: hijack: %w", err)
	}
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
	}

	answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n"
	if deflate {
		answer += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	}
	answer += "\r\n"
	timeout := o.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write([]byte(answer)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("wsconn: write the handshake: %w", err)
	}
	nc.SetDeadline(time.Time{})

	c := newConn(nc, o, deflate)
	c.setEarly(early)
	return c, nil
}

var errVersion = errors.New("WebSocket version 13 required")

// checkHandshake validates the client's handshake and returns its key.
func checkHandshake(r *http.Request) (string, error) {
	switch {
	case r.Method != http.MethodGet:
		return "", errors.New("a WebSocket handshake is a GET")
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return "", errors.New("Connection: Upgrade missing")
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return "", errors.New("Upgrade: websocket missing")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "", errVersion
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", errors.New("Sec-WebSocket-Key is not 16 bytes in base64")
	}
	return key, nil
}

// headerHasToken reports whether a comma-separated header holds token,
// case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// offersDeflate reports whether one of the client's extension offers is a
// permessage-deflate the server can accept with no context takeover both
// ways. An offer that limits the server's window (server_max_window_bits
// below 15) cannot be honoured by compress/flate, whose window is 32 KiB,
// and is declined; so are offers with unknown or repeated parameters.
func offersDeflate(headers []string) bool {
	for _, h := range headers {
		for offer := range strings.SplitSeq(h, ",") {
			if acceptableDeflate(offer) {
				return true
			}
		}
	}
	return false
}

func acceptableDeflate(offer string) bool {
	params := strings.Split(offer, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return false
	}
	seen := map[string]bool{}
	for _, p := range params[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if seen[name] {
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return false
			}
		case "client_max_window_bits":
			// The server may answer without it; its inflater takes any window.
			if hasValue && !windowBits(value) {
				return false
			}
		case "server_max_window_bits":
			if value != "15" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func windowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
