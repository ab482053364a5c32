package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	iss    = "https://auth.test"
	aud    = "switchboard-test"
	leeway = 30 * time.Second
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time      { return c.t }
func (c *clock) Add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_800_000_000, 0)} }
func b64(s string) string            { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	t      *testing.T
	clk    *clock
	ring   *Keyring
	minter *Minter
	ver    *Verifier
}

func newFixture(t *testing.T, alg string) *fixture {
	t.Helper()
	clk := newClock()
	ring, err := NewKeyring(KeyringOptions{Alg: alg, Overlap: 16 * time.Minute, Now: clk.Now})
	mustNoErr(t, err)
	ver, err := NewVerifier(ring, VerifierOptions{Issuer: iss, Audience: aud, Leeway: leeway, Now: clk.Now})
	mustNoErr(t, err)
	return &fixture{t: t, clk: clk, ring: ring, minter: NewMinter(ring, iss, aud), ver: ver}
}

// sign makes a token with any header and claims, signed by method and key.
func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	mustNoErr(t, err)
	return s
}

func (f *fixture) claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := f.clk.Now().Unix()
	c := jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": "u1", "sid": "s1",
		"iat": now, "nbf": now, "exp": now + 900,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func (f *fixture) good(mod func(jwt.MapClaims)) string {
	k := f.ring.Signer()
	return sign(f.t, k.method(), k.private, map[string]any{"kid": k.ID, "typ": AccessType}, f.claims(mod))
}

func TestVerifyAcceptsMinted(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t, alg)
			now := f.clk.Now()
			s, err := f.minter.Mint(Claims{UserID: "u1", SessionID: "s1", IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)})
			mustNoErr(t, err)
			c, err := f.ver.Verify(s)
			mustNoErr(t, err)
			if c.UserID != "u1" || c.SessionID != "s1" || !c.ExpiresAt.Equal(now.Add(15*time.Minute)) {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

func TestVerifyRefusesForgedAndMalformed(t *testing.T) {
	f := newFixture(t, EdDSA)
	signer := f.ring.Signer()
	hdr := map[string]any{"kid": signer.ID, "typ": AccessType}
	pub := signer.public.(ed25519.PublicKey)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	mustNoErr(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rt, err := NewRefresh("s1")
	mustNoErr(t, err)
	good := f.good(nil)
	parts := strings.Split(good, ".")
	lee := int64(leeway / time.Second)
	now := f.clk.Now().Unix()

	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, f.claims(nil)), ReasonAlgorithm},
		{"alg none by hand", b64(`{"alg":"none","typ":"at+jwt","kid":"`+signer.ID+`"}`) + "." + parts[1] + ".", ReasonAlgorithm},
		{"HS256 with raw public key", sign(t, jwt.SigningMethodHS256, []byte(pub), hdr, f.claims(nil)), ReasonAlgorithm},
		{"HS256 with PEM public key", sign(t, jwt.SigningMethodHS256, pubPEM, hdr, f.claims(nil)), ReasonAlgorithm},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, strangerKey, map[string]any{"kid": "nope", "typ": AccessType}, f.claims(nil)), ReasonUnknownKey},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, signer.private, map[string]any{"typ": AccessType}, f.claims(nil)), ReasonUnknownKey},
		{"kid not a string", sign(t, jwt.SigningMethodEdDSA, signer.private, map[string]any{"kid": 7, "typ": AccessType}, f.claims(nil)), ReasonUnknownKey},
		{"right kid, other key", sign(t, jwt.SigningMethodEdDSA, strangerKey, hdr, f.claims(nil)), ReasonSignature},
		{"ES256 under an EdDSA kid", sign(t, jwt.SigningMethodES256, ecKey, hdr, f.claims(nil)), ReasonAlgorithm},
		{"ES384 outside the list", sign(t, jwt.SigningMethodES384, ec384, hdr, f.claims(nil)), ReasonAlgorithm},
		{"unknown alg", b64(`{"alg":"XX1","typ":"at+jwt","kid":"`+signer.ID+`"}`) + "." + parts[1] + "." + parts[2], ReasonAlgorithm},
		{"tampered payload", parts[0] + "." + b64(`{"iss":"`+iss+`","aud":"`+aud+`","sub":"admin","sid":"s1","exp":9999999999,"iat":1,"nbf":1}`) + "." + parts[2], ReasonSignature},
		{"no typ", sign(t, jwt.SigningMethodEdDSA, signer.private, map[string]any{"kid": signer.ID, "typ": nil}, f.claims(nil)), ReasonMalformed},
		{"typ JWT", sign(t, jwt.SigningMethodEdDSA, signer.private, map[string]any{"kid": signer.ID, "typ": "JWT"}, f.claims(nil)), ReasonMalformed},
		{"expired at leeway boundary", f.good(func(c jwt.MapClaims) { c["exp"] = now - lee }), ReasonExpired},
		{"expired long ago", f.good(func(c jwt.MapClaims) { c["exp"] = now - 3600 }), ReasonExpired},
		{"nbf past leeway", f.good(func(c jwt.MapClaims) { c["nbf"] = now + lee + 1 }), ReasonNotYetValid},
		{"iat past leeway", f.good(func(c jwt.MapClaims) { c["iat"] = now + lee + 1 }), ReasonNotYetValid},
		{"wrong issuer", f.good(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), ReasonClaims},
		{"no issuer", f.good(func(c jwt.MapClaims) { delete(c, "iss") }), ReasonClaims},
		{"wrong audience", f.good(func(c jwt.MapClaims) { c["aud"] = "other" }), ReasonClaims},
		{"no audience", f.good(func(c jwt.MapClaims) { delete(c, "aud") }), ReasonClaims},
		{"missing exp", f.good(func(c jwt.MapClaims) { delete(c, "exp") }), ReasonClaims},
		{"exp not a number", f.good(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), ReasonMalformed},
		{"missing sub", f.good(func(c jwt.MapClaims) { delete(c, "sub") }), ReasonClaims},
		{"missing sid", f.good(func(c jwt.MapClaims) { delete(c, "sid") }), ReasonClaims},
		{"missing iat", f.good(func(c jwt.MapClaims) { delete(c, "iat") }), ReasonClaims},
		{"refresh token as access token", rt, ReasonMalformed},
		{"oversized", good + strings.Repeat("A", 4097-len(good)), ReasonTooLong},
		{"empty", "", ReasonMalformed},
		{"one part", "abc", ReasonMalformed},
		{"two parts", parts[0] + "." + parts[1], ReasonMalformed},
		{"four parts", good + ".x", ReasonMalformed},
		{"bad base64", "!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header not json", b64("not json") + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"payload not json", parts[0] + "." + b64("[1,2") + "." + parts[2], ReasonMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.ver.Verify(tc.token)
			if err == nil {
				t.Fatalf("accepted, claims %+v", c)
			}
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.want)
			}
			if len(tc.token) > 8 && strings.Contains(err.Error(), tc.token[len(tc.token)-8:]) {
				t.Fatalf("error %q quotes the token", err)
			}
		})
	}
}

