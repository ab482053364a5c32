package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultsWhenUnset(t *testing.T) {
	e := New(Map(nil))
	if got := e.String("A", "x"); got != "x" {
		t.Errorf("String = %q, want x", got)
	}
	if got := e.Int("B", 7, 0, 10); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if got := e.Duration("C", time.Second, 0, time.Hour); got != time.Second {
		t.Errorf("Duration = %s, want 1s", got)
	}
	if got := e.Bytes("D", 64<<10, 0, 1<<30); got != 64<<10 {
		t.Errorf("Bytes = %d, want 65536", got)
	}
	if got := e.List("E", []string{"a"}); len(got) != 1 || got[0] != "a" {
		t.Errorf("List = %v, want [a]", got)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
	if vars := e.Vars(); len(vars) != 5 || vars[3].Name != "D" || vars[3].Default != "64KiB" {
		t.Errorf("Vars = %+v", vars)
	}
}

func TestParsesSetValues(t *testing.T) {
	e := New(Map(map[string]string{
		"N": " 42 ", "D": "250ms", "B": "1MiB", "F": "0.5",
		"T": "true", "L": "a, b,,c", "P": "lfu",
	}))
	if got := e.Int("N", 0, 0, 100); got != 42 {
		t.Errorf("Int = %d", got)
	}
	if got := e.Duration("D", 0, 0, time.Second); got != 250*time.Millisecond {
		t.Errorf("Duration = %s", got)
	}
	if got := e.Bytes("B", 0, 0, 1<<30); got != 1<<20 {
		t.Errorf("Bytes = %d", got)
	}
	if got := e.Float("F", 0, 0, 1); got != 0.5 {
		t.Errorf("Float = %g", got)
	}
	if got := e.Bool("T", false); !got {
		t.Errorf("Bool = false")
	}
	if got := strings.Join(e.List("L", nil), "|"); got != "a|b|c" {
		t.Errorf("List = %q", got)
	}
	if got := e.OneOf("P", "lru", "lru", "lfu"); got != "lfu" {
		t.Errorf("OneOf = %q", got)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

func TestEveryBadValueIsNamed(t *testing.T) {
	e := New(Map(map[string]string{
		"SB_INT": "ten", "SB_RANGE": "500", "SB_DUR": "5", "SB_SHORT": "1ms",
		"SB_SIZE": "lots", "SB_BOOL": "maybe", "SB_ONE": "mru", "SB_F": "x",
	}))
	e.Int("SB_INT", 1, 0, 10)
	e.Int("SB_RANGE", 1, 0, 10)
	e.Duration("SB_DUR", time.Second, 0, time.Hour)
	e.Duration("SB_SHORT", time.Second, time.Second, time.Hour)
	e.Bytes("SB_SIZE", 1, 0, 10)
	e.Bool("SB_BOOL", false)
	e.OneOf("SB_ONE", "lru", "lru", "lfu")
	e.Float("SB_F", 0, 0, 1)
	err := e.Err()
	if err == nil {
		t.Fatal("Err = nil, want every bad variable")
	}
	for _, name := range []string{"SB_INT", "SB_RANGE", "SB_DUR", "SB_SHORT", "SB_SIZE", "SB_BOOL", "SB_ONE", "SB_F"} {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	e := New(Map(map[string]string{"SB_SECRET": "hunter2"}))
	if got := e.Secret("SB_SECRET"); got != "hunter2" {
		t.Fatalf("Secret = %q", got)
	}
	e.Fail("SB_SECRET", "must be at least %d bytes", 32)
	if err := e.Err(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Err = %v", err)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"512", 512}, {"64KiB", 64 << 10}, {"64K", 64 << 10},
		{"1 MiB", 1 << 20}, {"2G", 2 << 30}, {"10B", 10},
	} {
		got, err := ParseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, _ := ParseBytes(FormatBytes(got)); back != got {
			t.Errorf("FormatBytes(%d) = %q does not parse back", got, FormatBytes(got))
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "KiB", "9999999999999GiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = nil error", bad)
		}
	}
}

func TestAddr(t *testing.T) {
	tests := []struct {
		value, want string
		ok          bool
	}{
		{"", "127.0.0.1:1", true},
		{"0.0.0.0:7102", "0.0.0.0:7102", true},
		{":0", ":0", true},
		{"[::1]:80", "[::1]:80", true},
		{"7102", "127.0.0.1:1", false},
		{"localhost:http", "127.0.0.1:1", false},
		{"127.0.0.1:70000", "127.0.0.1:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			e := New(Map(map[string]string{"X_ADDR": tt.value}))
			if got := e.Addr("X_ADDR", "127.0.0.1:1"); got != tt.want {
				t.Errorf("Addr = %q, want %q", got, tt.want)
			}
			err := e.Err()
			if tt.ok != (err == nil) {
				t.Fatalf("Err = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "X_ADDR") {
				t.Errorf("error %q does not name X_ADDR", err)
			}
		})
	}
}
