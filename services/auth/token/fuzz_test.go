package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fuzz targets of this file check the parsers that read what a client
// sends: Verify (access tokens) and ParseRefresh (refresh tokens). Plain
// `go test` runs their seeds, those added here and those committed under
// testdata/fuzz/<FuzzName>/; `make fuzz` searches for new inputs.

// fuzzNow is the fixed clock of the fuzz targets, so that a seed minted
// once stays valid.
var fuzzNow = time.Unix(1_800_000_000, 0)

// fuzzKeys is a keyring of two fixed keys, one of each algorithm, read from
// a key file as an operator would give it. Fixed keys keep committed seeds
// signed by the keyring; EdDSA signatures are deterministic, so a minted
// seed is the same on every run.
type fuzzKeys struct {
	ring   *Keyring
	ver    *Verifier
	other  *Verifier      // over a keyring of unrelated keys
	public map[string]any // kid -> public key, kept apart from the keyring
}

var (
	fuzzOnce    sync.Once
	fuzzFixture *fuzzKeys
	fuzzErr     error
)

func loadFuzzKeys(t testing.TB) *fuzzKeys {
	t.Helper()
	fuzzOnce.Do(func() { fuzzFixture, fuzzErr = newFuzzKeys() })
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzFixture
}

func newFuzzKeys() (*fuzzKeys, error) {
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	d := sha256.Sum256([]byte("switchboard fuzz p-256 key"))
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		return nil, err
	}
	var file bytes.Buffer
	for _, priv := range []any{ed, ec} {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		pem.Encode(&file, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	dir, err := os.MkdirTemp("", "token-fuzz")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		return nil, err
	}
	now := func() time.Time { return fuzzNow }
	ring, err := NewKeyring(KeyringOptions{File: path, Overlap: time.Hour, Now: now})
	if err != nil {
		return nil, err
	}
	otherRing, err := NewKeyring(KeyringOptions{Overlap: time.Hour, Now: now})
	if err != nil {
		return nil, err
	}
	opts := VerifierOptions{Issuer: iss, Audience: aud, Leeway: leeway, Now: now}
	ver, err := NewVerifier(ring, opts)
	if err != nil {
		return nil, err
	}
	other, err := NewVerifier(otherRing, opts)
	if err != nil {
		return nil, err
	}
	fk := &fuzzKeys{ring: ring, ver: ver, other: other, public: map[string]any{}}
	for _, priv := range []crypto.Signer{ed, ec} {
		k, err := newKey(priv)
		if err != nil {
			return nil, err
		}
		fk.public[k.ID] = priv.Public()
	}
	return fk, nil
}

// maxVerifyAlloc bounds the bytes one Verify may allocate for a token of n
// bytes. The cap on a token's length makes the bound a constant; it is far
// above what a well-formed token costs (a few KiB) and far below what an
// input that made the parser blow up would cost.
func maxVerifyAlloc(n int) uint64 { return 256<<10 + 64*uint64(n) }

// verifyAlloc runs Verify and returns the bytes it allocated.
func verifyAlloc(v *Verifier, tok string) (Claims, uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := v.Verify(tok)
	runtime.ReadMemStats(&after)
	return c, after.TotalAlloc - before.TotalAlloc, err
}

// FuzzVerify: Verify never panics, refuses with a Reason, refuses anything
// over the length cap before parsing it, allocates a bounded amount, and
// accepts only tokens whose signature a key of the keyring checks, as
// verified here without the JWT library.
func FuzzVerify(f *testing.F) {
	fk := loadFuzzKeys(f)
	for _, s := range verifySeeds(f, fk) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, alloc, err := verifyAlloc(fk.ver, tok)
		if alloc > maxVerifyAlloc(len(tok)) {
			t.Errorf("Verify of %d bytes allocated %d bytes, over %d", len(tok), alloc, maxVerifyAlloc(len(tok)))
		}
		if len(tok) > fk.ver.opts.MaxBytes && ReasonOf(err) != ReasonTooLong {
			t.Fatalf("a token of %d bytes was not refused as too long: %v", len(tok), err)
		}
		if err != nil {
			checkRefusal(t, tok, err)
			return
		}
		if c.UserID == "" || c.SessionID == "" || !c.ExpiresAt.After(fuzzNow.Add(-leeway)) {
			t.Fatalf("accepted claims are incomplete or expired: %+v", c)
		}
		checkSignedByKeyring(t, fk, tok)
		if _, err := fk.other.Verify(tok); err == nil {
			t.Fatal("a verifier over other keys accepted the token")
		}
	})
}

// checkRefusal checks that a refusal names a reason and no part of the token.
func checkRefusal(t *testing.T, tok string, err error) {
	t.Helper()
	if ReasonOf(err) == "" {
		t.Fatalf("refusal without a reason: %v", err)
	}
	if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
		t.Fatal("the refusal quotes the token")
	}
}

