package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// connBufferBytes sizes the read and write buffers of a WebSocket. net/http
// hands a hijacked connection 4 KiB for each, which dominate the memory of
// an idle connection; frames here are small, and a larger one bypasses the
// buffer anyway.
const connBufferBytes = 1 << 10

// smallBuffers wraps a ResponseWriter so that its Hijack returns buffers of
// connBufferBytes; the bytes the server had already read are kept.
type smallBuffers struct {
	http.ResponseWriter
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n == 0 {
		return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, connBufferBytes),
			bufio.NewWriterSize(conn, connBufferBytes)), nil
	}
	// Frames the client sent right after its handshake are already read:
	// they must sit in the new reader's buffer, where the WebSocket
	// library looks for them (it replaces the reader's source).
	early, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, connBufferBytes))
	if _, err := br.Peek(n); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connBufferBytes)), nil
}
