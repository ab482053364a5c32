package cacheclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeDNS answers lookups of one name from a set of addresses the test
// changes, as Docker's DNS answers a scaled service's name.
type fakeDNS struct {
	name string

	mu      sync.Mutex
	hosts   []string
	err     error
	lookups int
}

func (f *fakeDNS) answer(err error, hosts ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts, f.err = hosts, err
}

func (f *fakeDNS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if host != f.name {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(f.hosts), f.err
}

// discovered returns a client of dns:///cache.test:port answered by dns.
func discovered(t *testing.T, dns *fakeDNS, port string, opts Options) *Client {
	t.Helper()
	opts.LookupHost = dns.LookupHost
	c, err := New([]string{"dns:///" + dns.name + ":" + port}, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitReplicas(t *testing.T, c *Client, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("replicas %q (have %q)", want, c.Replicas()), func() bool {
		return slices.Equal(c.Replicas(), want)
	})
}

func owners(c *Client, keys int) []string {
	out := make([]string, keys)
	for i := range out {
		out[i] = c.Owner(keyName(i))
	}
	return out
}

// As the name's replicas grow and shrink, the client follows, and only
// keys of the replica that came or went change owner.
func TestDiscoveryGrowsAndShrinks(t *testing.T) {
	const keys = 20_000
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(nil, "127.0.1.3", "127.0.1.1", "127.0.1.2", "127.0.1.1")
	c := discovered(t, dns, "7300", Options{ResolveEvery: time.Millisecond})
	if got, want := c.Replicas(), []string{"127.0.1.1:7300", "127.0.1.2:7300", "127.0.1.3:7300"}; !slices.Equal(got, want) {
		t.Fatalf("after New: replicas %q, want %q (sorted, without repeats)", got, want)
	}
	before := owners(c, keys)

	dns.answer(nil, "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4")
	waitReplicas(t, c, "127.0.1.1:7300", "127.0.1.2:7300", "127.0.1.3:7300", "127.0.1.4:7300")
	grown := owners(c, keys)
	moved := 0
	for i := range keys {
		if grown[i] != before[i] {
			moved++
			if grown[i] != "127.0.1.4:7300" {
				t.Fatalf("key %d moved from %s to %s, not to the new replica", i, before[i], grown[i])
			}
		}
	}
	if moved < keys/5 || moved > keys/3 {
		t.Errorf("%d of %d keys moved to the 4th replica, want about a quarter", moved, keys)
	}

	dns.answer(nil, "127.0.1.1", "127.0.1.3", "127.0.1.4")
	waitReplicas(t, c, "127.0.1.1:7300", "127.0.1.3:7300", "127.0.1.4:7300")
	for i, owner := range owners(c, keys) {
		if (owner != grown[i]) != (grown[i] == "127.0.1.2:7300") {
			t.Fatalf("key %d: owner %s, before the removal %s", i, owner, grown[i])
		}
	}
}

// syncBuffer is a bytes.Buffer that the client's goroutine and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A failed resolution, or an answer without an address, keeps the last
// set, and is logged once until a resolution succeeds again.
func TestDiscoveryKeepsLastSetWhenResolveFails(t *testing.T) {
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(nil, "127.0.1.1", "127.0.1.2")
	var logs syncBuffer
	c := discovered(t, dns, "7300", Options{
		ResolveEvery: time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	want := []string{"127.0.1.1:7300", "127.0.1.2:7300"}

	for _, fail := range []error{errors.New("server misbehaving"), nil} {
		dns.answer(fail)
		n := dns.count()
		waitFor(t, "three failed lookups", func() bool { return dns.count() >= n+3 })
		if got := c.Replicas(); !slices.Equal(got, want) {
			t.Fatalf("after failed lookups (%v): replicas %q, want the last set %q", fail, got, want)
		}
	}
	if n := strings.Count(logs.String(), "resolution failed"); n != 1 {
		t.Errorf("%d warnings over an outage, want 1:\n%s", n, logs.String())
	}

	dns.answer(nil, "127.0.1.2")
	waitReplicas(t, c, "127.0.1.2:7300")
	if !strings.Contains(logs.String(), "resolves again") {
		t.Errorf("no log of the recovery:\n%s", logs.String())
	}
}

// A name that does not resolve at start gives a client whose calls fail
// with UNAVAILABLE and the lookup's error, and ask for an early
// resolution: the client needs no period to find replicas that come up.
func TestDiscoveryUnresolvedAtStart(t *testing.T) {
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(&net.DNSError{Err: "no such host", Name: "cache.test", IsNotFound: true})
	c := discovered(t, dns, "7300", Options{ResolveEvery: time.Hour})
	ctx := testCtx(t)

	if got := c.Replicas(); len(got) != 0 || c.Owner("k") != "" {
		t.Fatalf("replicas %q, owner %q; want none", got, c.Owner("k"))
	}
	calls := map[string]func() error{
		"Get":      func() error { _, err := c.Get(ctx, "users", "k"); return err },
		"BatchGet": func() error { _, err := c.BatchGet(ctx, "users", []string{"k"}); return err },
		"BatchSet": func() error { return c.BatchSet(ctx, "users", []Entry{{Key: "k"}}) },
		"Stats":    func() error { _, err := c.Stats(ctx, "users"); return err },
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no such host") {
			t.Errorf("%s = %v, want UNAVAILABLE with the lookup's error", name, err)
		}
	}
	if _, err := c.BatchGet(ctx, "users", nil); err != nil {
		t.Errorf("BatchGet of no key = %v", err)
	}

	dns.answer(nil, "127.0.1.1")
	waitReplicas(t, c, "127.0.1.1:7300")
}

// Close stops the goroutine that resolves the name.
func TestDiscoveryCloseStopsResolving(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(nil, "127.0.1.1")
	c, err := New([]string{"dns:///cache.test:7300"}, Options{LookupHost: dns.LookupHost, ResolveEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lookups", func() bool { return dns.count() >= 3 })
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

// fakesOnOnePort starts n fake replicas on 127.0.0.1, 127.0.0.2, ...
// sharing one port, as the replicas of a scaled service do. It skips the
// test where only 127.0.0.1 can be listened on.
func fakesOnOnePort(t *testing.T, n int) (string, []*fakeReplica) {
	t.Helper()
	for range 5 {
		lis, err := listenOnOnePort(n)
		if errors.Is(err, errPortTaken) {
			continue
		}
		if err != nil {
			t.Skipf("loopback addresses besides 127.0.0.1: %v", err)
		}
		fakes := make([]*fakeReplica, n)
		for i, l := range lis {
			fakes[i] = serveFake(t, l)
		}
		_, port, _ := net.SplitHostPort(fakes[0].addr)
		return port, fakes
	}
	t.Fatal("no port free on every loopback address")
	return "", nil
}

var errPortTaken = errors.New("port taken")

func listenOnOnePort(n int) ([]net.Listener, error) {
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lis := []net.Listener{first}
	_, port, _ := net.SplitHostPort(first.Addr().String())
	for i := 2; i <= n; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%s", i, port))
		if err != nil {
			for _, l := range lis {
				l.Close()
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, errPortTaken
			}
			return nil, err
		}
		lis = append(lis, l)
	}
	return lis, nil
}

// Over real gRPC: a replica that joins the name takes its keys (cold),
// the others keep theirs; one that leaves gives its keys back.
func TestDiscoveryOverGRPC(t *testing.T) {
	port, fakes := fakesOnOnePort(t, 3)
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(nil, "127.0.0.1", "127.0.0.2")
	c := discovered(t, dns, port, Options{ResolveEvery: 10 * time.Millisecond})
	ctx := testCtx(t)

	var keys []string
	for i := range 60 {
		k := keyName(i)
		keys = append(keys, k)
		if err := c.Set(ctx, "users", k, []byte(k), 0); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}

	third := fakes[2].addr
	dns.answer(nil, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	waitReplicas(t, c, fakes[0].addr, fakes[1].addr, third)
	items, err := c.BatchGet(ctx, "users", keys)
	if err != nil {
		t.Fatalf("BatchGet after the join: %v", err)
	}
	joined := 0
	for i, k := range keys {
		if owned := c.Owner(k) == third; items[i].Found == owned {
			t.Fatalf("%s: found %v, owned by the new replica %v", k, items[i].Found, owned)
		} else if owned {
			joined++
		}
	}
	if joined == 0 {
		t.Fatal("the new replica owns none of the keys")
	}

	fakes[2].stop()
	dns.answer(nil, "127.0.0.1", "127.0.0.2")
	waitReplicas(t, c, fakes[0].addr, fakes[1].addr)
	items, err = c.BatchGet(ctx, "users", keys)
	if err != nil {
		t.Fatalf("BatchGet after the leave: %v", err)
	}
	for i, k := range keys {
		if !items[i].Found {
			t.Errorf("%s not found on %s after the new replica left", k, c.Owner(k))
		}
	}
}

// A call that finds its replica down asks for a resolution at once, long
// before the period: the replica, gone from the name, is dropped, and its
// keys go to their next replica.
func TestDiscoveryResolvesWhenReplicaDown(t *testing.T) {
	port, fakes := fakesOnOnePort(t, 3)
	dns := &fakeDNS{name: "cache.test"}
	dns.answer(nil, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	c := discovered(t, dns, port, Options{ResolveEvery: time.Hour})
	ctx := testCtx(t)
	down := fakes[1]
	downKey, _ := splitByOwner(t, c, down.addr)

	down.stop()
	dns.answer(nil, "127.0.0.1", "127.0.0.3")
	if _, err := c.Get(ctx, "users", downKey); status.Code(err) != codes.Unavailable {
		t.Fatalf("Get from the stopped replica = %v, want UNAVAILABLE", err)
	}
	waitReplicas(t, c, fakes[0].addr, fakes[2].addr)
	if err := c.Set(ctx, "users", downKey, []byte("v"), 0); err != nil {
		t.Fatalf("Set after the drop: %v", err)
	}
	if owner := c.Owner(downKey); owner == down.addr || !fakes[0].has(downKey) && !fakes[2].has(downKey) {
		t.Fatalf("%s went to %s, not to a live replica", downKey, owner)
	}
}
