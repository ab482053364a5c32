package token

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AccessType is the typ header of access tokens (RFC 9068).
const AccessType = "at+jwt"

// MaxLeeway bounds the clock leeway a Verifier accepts.
const MaxLeeway = time.Minute

// Claims are what an access token says.
type Claims struct {
	UserID    string
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// jwtClaims is the wire form: registered claims plus the session id.
type jwtClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// Minter signs access tokens.
type Minter struct {
	keys     *Keyring
	issuer   string
	audience string
}

// NewMinter returns a Minter for issuer and audience.
func NewMinter(keys *Keyring, issuer, audience string) *Minter {
	return &Minter{keys: keys, issuer: issuer, audience: audience}
}

// Mint signs c. The token's exp is c.ExpiresAt, its iat and nbf c.IssuedAt.
func (m *Minter) Mint(c Claims) (string, error) {
	k := m.keys.Signer()
	if k == nil {
		return "", errors.New("no signing key")
	}
	wire := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.issuer,
			Subject:   c.UserID,
			Audience:  jwt.ClaimStrings{m.audience},
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			NotBefore: jwt.NewNumericDate(c.IssuedAt),
		},
		SessionID: c.SessionID,
	}
	t := jwt.NewWithClaims(k.method(), wire)
	t.Header["kid"] = k.ID
	t.Header["typ"] = AccessType
	s, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// Reason says why a token was refused. Its text names a category only,
// never any part of the token.
type Reason string

// The reasons Verify returns.
const (
	ReasonMalformed   Reason = "malformed"
	ReasonTooLong     Reason = "too long"
	ReasonAlgorithm   Reason = "algorithm not allowed"
	ReasonUnknownKey  Reason = "unknown key"
	ReasonSignature   Reason = "bad signature"
	ReasonExpired     Reason = "expired"
	ReasonNotYetValid Reason = "not yet valid"
	ReasonClaims      Reason = "bad claims"
)

// Error is a refused token.
type Error struct{ Reason Reason }

func (e *Error) Error() string { return "access token refused: " + string(e.Reason) }

func refuse(r Reason) error { return &Error{Reason: r} }

// ReasonOf returns the reason of a Verify error, or "" for other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	Issuer   string // required
	Audience string // required
	// Leeway is the clock skew allowed on exp, nbf and iat, at most
	// MaxLeeway.
	Leeway time.Duration
	// MaxBytes caps the token's length before any parsing. 0 = 4096.
	MaxBytes int
	// Algorithms is the allow-list. nil = Algorithms.
	Algorithms []string
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

// Verifier checks access tokens. See the package doc for what it checks.
type Verifier struct {
	keys   *Keyring
	opts   VerifierOptions
	parser *jwt.Parser
}

// NewVerifier returns a Verifier over keys.
func NewVerifier(keys *Keyring, opts VerifierOptions) (*Verifier, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("verifier needs an issuer and an audience")
	}
	if opts.Leeway < 0 || opts.Leeway > MaxLeeway {
		return nil, fmt.Errorf("leeway %s is outside [0, %s]", opts.Leeway, MaxLeeway)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 4096
	}
	if opts.Algorithms == nil {
		opts.Algorithms = Algorithms
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := jwt.NewParser(
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
		jwt.WithStrictDecoding(),
	)
	return &Verifier{keys: keys, opts: opts, parser: p}, nil
}

// Issuer returns the issuer the verifier requires.
func (v *Verifier) Issuer() string { return v.opts.Issuer }

// Audience returns the audience the verifier requires.
func (v *Verifier) Audience() string { return v.opts.Audience }

// Verify checks s and returns its claims, or an *Error.
func (v *Verifier) Verify(s string) (Claims, error) {
	if len(s) > v.opts.MaxBytes {
		return Claims{}, refuse(ReasonTooLong)
	}
	if s == "" {
		return Claims{}, refuse(ReasonMalformed)
	}
	var wire jwtClaims
	_, err := v.parser.ParseWithClaims(s, &wire, v.keyFor)
	if err != nil {
		return Claims{}, classify(err)
	}
	if wire.Subject == "" || wire.SessionID == "" || wire.IssuedAt == nil {
		return Claims{}, refuse(ReasonClaims)
	}
	return Claims{
		UserID:    wire.Subject,
		SessionID: wire.SessionID,
		IssuedAt:  wire.IssuedAt.Time,
		ExpiresAt: wire.ExpiresAt.Time,
	}, nil
}

// keyFor finds the verification key: the algorithm must be allowed, typ
// at+jwt, the kid known and its key's algorithm the token's. It runs before
// the signature is checked.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if !slices.Contains(v.opts.Algorithms, t.Method.Alg()) {
		return nil, refuse(ReasonAlgorithm)
	}
	if typ, _ := t.Header["typ"].(string); typ != AccessType {
		return nil, refuse(ReasonMalformed)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, refuse(ReasonUnknownKey)
	}
	k, ok := v.keys.Lookup(kid)
	if !ok {
		return nil, refuse(ReasonUnknownKey)
	}
	if k.Alg != t.Method.Alg() {
		return nil, refuse(ReasonAlgorithm)
	}
	return k.public, nil
}

// classify maps a parser error to a Reason, keeping our own where keyFor
// gave one.
func classify(err error) error {
	var own *Error
	switch {
	case errors.As(err, &own):
		return own
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse(ReasonNotYetValid)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(ReasonSignature)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An alg the library does not know at all.
		return refuse(ReasonAlgorithm)
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return refuse(ReasonClaims)
	}
	return refuse(ReasonMalformed)
}
