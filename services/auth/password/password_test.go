package password

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cheap keeps the tests fast; production uses Default.
var cheap = Params{Time: 1, MemoryKiB: 64, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := NewHasher(cheap, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stored, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(stored, "correct") {
		t.Fatalf("stored form %q", stored)
	}
	again, _ := h.Hash(ctx, "correct horse")
	if again == stored {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	cases := []struct {
		pw   string
		want bool
	}{
		{"correct horse", true},
		{"correct horsE", false},
		{"", false},
		{strings.Repeat("x", MaxBytes+1), false},
	}
	for _, tc := range cases {
		ok, err := h.Verify(ctx, tc.pw, stored)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%d bytes) = %v, %v; want %v", len(tc.pw), ok, err, tc.want)
		}
	}
	// A hash made with other parameters still verifies.
	other, _ := NewHasher(Params{Time: 2, MemoryKiB: 32, Threads: 2}, 1)
	if ok, err := other.Verify(ctx, "correct horse", stored); err != nil || !ok {
		t.Fatalf("verify across parameters = %v, %v", ok, err)
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", MaxBytes+1)); err == nil {
		t.Fatal("hashed an oversized password")
	}
}

func TestVerifyMalformed(t *testing.T) {
	h, _ := NewHasher(cheap, 1)
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, err := h.Verify(context.Background(), "pw", bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParamsBounds(t *testing.T) {
	for _, p := range []Params{{0, 64, 1}, {1, 4, 1}, {1, 64, 0}, {99, 64, 1}, {1, 2 << 20, 1}} {
		if _, err := NewHasher(p, 1); err == nil {
			t.Errorf("NewHasher(%+v) accepted", p)
		}
	}
	if _, err := NewHasher(cheap, 0); err == nil {
		t.Error("NewHasher with no slots accepted")
	}
}

func TestHashWaitsForContext(t *testing.T) {
	h, _ := NewHasher(cheap, 1)
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with every slot taken and a cancelled ctx = %v", err)
	}
}
