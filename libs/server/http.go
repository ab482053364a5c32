package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// ServeHTTP serves srv on lis until ctx is cancelled, then shuts it down,
// waiting up to grace for requests in flight before closing what is left.
// Hijacked connections (WebSockets) are the caller's to close.
func ServeHTTP(ctx context.Context, lis net.Listener, srv *http.Server, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewHTTPServer returns a server with the timeouts every service wants: a
// bounded header read and idle time, and a cap on header size.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
