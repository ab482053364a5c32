package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Opcodes of RFC 6455, section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Bits of a frame's first two bytes.
const (
	bitFin  = 0x80
	bitRsv1 = 0x40 // set on the first frame of a compressed message
	bitRsvX = 0x30 // RSV2 and RSV3: no extension here defines them
	bitMask = 0x80
)

// maxControl is the longest payload a control frame may carry.
const maxControl = 125

// maxHeader is the longest frame header: 2 bytes, 8 of extended length
// and 4 of mask.
const maxHeader = 14

// Errors of ReadMessage besides the connection's own.
var (
	// ErrTooBig: the message is longer than the limit given to
	// ReadMessage; its payload was not read.
	ErrTooBig = errors.New("wsconn: message longer than the limit")
	// ErrClosed: the connection was closed here.
	ErrClosed = errors.New("wsconn: connection closed")
	// ErrNoMessage: ReadMessage answered control frames and nothing of a
	// message is buffered (the caller parks rather than wait in a read),
	// or answered a run of them (the caller counts it against its rate
	// limit).
	ErrNoMessage = errors.New("wsconn: no message buffered")
)

// ProtocolError is a violation of RFC 6455 by the client. The caller
// closes the connection; nothing after the violation is read.
type ProtocolError string

func (e ProtocolError) Error() string { return "wsconn: protocol error: " + string(e) }

// CloseError is the client's close frame. Code is 1005 when the frame
// carried none. ReadMessage has answered it with a close frame already.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wsconn: closed by the client with %d %q", e.Code, e.Reason)
}

// noStatus is the code reported for a close frame without one (RFC 6455,
// section 7.4.1); it is never sent.
const noStatus = 1005

// header is a parsed frame header.
type header struct {
	fin, rsv1 bool
	op        byte
	length    int64
	mask      [4]byte
}

// parseHeader reads a client frame's header from b. It returns the header
// length, or 0 when b does not hold the whole header yet.
func parseHeader(b []byte) (header, int, error) {
	var h header
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin, h.rsv1, h.op = b[0]&bitFin != 0, b[0]&bitRsv1 != 0, b[0]&0x0F
	if b[0]&bitRsvX != 0 {
		return h, 0, ProtocolError("reserved bits set")
	}
	if b[1]&bitMask == 0 {
		return h, 0, ProtocolError("client frame not masked")
	}
	n := 2
	switch l := int64(b[1] & 0x7F); l {
	case 126:
		if len(b) < n+2 {
			return h, 0, nil
		}
		h.length = int64(binary.BigEndian.Uint16(b[n:]))
		n += 2
	case 127:
		if len(b) < n+8 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[n:])
		if u>>63 != 0 {
			return h, 0, ProtocolError("payload length has its top bit set")
		}
		h.length = int64(u)
		n += 8
	default:
		h.length = l
	}
	if len(b) < n+4 {
		return h, 0, nil
	}
	copy(h.mask[:], b[n:n+4])
	n += 4

	switch h.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		switch {
		case !h.fin:
			return h, 0, ProtocolError("fragmented control frame")
		case h.length > maxControl:
			return h, 0, ProtocolError("control frame longer than 125 bytes")
		case h.rsv1:
			return h, 0, ProtocolError("compressed control frame")
		}
	default:
		return h, 0, ProtocolError(fmt.Sprintf("unknown opcode %#x", h.op))
	}
	return h, n, nil
}

// unmask applies the mask to b, whose first byte is at offset pos of the
// payload; it returns the offset after b.
func unmask(b []byte, mask [4]byte, pos int) int {
	m := uint32(mask[0]) | uint32(mask[1])<<8 | uint32(mask[2])<<16 | uint32(mask[3])<<24
	m = m>>(8*(pos%4)) | m<<(32-8*(pos%4))
	i := 0
	if len(b) >= 8 {
		m64 := uint64(m) | uint64(m)<<32
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^m64)
		}
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(m)
		m = m>>8 | m<<24
	}
	return pos + len(b)
}

// appendHeader appends a server frame's header (never masked) to b.
func appendHeader(b []byte, op byte, rsv1 bool, length int) []byte {
	first := bitFin | op
	if rsv1 {
		first |= bitRsv1
	}
	switch {
	case length < 126:
		return append(b, first, byte(length))
	case length <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, first, 126), uint16(length))
	default:
		return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(length))
	}
}

// parseClose reads a close frame's payload.
func parseClose(p []byte) (*CloseError, error) {
	switch {
	case len(p) == 0:
		return &CloseError{Code: noStatus}, nil
	case len(p) == 1:
		return nil, ProtocolError("close frame with a 1-byte payload")
	}
	code := binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return nil, ProtocolError(fmt.Sprintf("close code %d may not be sent", code))
	}
	if !utf8.Valid(p[2:]) {
		return nil, ProtocolError("close reason is not UTF-8")
	}
	return &CloseError{Code: code, Reason: string(p[2:])}, nil
}

// validCloseCode reports whether an endpoint may send code (RFC 6455,
// section 7.4, and the IANA registry).
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closePayload builds a close frame's payload; the reason is cut to fit.
func closePayload(code uint16, reason string) []byte {
	if len(reason) > maxControl-2 {
		reason = reason[:maxControl-2]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}
