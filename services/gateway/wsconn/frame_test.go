package wsconn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnmask(t *testing.T) {
	mask := [4]byte{0x01, 0x23, 0x45, 0x67}
	for pos := range 8 {
		for n := range 21 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(0xF0 + i)
			}
			want := make([]byte, n)
			for i := range want {
				want[i] = b[i] ^ mask[(pos+i)%4]
			}

			if end := unmask(b, mask, pos); end != pos+n {
				t.Errorf("unmask at %d of %d bytes returned %d, want %d", pos, n, end, pos+n)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("unmask at %d of %d bytes: % x, want % x", pos, n, b, want)
			}
		}
	}
}

// TestUnmaskInParts unmasks a payload in pieces, as it arrives, and
// checks that it equals unmasking it whole.
func TestUnmaskInParts(t *testing.T) {
	mask := [4]byte{0x9A, 0xBC, 0xDE, 0xF0}
	whole := []byte(strings.Repeat("parts of a payload ", 5))
	want := bytes.Clone(whole)
	unmask(want, mask, 0)

	for _, cut := range []int{1, 3, 7, 9, 17} {
		b := bytes.Clone(whole)
		pos := 0
		for pos < len(b) {
			end := min(pos+cut, len(b))
			pos = unmask(b[pos:end], mask, pos)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("in parts of %d: % x, want % x", cut, b, want)
		}
	}
}

func TestHeaderLengths(t *testing.T) {
	tests := []struct {
		length  int
		wantLen int // of the server's header
	}{
		{0, 2}, {1, 2}, {125, 2},
		{126, 4}, {127, 4}, {65535, 4},
		{65536, 10}, {1 << 32, 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.length), func(t *testing.T) {
			b := appendHeader(nil, opBinary, true, tt.length)
			if len(b) != tt.wantLen {
				t.Fatalf("header of %d bytes, want %d", len(b), tt.wantLen)
			}
			if b[0] != bitFin|bitRsv1|opBinary || b[1]&bitMask != 0 {
				t.Fatalf("header starts % x, want a final compressed binary frame, unmasked", b[:2])
			}

			// The same header as a client sends it: masked.
			mask := [4]byte{1, 2, 3, 4}
			b[1] |= bitMask
			b = append(b, mask[:]...)
			h, n, err := parseHeader(b)
			if err != nil || n != len(b) {
				t.Fatalf("parseHeader = %d, %v; want %d, nil", n, err, len(b))
			}
			want := header{fin: true, rsv1: true, op: opBinary, length: int64(tt.length), mask: mask}
			if h != want {
				t.Fatalf("parseHeader = %+v, want %+v", h, want)
			}
		})
	}
}

// TestParseHeaderIncomplete checks that no prefix of a header parses.
func TestParseHeaderIncomplete(t *testing.T) {
	for _, length := range []int{5, 300, 70000} {
		b := appendHeader(nil, opText, false, length)
		b[1] |= bitMask
		b = append(b, 9, 8, 7, 6)
		for i := range len(b) {
			if _, n, err := parseHeader(b[:i]); n != 0 || err != nil {
				t.Errorf("%d of the %d bytes of a header: parseHeader = %d, %v; want 0, nil", i, len(b), n, err)
			}
		}
	}
}

func TestClosePayload(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		want   string // the reason as sent
	}{
		{"empty", "", ""},
		{"short", "going away", "going away"},
		{"exactly 123 bytes", strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"124 bytes", strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"2-byte runes", strings.Repeat("é", 100), strings.Repeat("é", 61)},
		{"3-byte runes", strings.Repeat("€", 50), strings.Repeat("€", 41)},
		{"4-byte runes", strings.Repeat("😀", 40), strings.Repeat("😀", 30)},
		{"rune across the cut", strings.Repeat("a", 122) + "€", strings.Repeat("a", 122)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := closePayload(4000, tt.reason)
			if len(p) > maxControl {
				t.Fatalf("%d bytes, more than a control frame carries", len(p))
			}
			if code := binary.BigEndian.Uint16(p); code != 4000 {
				t.Errorf("code %d, want 4000", code)
			}
			if got := string(p[2:]); got != tt.want || !utf8.ValidString(got) {
				t.Errorf("reason %q (%d bytes), want %q", got, len(got), tt.want)
			}
		})
	}
}

func TestParseClose(t *testing.T) {
	valid := []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
		3000, 4999}
	for _, code := range valid {
		ce, err := parseClose(closePayload(code, "r"))
		if err != nil || ce.Code != code || ce.Reason != "r" {
			t.Errorf("close %d: %+v, %v", code, ce, err)
		}
	}
	invalid := []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}
	for _, code := range invalid {
		if _, err := parseClose(closePayload(code, "")); err == nil {
			t.Errorf("close %d accepted", code)
		}
	}
}
