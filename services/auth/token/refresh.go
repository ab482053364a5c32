package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const (
	refreshPrefix = "rt1"
	secretBytes   = 32 // 256 random bits
	idBytes       = 16 // 128 random bits
	// MaxRefreshBytes is the longest refresh token Parse accepts.
	MaxRefreshBytes = 128
)

// ErrBadRefresh is a refresh token that is not of our format.
var ErrBadRefresh = errors.New("refresh token malformed")

// Hash is what the store keeps of a refresh token.
type Hash [sha256.Size]byte

// NewID returns a random identifier of 128 bits, base64url without padding,
// for sessions and users.
func NewID() (string, error) {
	b := make([]byte, idBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewRefresh returns a fresh refresh token of session sid.
func NewRefresh(sid string) (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random refresh token: %w", err)
	}
	return refreshPrefix + "." + sid + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseRefresh returns the session id a refresh token names. The token is
// not checked against any store.
func ParseRefresh(tok string) (sid string, err error) {
	if len(tok) > MaxRefreshBytes {
		return "", ErrBadRefresh
	}
	prefix, rest, ok := strings.Cut(tok, ".")
	if !ok || prefix != refreshPrefix {
		return "", ErrBadRefresh
	}
	sid, secret, ok := strings.Cut(rest, ".")
	if !ok || sid == "" || strings.Contains(secret, ".") {
		return "", ErrBadRefresh
	}
	// The decoder skips CR and LF, so the length is checked first: one
	// secret has one spelling.
	if len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return "", ErrBadRefresh
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != secretBytes {
		return "", ErrBadRefresh
	}
	return sid, nil
}

// HashRefresh is the stored form of a refresh token.
func HashRefresh(tok string) Hash {
	return sha256.Sum256([]byte("switchboard refresh id\x00" + tok))
}

// sealKey derives the key that seals the successor of tok. It is
// independent of HashRefresh, so the store cannot derive it.
func sealKey(tok string) []byte {
	k := sha256.Sum256([]byte("switchboard refresh seal\x00" + tok))
	return k[:]
}

// Seal encrypts next so that only a holder of prev can read it: the store
// keeps it to hand the current token to a second tab that still presents
// prev within the grace.
func Seal(prev, next string) ([]byte, error) {
	aead, err := newAEAD(prev)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(next)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("random nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(next), nil), nil
}

// Open reverses Seal with the previous token.
func Open(prev string, sealed []byte) (string, error) {
	aead, err := newAEAD(prev)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed refresh token too short")
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", errors.New("sealed refresh token does not open")
	}
	return string(plain), nil
}

func newAEAD(tok string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(sealKey(tok))
	if err != nil {
		return nil, fmt.Errorf("seal cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
