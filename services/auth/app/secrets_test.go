package app_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	authv1 "switchboard/proto/switchboard/auth/v1"
)

// window is the length of the fragments of a secret looked for in logs:
// long enough that no log line holds one by chance, short enough that a
// token cut, wrapped or quoted in part is still found.
const window = 16

// secrets remembers every token, refresh token and password a test sent
// or received, to look for any part of them in logs. Its methods accept a
// nil *secrets and then do nothing.
type secrets struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// addText remembers texts; "" is ignored.
func (s *secrets) addText(texts ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]struct{}{}
	}
	for _, t := range texts {
		if t != "" {
			s.seen[t] = struct{}{}
		}
	}
}

// add remembers both tokens of p and returns p.
func (s *secrets) add(p *authv1.TokenPair) *authv1.TokenPair {
	s.addText(p.GetAccessToken(), p.GetRefreshToken())
	return p
}

// note remembers the secrets of a request or response message.
func (s *secrets) note(m any) {
	if v, ok := m.(interface{ GetPassword() string }); ok {
		s.addText(v.GetPassword())
	}
	if v, ok := m.(interface{ GetAccessToken() string }); ok {
		s.addText(v.GetAccessToken())
	}
	if v, ok := m.(interface{ GetRefreshToken() string }); ok {
		s.addText(v.GetRefreshToken())
	}
	if v, ok := m.(interface{ GetTokens() *authv1.TokenPair }); ok {
		s.add(v.GetTokens())
	}
}

// noteForm remembers the secrets of an HTTP body, a form or a JSON object.
func (s *secrets) noteForm(contentType, body string) {
	fields := map[string]any{}
	if contentType == "application/json" {
		json.Unmarshal([]byte(body), &fields)
	} else if v, err := url.ParseQuery(body); err == nil {
		for k := range v {
			fields[k] = v.Get(k)
		}
	}
	for _, k := range []string{"password", "refresh_token", "access_token"} {
		if v, ok := fields[k].(string); ok {
			s.addText(v)
		}
	}
}

// recorder returns the dial option that notes every unary call's request
// and response; none for a nil s.
func (s *secrets) recorder() []grpc.DialOption {
	if s == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(s.intercept)}
}

func (s *secrets) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	s.note(req)
	err := invoker(ctx, method, req, reply, cc, opts...)
	s.note(reply)
	return err
}

// leak returns the number (from 1) of the first line of text that holds a
// fragment of a secret, or 0. A fragment is any window-long part of a
// secret; a secret shorter than window counts whole when it has 8 bytes or
// more. The session id inside a refresh token is not secret (logs name
// sessions), so windows over it are not looked for.
func (s *secrets) leak(text string) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	index := windows(text)
	for secret := range s.seen {
		if at := find(text, index, maskSessionID(secret)); at >= 0 {
			return strings.Count(text[:at], "\n") + 1
		}
	}
	return 0
}

// windows maps every window-long part of text to where it first starts.
func windows(text string) map[string]int {
	m := make(map[string]int, len(text))
	for i := len(text) - window; i >= 0; i-- {
		m[text[i:i+window]] = i
	}
	return m
}

// find returns where in text a fragment of secret first appears, or -1.
func find(text string, index map[string]int, secret string) int {
	if len(secret) < window {
		if len(secret) < 8 {
			return -1
		}
		return strings.Index(text, secret)
	}
	for i := 0; i+window <= len(secret); i++ {
		w := secret[i : i+window]
		if at, ok := index[w]; ok && !strings.Contains(w, "\x00") {
			return at
		}
	}
	return -1
}

// maskSessionID replaces the session id of a refresh token ("rt1.<sid>.
// <secret>") with NUL bytes, which no window of a log matches.
func maskSessionID(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != "rt1" {
		return tok
	}
	return parts[0] + "." + strings.Repeat("\x00", len(parts[1])) + "." + parts[2]
}

// The log check finds any fragment of a secret, refused ones included, and
// only those.
func TestLeakFindsAnyFragment(t *testing.T) {
	access := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSIsInNpZCI6InMxIn0.c2lnbmF0dXJlLW9mLWEtZm9yZ2VkLXRva2VuLWF0LWxlYXN0LTQzLWJ5dGVz"
	refresh := "rt1.AAAAAAAAAAAAAAAAAAAAAA.bm90LWEtcmVhbC1zZWNyZXQtYnV0LWxvbmctZW5vdWdo"
	s := &secrets{}
	s.addText(access, refresh, "hunter2-password")
	sig := access[strings.LastIndex(access, ".")+1:]
	for _, tc := range []struct {
		name, log string
		line      int
	}{
		{"whole token", "a\nvalidate token=" + access + "\n", 2},
		{"signature only", "x\ny\nsig=" + sig + "\n", 3},
		{"16 bytes of the payload", "payload " + access[25:41], 1},
		{"refresh secret cut", "rt=" + refresh[len(refresh)-20:], 1},
		{"password", `{"password":"hunter2-password"}`, 1},
		{"15 bytes only", "payload " + access[25:40], 0},
		{"the session id of a refresh token", "session=AAAAAAAAAAAAAAAAAAAAAA revoked", 0},
		{"nothing", "user u1 logged in", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.leak(tc.log); got != tc.line {
				t.Fatalf("leak = line %d, want %d", got, tc.line)
			}
		})
	}
}
