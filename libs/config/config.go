// Package config reads a service's settings from the environment.
//
// An Env collects every problem it meets instead of stopping at the first, so
// that a service started with several bad variables hears of all of them at
// once, each message naming its variable. Reading a variable also records it,
// with its default, so that tools can list what a service reads.
//
// An Env is not safe for concurrent use; services read their settings once at
// start-up.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Var describes one variable an Env was asked for.
type Var struct {
	Name    string
	Default string
}

// Env reads variables through a lookup function and collects errors.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
	vars   []Var
}

// FromEnv reads the process environment.
func FromEnv() *Env { return New(os.LookupEnv) }

// New reads variables through lookup; tests pass a map's lookup.
func New(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// Map returns a lookup function over m, for tests.
func Map(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Err returns every problem met so far, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Vars returns the variables read so far, in the order they were read.
func (e *Env) Vars() []Var { return slices.Clone(e.vars) }

// Fail records a problem with a variable; services use it for checks that
// span several settings.
func (e *Env) Fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (e *Env) get(name, def string) (string, bool) {
	e.vars = append(e.vars, Var{Name: name, Default: def})
	v, ok := e.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def, false
	}
	return strings.TrimSpace(v), true
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	v, _ := e.get(name, def)
	return v
}

// Secret returns the variable like String, but no error message ever
// contains its value.
func (e *Env) Secret(name string) string {
	v, _ := e.get(name, "")
	return v
}

// OneOf returns the variable, which must be one of allowed.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v, set := e.get(name, def)
	if set && !slices.Contains(allowed, v) {
		e.Fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// Addr returns the variable as a listen address, host:port with a numeric
// port (an empty host listens on every interface; port 0 picks a free one).
func (e *Env) Addr(name, def string) string {
	v, set := e.get(name, def)
	if !set {
		return def
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		e.Fail(name, "%q is not host:port", v)
		return def
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		e.Fail(name, "%q has no port number in [0, 65535]", v)
		return def
	}
	return v
}

// Int returns the variable as an integer in [lo, hi].
func (e *Env) Int(name string, def, lo, hi int) int {
	v, set := e.get(name, strconv.Itoa(def))
	if !set {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.Fail(name, "%q is not an integer", v)
		return def
	}
	if n < lo || n > hi {
		e.Fail(name, "%d is outside [%d, %d]", n, lo, hi)
		return def
	}
	return n
}

// Float returns the variable as a number in [lo, hi].
func (e *Env) Float(name string, def, lo, hi float64) float64 {
	v, set := e.get(name, strconv.FormatFloat(def, 'g', -1, 64))
	if !set {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.Fail(name, "%q is not a number", v)
		return def
	}
	if f < lo || f > hi {
		e.Fail(name, "%g is outside [%g, %g]", f, lo, hi)
		return def
	}
	return f
}

// Bool returns the variable as a boolean (true, false, 1, 0, ...).
func (e *Env) Bool(name string, def bool) bool {
	v, set := e.get(name, strconv.FormatBool(def))
	if !set {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(name, "%q is not a boolean", v)
		return def
	}
	return b
}

// Duration returns the variable as a Go duration ("250ms", "10m") in
// [lo, hi].
func (e *Env) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, set := e.get(name, def.String())
	if !set {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.Fail(name, "%q is not a duration such as 30s or 5m", v)
		return def
	}
	if d < lo || d > hi {
		e.Fail(name, "%s is outside [%s, %s]", d, lo, hi)
		return def
	}
	return d
}

// Bytes returns the variable as a size in bytes in [lo, hi]. It accepts a
// plain number or one with a binary suffix: KiB, MiB, GiB (K, M, G too).
func (e *Env) Bytes(name string, def, lo, hi int64) int64 {
	v, set := e.get(name, FormatBytes(def))
	if !set {
		return def
	}
	n, err := ParseBytes(v)
	if err != nil {
		e.Fail(name, "%v", err)
		return def
	}
	if n < lo || n > hi {
		e.Fail(name, "%s is outside [%s, %s]", FormatBytes(n), FormatBytes(lo), FormatBytes(hi))
		return def
	}
	return n
}

// List returns the variable split on commas, with blanks dropped.
func (e *Env) List(name string, def []string) []string {
	v, set := e.get(name, strings.Join(def, ","))
	if !set {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// ParseBytes reads a size such as "512", "64KiB" or "1M".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 65536, 64KiB or 1MiB", s)
	}
	return n * mult, nil
}

// FormatBytes writes n with the largest binary suffix that divides it.
func FormatBytes(n int64) string {
	for _, u := range byteUnits[:3] {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
