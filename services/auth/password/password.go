package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id costs.
type Params struct {
	Time      uint32 // passes; at least 1
	MemoryKiB uint32 // at least 8*Threads
	Threads   uint8  // lanes; at least 1
}

// Default follows RFC 9106's second recommendation, with two lanes for a
// small machine.
var Default = Params{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

const (
	saltLen = 16
	keyLen  = 32
	// MaxBytes caps a password: argon2 takes any length, a server should
	// not.
	MaxBytes = 1024
	// maxMemoryKiB bounds the memory a stored hash can make us spend.
	maxMemoryKiB = 1 << 20
	maxTime      = 16
)

// Validate checks p.
func (p Params) Validate() error {
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB {
		return fmt.Errorf("argon2id parameters t=%d m=%d p=%d are out of bounds", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// ErrMalformed is a stored hash that cannot be read.
var ErrMalformed = errors.New("password hash malformed")

// Hasher hashes and checks passwords, at most a few at a time.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// NewHasher returns a Hasher making new hashes with p and running at most
// concurrent at once.
func NewHasher(p Params, concurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrent < 1 {
		return nil, errors.New("hasher needs at least one slot")
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrent)}, nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of password with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxBytes {
		return "", fmt.Errorf("password longer than %d bytes", MaxBytes)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("random salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64(salt), b64(key)), nil
}

// Verify says whether password matches the stored hash, comparing in
// constant time.
func (h *Hasher) Verify(ctx context.Context, password, stored string) (bool, error) {
	p, salt, key, err := decode(stored)
	if err != nil {
		return false, err
	}
	if len(password) > MaxBytes {
		return false, nil
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func decode(stored string) (Params, []byte, []byte, error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformed
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, ErrMalformed
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil || p.Validate() != nil {
		return Params{}, nil, nil, ErrMalformed
	}
	salt, err1 := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return Params{}, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}
