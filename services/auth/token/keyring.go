package token

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// KeyringOptions configure a Keyring.
type KeyringOptions struct {
	// Alg is the algorithm of generated keys: EdDSA or ES256. "" = EdDSA.
	// Ignored when File is set: each key there has its own.
	Alg string
	// File, if set, holds PEM private keys; the first one signs. It is read
	// again on every Tick, so that an operator rotates by editing it.
	// "" = keys are generated in memory at start.
	File string
	// Rotation is how long a generated key signs before the next one takes
	// over. 0 = a generated key signs forever.
	Rotation time.Duration
	// Overlap is how long a key that stopped signing still verifies: at
	// least the access token lifetime plus the leeway. Required.
	Overlap time.Duration
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

type keyEntry struct {
	key      *Key
	signFrom time.Time // a generated next key signs from then on
	retireAt time.Time // zero = still current; else verifies until then
}

// snapshot is an immutable view for the hot path.
type snapshot struct {
	signer *Key
	byID   map[string]*Key
	jwks   []JWK
}

// Keyring holds the keys of one replica. See the package doc.
type Keyring struct {
	// Read-only after construction.
	opts KeyringOptions

	// snap is swapped whole by Tick and read without locks.
	snap atomic.Pointer[snapshot]

	// Guarded by mu: the mutable key list behind snap.
	mu      sync.Mutex
	entries []keyEntry
	modTime time.Time
}

// NewKeyring builds a keyring from a file or from freshly generated keys.
func NewKeyring(opts KeyringOptions) (*Keyring, error) {
	if opts.Alg == "" {
		opts.Alg = EdDSA
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Overlap <= 0 {
		return nil, errors.New("keyring overlap must be positive")
	}
	r := &Keyring{opts: opts}
	now := opts.Now()
	if opts.File != "" {
		if err := r.reloadLocked(now, true); err != nil {
			return nil, err
		}
		return r, nil
	}
	active, err := GenerateKey(opts.Alg)
	if err != nil {
		return nil, err
	}
	r.entries = []keyEntry{{key: active, signFrom: now}}
	if opts.Rotation > 0 {
		next, err := GenerateKey(opts.Alg)
		if err != nil {
			return nil, err
		}
		r.entries = append(r.entries, keyEntry{key: next, signFrom: now.Add(opts.Rotation)})
	}
	r.publishLocked()
	return r, nil
}

// Signer returns the key that signs now.
func (r *Keyring) Signer() *Key { return r.snap.Load().signer }

// Lookup returns the key named kid, if it may verify.
func (r *Keyring) Lookup(kid string) (*Key, bool) {
	k, ok := r.snap.Load().byID[kid]
	return k, ok
}

// JWKS returns the public keys in a JWKS document's "keys" order: the
// signing key first.
func (r *Keyring) JWKS() []JWK { return r.snap.Load().jwks }

// Run calls Tick every interval until ctx ends, reporting failures to onErr.
func (r *Keyring) Run(ctx context.Context, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Tick(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Tick rotates a generated keyring when its next key is due, re-reads a key
// file that changed, and drops retired keys past their overlap. A file that
// fails to parse leaves the keyring as it was.
func (r *Keyring) Tick() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	if r.opts.File != "" {
		if err := r.reloadLocked(now, false); err != nil {
			return err
		}
	} else if err := r.rotateLocked(now); err != nil {
		return err
	}
	r.publishLocked()
	return nil
}

// rotateLocked promotes the next generated key once it is due. Caller must
// hold mu.
func (r *Keyring) rotateLocked(now time.Time) error {
	if r.opts.Rotation <= 0 {
		return nil
	}
	last := &r.entries[len(r.entries)-1]
	if now.Before(last.signFrom) {
		r.dropRetiredLocked(now)
		return nil
	}
	next, err := GenerateKey(r.opts.Alg)
	if err != nil {
		return err
	}
	for i := range r.entries[:len(r.entries)-1] {
		if r.entries[i].retireAt.IsZero() {
			r.entries[i].retireAt = now.Add(r.opts.Overlap)
		}
	}
	r.entries = append(r.entries, keyEntry{key: next, signFrom: now.Add(r.opts.Rotation)})
	r.dropRetiredLocked(now)
	return nil
}

// reloadLocked reads the key file when it changed. Keys that left the file
// keep verifying for the overlap. Caller must hold mu (or own r alone).
func (r *Keyring) reloadLocked(now time.Time, first bool) error {
	st, err := os.Stat(r.opts.File)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if !first && st.ModTime().Equal(r.modTime) {
		r.dropRetiredLocked(now)
		return nil
	}
	data, err := os.ReadFile(r.opts.File)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	keys, err := ParsePEM(data)
	if err != nil {
		return fmt.Errorf("key file %s: %w", r.opts.File, err)
	}
	inFile := make(map[string]bool, len(keys))
	fresh := make([]keyEntry, 0, len(keys)+len(r.entries))
	for _, k := range keys {
		inFile[k.ID] = true
		fresh = append(fresh, keyEntry{key: k, signFrom: now})
	}
	for _, e := range r.entries {
		if inFile[e.key.ID] {
			continue
		}
		if e.retireAt.IsZero() {
			e.retireAt = now.Add(r.opts.Overlap)
		}
		fresh = append(fresh, e)
	}
	r.entries, r.modTime = fresh, st.ModTime()
	r.dropRetiredLocked(now)
	r.publishLocked()
	return nil
}

// dropRetiredLocked forgets keys whose overlap has passed. Caller must hold
// mu.
func (r *Keyring) dropRetiredLocked(now time.Time) {
	kept := r.entries[:0]
	for _, e := range r.entries {
		if e.retireAt.IsZero() || now.Before(e.retireAt) {
			kept = append(kept, e)
		}
	}
	r.entries = kept
}

// publishLocked swaps in a snapshot of the entries. The signer is the
// newest key already due to sign that is not retired. Caller must hold mu.
func (r *Keyring) publishLocked() {
	now := r.opts.Now()
	s := &snapshot{byID: make(map[string]*Key, len(r.entries))}
	for _, e := range r.entries {
		s.byID[e.key.ID] = e.key
		if e.retireAt.IsZero() && !now.Before(e.signFrom) && (s.signer == nil || r.opts.File == "") {
			s.signer = e.key
		}
	}
	if s.signer != nil {
		j, _ := s.signer.JWK()
		s.jwks = append(s.jwks, j)
	}
	for _, e := range r.entries {
		if e.key != s.signer {
			j, _ := e.key.JWK()
			s.jwks = append(s.jwks, j)
		}
	}
	r.snap.Store(s)
}