func TestVerifyLeewayBoundaries(t *testing.T) {
	f := newFixture(t, EdDSA)
	now := f.clk.Now().Unix()
	lee := int64(leeway / time.Second)
	cases := []struct {
		name string
		mod  func(jwt.MapClaims)
	}{
		{"exp one second inside the leeway", func(c jwt.MapClaims) { c["exp"] = now - lee + 1 }},
		{"nbf exactly at the leeway", func(c jwt.MapClaims) { c["nbf"] = now + lee }},
		{"iat exactly at the leeway", func(c jwt.MapClaims) { c["iat"] = now + lee; c["nbf"] = now }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.ver.Verify(f.good(tc.mod)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestVerifierAllowList(t *testing.T) {
	f := newFixture(t, ES256)
	ver, err := NewVerifier(f.ring, VerifierOptions{Issuer: iss, Audience: aud, Algorithms: []string{EdDSA}, Now: f.clk.Now})
	mustNoErr(t, err)
	if _, err := f.ver.Verify(f.good(nil)); err != nil {
		t.Fatalf("ES256 refused by the default list: %v", err)
	}
	if _, err := ver.Verify(f.good(nil)); ReasonOf(err) != ReasonAlgorithm {
		t.Fatalf("ES256 under an EdDSA-only list: %v", err)
	}
}

func TestVerifierBounds(t *testing.T) {
	ring, err := NewKeyring(KeyringOptions{Overlap: time.Minute})
	mustNoErr(t, err)
	for _, opts := range []VerifierOptions{
		{Issuer: iss, Audience: aud, Leeway: MaxLeeway + time.Second},
		{Issuer: iss, Audience: aud, Leeway: -time.Second},
		{Audience: aud},
		{Issuer: iss},
	} {
		if _, err := NewVerifier(ring, opts); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", opts)
		}
	}
}

func TestKeyRotationOverlap(t *testing.T) {
	clk := newClock()
	overlap := 16 * time.Minute
	ring, err := NewKeyring(KeyringOptions{Rotation: time.Hour, Overlap: overlap, Now: clk.Now})
	mustNoErr(t, err)
	ver, err := NewVerifier(ring, VerifierOptions{Issuer: iss, Audience: aud, Now: clk.Now})
	mustNoErr(t, err)
	minter := NewMinter(ring, iss, aud)
	mint := func() string {
		now := clk.Now()
		s, err := minter.Mint(Claims{UserID: "u", SessionID: "s", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)})
		mustNoErr(t, err)
		return s
	}

	first := ring.Signer().ID
	if n := len(ring.JWKS()); n != 2 {
		t.Fatalf("JWKS has %d keys before rotation, want the signer and the next", n)
	}
	old := mint()
	clk.Add(time.Hour)
	mustNoErr(t, ring.Tick())
	if ring.Signer().ID == first {
		t.Fatal("signer did not rotate")
	}
	if _, err := ver.Verify(old); err != nil {
		t.Fatalf("old token refused during the overlap: %v", err)
	}
	if _, err := ver.Verify(mint()); err != nil {
		t.Fatalf("new token refused: %v", err)
	}
	clk.Add(overlap)
	mustNoErr(t, ring.Tick())
	if _, ok := ring.Lookup(first); ok {
		t.Fatal("retired key still verifies after the overlap")
	}
	if _, err := ver.Verify(old); ReasonOf(err) != ReasonUnknownKey {
		t.Fatalf("old token after the overlap: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.pem")
	a, err := GenerateKey(ES256)
	mustNoErr(t, err)
	b, err := GenerateKey(EdDSA)
	mustNoErr(t, err)
	pa, _ := a.MarshalPEM()
	pb, _ := b.MarshalPEM()
	mustNoErr(t, os.WriteFile(path, append(append([]byte{}, pa...), pb...), 0o600))

	clk := newClock()
	ring, err := NewKeyring(KeyringOptions{File: path, Overlap: time.Minute, Now: clk.Now})
	mustNoErr(t, err)
	if ring.Signer().ID != a.ID || ring.Signer().Alg != ES256 {
		t.Fatalf("signer = %s, want the file's first key", ring.Signer().ID)
	}
	if _, ok := ring.Lookup(b.ID); !ok {
		t.Fatal("second key does not verify")
	}

	mustNoErr(t, os.WriteFile(path, pb, 0o600))
	future := time.Now().Add(time.Hour)
	mustNoErr(t, os.Chtimes(path, future, future))
	mustNoErr(t, ring.Tick())
	if ring.Signer().ID != b.ID {
		t.Fatal("signer did not follow the file")
	}
	if _, ok := ring.Lookup(a.ID); !ok {
		t.Fatal("removed key dropped before its overlap")
	}
	clk.Add(time.Minute)
	mustNoErr(t, ring.Tick())
	if _, ok := ring.Lookup(a.ID); ok {
		t.Fatal("removed key kept after its overlap")
	}

	mustNoErr(t, os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600))
	mustNoErr(t, os.Chtimes(path, future.Add(time.Hour), future.Add(time.Hour)))
	if err := ring.Tick(); err == nil {
		t.Fatal("a certificate was accepted as a key")
	}
	if ring.Signer().ID != b.ID {
		t.Fatal("a bad file changed the keyring")
	}
}

func TestRefreshFormatAndSeal(t *testing.T) {
	a, err := NewRefresh("sid1")
	mustNoErr(t, err)
	b, err := NewRefresh("sid1")
	mustNoErr(t, err)
	if a == b || HashRefresh(a) == HashRefresh(b) {
		t.Fatal("two refresh tokens collide")
	}
	sid, err := ParseRefresh(a)
	if err != nil || sid != "sid1" {
		t.Fatalf("ParseRefresh = %q, %v", sid, err)
	}
	for _, bad := range []string{"", "rt1", "rt1.sid", "rt2.sid." + strings.Repeat("A", 43), "rt1..x", a + "A", a + ".x", strings.Repeat("x", 200)} {
		if _, err := ParseRefresh(bad); err == nil {
			t.Errorf("ParseRefresh accepted a malformed token of %d bytes", len(bad))
		}
	}
	sealed, err := Seal(a, b)
	mustNoErr(t, err)
	if strings.Contains(string(sealed), b) {
		t.Fatal("sealed form holds the token in clear")
	}
	got, err := Open(a, sealed)
	if err != nil || got != b {
		t.Fatalf("Open = %v", err)
	}
	if _, err := Open(b, sealed); err == nil {
		t.Fatal("opened with the wrong token")
	}
}
