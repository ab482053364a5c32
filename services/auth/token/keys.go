package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms this package signs and accepts.
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
)

// Algorithms lists the allowed signing algorithms.
var Algorithms = []string{EdDSA, ES256}

// Key is one signing key pair.
type Key struct {
	// ID is the kid: the RFC 7638 thumbprint of the public key.
	ID string
	// Alg is EdDSA or ES256.
	Alg     string
	private crypto.Signer
	public  crypto.PublicKey
}

// GenerateKey makes a new key for alg.
func GenerateKey(alg string) (*Key, error) {
	switch alg {
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return newKey(priv)
	case ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate p-256 key: %w", err)
		}
		return newKey(priv)
	}
	return nil, fmt.Errorf("algorithm %q is not one of EdDSA, ES256", alg)
}

func newKey(priv crypto.Signer) (*Key, error) {
	k := &Key{private: priv, public: priv.Public()}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		k.Alg = EdDSA
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("only P-256 ecdsa keys are supported")
		}
		k.Alg = ES256
	default:
		return nil, fmt.Errorf("unsupported key type %T", priv)
	}
	jwk, err := k.JWK()
	if err != nil {
		return nil, err
	}
	k.ID = jwk.thumbprint()
	jwk.Kid = k.ID
	return k, nil
}

func (k *Key) method() jwt.SigningMethod {
	if k.Alg == ES256 {
		return jwt.SigningMethodES256
	}
	return jwt.SigningMethodEdDSA
}

// JWK is a public key as published in the JWKS document.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWK returns the public half of k.
func (k *Key) JWK() (JWK, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	j := JWK{Kid: k.ID, Alg: k.Alg, Use: "sig"}
	switch p := k.public.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(p)
	case *ecdsa.PublicKey:
		raw, err := p.Bytes()
		if err != nil {
			return JWK{}, fmt.Errorf("encode p-256 key: %w", err)
		}
		// raw is 0x04 || X || Y, 32 bytes each.
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	default:
		return JWK{}, fmt.Errorf("unsupported public key %T", k.public)
	}
	return j, nil
}

// thumbprint is the RFC 7638 thumbprint: SHA-256 over the required members
// in lexical order, without white space.
func (j JWK) thumbprint() string {
	var canon []byte
	if j.Kty == "OKP" {
		canon, _ = json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
		}{j.Crv, j.Kty, j.X})
	} else {
		canon, _ = json.Marshal(struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{j.Crv, j.Kty, j.X, j.Y})
	}
	sum := sha256.Sum256(canon)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// MarshalPEM writes the private key as a PKCS #8 "PRIVATE KEY" block.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.private)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePEM reads every PKCS #8 "PRIVATE KEY" block of data, in order. Blocks
// of other types are an error, so that a misplaced certificate is noticed.
func ParsePEM(data []byte) ([]*Key, error) {
	var keys []*Key
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("pem block %d is %q, want PRIVATE KEY (PKCS #8)", n, block.Type)
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("pem block %d: unsupported key type %T", n, priv)
		}
		k, err := newKey(signer)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PRIVATE KEY block found")
	}
	return keys, nil
}
