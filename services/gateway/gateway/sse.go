package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/services/gateway/authn"
	"switchboard/services/gateway/connection"
	"switchboard/services/gateway/sse"
)

// serveSSE serves the fallback's event stream: a connection like a
// WebSocket one, whose frames go down the response. The token must come in
// the Authorization header.
func (g *Gateway) serveSSE(w http.ResponseWriter, r *http.Request) {
	if !g.admit() {
		http.Error(w, "the replica is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer g.conns.Done()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		http.Error(w, "the stream needs an Authorization: Bearer token", http.StatusUnauthorized)
		return
	}
	st, err := sse.Open(w, r, g.cfg.Conn.WriteTimeout)
	if err != nil {
		return
	}
	c := connection.New(st, &g.cfg.Conn, &g.deps)
	g.streams.Add(c.ID(), st, c.User)
	defer g.streams.Remove(c.ID())
	g.track(c, true)
	defer g.track(c, false)
	g.metrics.Fallback.Inc()
	defer g.metrics.Fallback.Dec()
	c.Serve(token) // on this goroutine: the response lives with it
}

type postError struct {
	Error protocol.Error `json:"error"`
}

// servePost hands one request of a fallback connection to it. The request
// needs a token of the connection's user; its answer comes down the
// stream.
func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code protocol.ErrorCode, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(postError{protocol.Error{Code: code, Message: msg}})
	}
	conn := r.PathValue("id")
	st, user, local := g.streams.Get(conn)
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	id, err := g.auth.Validate(r.Context(), token)
	switch {
	case errors.Is(err, authn.ErrUnavailable):
		fail(http.StatusServiceUnavailable, protocol.ErrUnavailable, "auth did not answer; retry later")
		return
	case err != nil || (local && id.User != user):
		fail(http.StatusUnauthorized, protocol.ErrBadToken, "the token does not belong to this connection's user")
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.cfg.Conn.RequestTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.Conn.MaxMessageBytes))
	if err != nil {
		fail(http.StatusRequestEntityTooLarge, protocol.ErrBadRequest, "the request exceeds the inbound limit")
		return
	}
	if !local {
		g.forward(w, r, conn, id.User, body, fail)
		return
	}
	deliver(w, st, body, fail)
}

func deliver(w http.ResponseWriter, st *sse.Stream, body []byte, fail func(int, protocol.ErrorCode, string)) {
	switch err := st.Deliver(body); {
	case errors.Is(err, sse.ErrBusy):
		fail(http.StatusTooManyRequests, protocol.ErrRateLimited, "too many requests waiting; slow down")
	case err != nil:
		fail(http.StatusNotFound, protocol.ErrNotMember, "the connection has ended")
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// forwarded is a request posted on another replica for a connection held
// here: which connection, whose token came with it, and the frame.
type forwarded struct {
	Conn  string          `json:"c"`
	User  string          `json:"u"`
	Frame json.RawMessage `json:"f"`
}

// forward hands a request for a connection of another replica to that
// replica, named by the connection id's prefix. Without a sticky load
// balancer, posts land on any replica. A request the holder cannot take
// (its queue full, the connection gone) is dropped there.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, conn, user string, body []byte, fail func(int, protocol.ErrorCode, string)) {
	node, _, ok := strings.Cut(conn, "-")
	if !ok || node == g.node || !json.Valid(body) {
		fail(http.StatusNotFound, protocol.ErrNotMember, "no replica holds this connection")
		return
	}
	payload, _ := json.Marshal(forwarded{Conn: conn, User: user, Frame: body})
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Conn.RequestTimeout)
	defer cancel()
	delivered, err := g.broker.Forward(ctx, node, payload)
	switch {
	case err != nil:
		fail(http.StatusServiceUnavailable, protocol.ErrUnavailable, "the broker did not answer; retry later")
	case !delivered:
		fail(http.StatusNotFound, protocol.ErrNotMember, "no replica holds this connection")
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// forwarded takes a request forwarded by another replica; it is the
// broker's ForwardHandler.
func (g *Gateway) forwarded(payload []byte) {
	var f forwarded
	if json.Unmarshal(payload, &f) != nil {
		return
	}
	if st, user, ok := g.streams.Get(f.Conn); ok && user == f.User {
		st.Deliver(f.Frame)
	}
}