// checkSignedByKeyring verifies the signature of an accepted token with the
// standard library alone.
func checkSignedByKeyring(t *testing.T, fk *fuzzKeys, tok string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token of %d segments", len(parts))
	}
	rawHeader, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	var header map[string]any
	if err1 != nil || err2 != nil || json.Unmarshal(rawHeader, &header) != nil {
		t.Fatalf("accepted a token whose header or signature does not decode")
	}
	kid, _ := header["kid"].(string)
	alg, _ := header["alg"].(string)
	signed := []byte(parts[0] + "." + parts[1])
	switch pub := fk.public[kid].(type) {
	case ed25519.PublicKey:
		if alg != EdDSA || !ed25519.Verify(pub, signed, sig) {
			t.Fatalf("accepted a token not signed by Ed25519 key %s (alg %q)", kid, alg)
		}
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(signed)
		r, s := new(big.Int).SetBytes(sig[:min(32, len(sig))]), new(big.Int)
		if len(sig) == 64 {
			s.SetBytes(sig[32:])
		}
		if alg != ES256 || len(sig) != 64 || !ecdsa.Verify(pub, digest[:], r, s) {
			t.Fatalf("accepted a token not signed by P-256 key %s (alg %q)", kid, alg)
		}
	default:
		t.Fatalf("accepted a token of kid %q, not in the keyring", kid)
	}
}

// FuzzParseRefresh: ParseRefresh never panics, refuses with ErrBadRefresh,
// and accepts only "rt1.<sid>.<secret>" with a canonical 256-bit secret,
// whose session id NewRefresh round-trips.
func FuzzParseRefresh(f *testing.F) {
	valid, err := NewRefresh("c2Vzc2lvbi1pZA")
	if err != nil {
		f.Fatal(err)
	}
	secret := strings.Repeat("A", 43)
	for _, s := range []string{
		valid, "", "rt1", "rt1..", "rt1.sid." + secret, "rt1.sid." + secret + "=",
		"rt1.sid." + secret + ".x", "rt2.sid." + secret, "rt1.sïd." + secret,
		"rt1.sid." + strings.Repeat("A", 42) + "B", "rt1." + strings.Repeat("s", 200) + "." + secret,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		sid, err := ParseRefresh(tok)
		if err != nil {
			if err != ErrBadRefresh || sid != "" {
				t.Fatalf("refusal = %q, %v; want \"\", ErrBadRefresh", sid, err)
			}
			return
		}
		if len(tok) > MaxRefreshBytes || sid == "" || strings.Contains(sid, ".") {
			t.Fatalf("accepted a refresh token of %d bytes with session id %q", len(tok), sid)
		}
		secret, ok := strings.CutPrefix(tok, refreshPrefix+"."+sid+".")
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if !ok || err != nil || len(raw) != secretBytes || base64.RawURLEncoding.EncodeToString(raw) != secret {
			t.Fatalf("accepted a refresh token whose secret is not 32 canonical bytes")
		}
		again, err := NewRefresh(sid)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ParseRefresh(again); (err != nil || got != sid) && len(again) <= MaxRefreshBytes {
			t.Fatalf("NewRefresh(%q) parses as %q, %v", sid, got, err)
		}
	})
}

// verifySeeds are the seeds built at run time: a valid token of each key.
// The attacks (alg none, key confusion, huge headers, deep JSON, unicode)
// are committed under testdata/fuzz/FuzzVerify/, signed by the same fixed
// keys.
func verifySeeds(t testing.TB, fk *fuzzKeys) []string {
	t.Helper()
	var seeds []string
	for kid := range fk.public {
		k, _ := fk.ring.Lookup(kid)
		seeds = append(seeds, signFuzz(t, k, nil, fuzzClaims(nil)))
	}
	return seeds
}

// fuzzClaims are the claims of a valid token at fuzzNow, with extra
// members added or replaced.
func fuzzClaims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": iss, "aud": []string{aud}, "sub": "user-1", "sid": "session-1",
		"iat": fuzzNow.Unix(), "nbf": fuzzNow.Unix(), "exp": fuzzNow.Add(15 * time.Minute).Unix(),
	}
	for name, v := range extra {
		c[name] = v
	}
	return c
}

// signFuzz signs claims with k under a header of alg, typ and kid, with
// extra members added or replaced.
func signFuzz(t testing.TB, k *Key, extra map[string]any, claims map[string]any) string {
	t.Helper()
	header := map[string]any{"alg": k.Alg, "typ": AccessType, "kid": k.ID}
	for name, v := range extra {
		header[name] = v
	}
	h, err1 := json.Marshal(header)
	p, err2 := json.Marshal(claims)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig, err := k.method().Sign(signing, k.private)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// The valid seeds must pass, or FuzzVerify would never reach the checks it
// makes of an accepted token.
func TestFuzzVerifySeedsAreAccepted(t *testing.T) {
	fk := loadFuzzKeys(t)
	for i, s := range verifySeeds(t, fk) {
		if _, err := fk.ver.Verify(s); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
