package cacheclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// offline returns a client over addresses nobody dials: New connects
// lazily, so Owner and Replicas work without servers.
func offline(t *testing.T, n int) *Client {
	t.Helper()
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("cache-%d.switchboard:7300", i))
	}
	c, err := New(addrs, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func keyName(i int) string { return fmt.Sprintf("conversation:%d", i) }

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		opts  Options
		want  string
	}{
		{"none", nil, Options{}, "no replica"},
		{"empty", []string{"a:1", ""}, Options{}, "empty"},
		{"twice", []string{"a:1", "b:1", "a:1"}, Options{}, "a:1 is listed twice"},
		{"negative batch", []string{"a:1"}, Options{MaxBatch: -1}, "MaxBatch"},
		{"name and address", []string{"dns:///cache:7300", "a:1"}, Options{}, "only address"},
		{"DNS authority", []string{"dns://10.0.0.53/cache:7300"}, Options{}, "want dns:///host:port"},
		{"no port", []string{"dns:///cache"}, Options{}, "want dns:///host:port"},
		{"no host", []string{"dns:///:7300"}, Options{}, "want dns:///host:port"},
		{"negative period", []string{"dns:///cache:7300"}, Options{ResolveEvery: -time.Second}, "ResolveEvery"},
		{"period without name", []string{"a:1"}, Options{ResolveEvery: time.Second}, "need a dns:/// address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.addrs, tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// Keys spread evenly: every replica's share is within 5% of 1/N (the
// binomial standard deviation at 60k keys is under 1%).
func TestSpreadIsEven(t *testing.T) {
	const keys = 60_000
	for _, n := range []int{2, 3, 5, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := offline(t, n)
			count := map[string]int{}
			for i := range keys {
				count[c.Owner(keyName(i))]++
			}
			if len(count) != n {
				t.Fatalf("keys reached %d of %d replicas", len(count), n)
			}
			for addr, got := range count {
				share := float64(got) * float64(n) / keys
				if math.Abs(share-1) > 0.05 {
					t.Errorf("%s holds %d keys, %.3f of its fair share", addr, got, share)
				}
			}
		})
	}
}

// Adding an Nth replica moves about 1/N of the keys, all to the new one;
// removing it moves them back and nothing else.
func TestAddingReplicaMovesFewKeys(t *testing.T) {
	const keys = 60_000
	for _, n := range []int{2, 4, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			before := offline(t, n-1)
			after := offline(t, n)
			added := after.Replicas()[slices.IndexFunc(after.Replicas(), func(a string) bool {
				return !slices.Contains(before.Replicas(), a)
			})]

			moved := 0
			for i := range keys {
				from, to := before.Owner(keyName(i)), after.Owner(keyName(i))
				if from == to {
					continue
				}
				moved++
				if to != added {
					t.Fatalf("key %d moved from %s to %s, not to the new replica", i, from, to)
				}
			}
			share := float64(moved) * float64(n) / keys
			if math.Abs(share-1) > 0.05 {
				t.Errorf("%d of %d keys moved (%.3f of 1/%d)", moved, keys, share, n)
			}
		})
	}
}

// Clients that list the same replicas in another order agree on owners.
func TestOwnerIgnoresListOrder(t *testing.T) {
	addrs := []string{"10.0.0.3:7300", "10.0.0.1:7300", "10.0.0.2:7300"}
	a, err := New(addrs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New([]string{addrs[1], addrs[2], addrs[0]}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 1000 {
		if a.Owner(keyName(i)) != b.Owner(keyName(i)) {
			t.Fatalf("key %d: owners differ", i)
		}
	}
}

func TestGetSetDeleteReachTheOwner(t *testing.T) {
	c, fakes := cluster(t, 3, Options{})
	ctx := testCtx(t)

	for i := range 30 {
		k := keyName(i)
		if err := c.Set(ctx, "conversations", k, []byte(k), time.Minute); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
		for addr, f := range fakes {
			if f.has(k) != (addr == c.Owner(k)) {
				t.Fatalf("%s: held by %s = %v, owner %s", k, addr, f.has(k), c.Owner(k))
			}
		}
		item, err := c.Get(ctx, "conversations", k)
		if err != nil || !item.Found || string(item.Value) != k {
			t.Fatalf("Get %s = %+v, %v", k, item, err)
		}
		deleted, err := c.Delete(ctx, "conversations", k)
		if err != nil || !deleted {
			t.Fatalf("Delete %s = %v, %v", k, deleted, err)
		}
		if item, err := c.Get(ctx, "conversations", k); err != nil || item.Found {
			t.Fatalf("Get %s after Delete = %+v, %v", k, item, err)
		}
	}
}

// A batch reaches each replica as one call holding exactly the keys it
// owns, in request order, and the answers come back in request order.
func TestBatchSplitsAndMergesInOrder(t *testing.T) {
	c, fakes := cluster(t, 3, Options{})
	ctx := testCtx(t)

	var entries []Entry
	for i := range 60 {
		entries = append(entries, Entry{Key: keyName(i), Value: []byte(fmt.Sprint(i))})
	}
	if err := c.BatchSet(ctx, "conversations", entries); err != nil {
		t.Fatalf("BatchSet: %v", err)
	}
	for addr, f := range fakes {
		var want []string
		for _, e := range entries {
			if c.Owner(e.Key) == addr {
				want = append(want, e.Key)
			}
		}
		if calls := f.received(); len(calls) != 1 || !slices.Equal(calls[0], want) {
			t.Fatalf("%s received %q, want one call with %q", addr, calls, want)
		}
	}

	// Ask in another order, with misses and a repeated key among them.
	keys := []string{"missing-1"}
	for i := 59; i >= 0; i -= 3 {
		keys = append(keys, keyName(i))
	}
	keys = append(keys, "missing-2", keyName(59))
	items, err := c.BatchGet(ctx, "conversations", keys)
	if err != nil {
		t.Fatalf("BatchGet: %v", err)
	}
	for i, k := range keys {
		want, found := "", !strings.HasPrefix(k, "missing")
		if found {
			want = strings.TrimPrefix(k, "conversation:")
		}
		if items[i].Found != found || string(items[i].Value) != want {
			t.Errorf("item %d (%s) = %+v, want found %v %q", i, k, items[i], found, want)
		}
	}
}

// A replica's share larger than MaxBatch goes in several calls.
func TestBatchRespectsMaxBatch(t *testing.T) {
	c, fakes := cluster(t, 2, Options{MaxBatch: 7})
	ctx := testCtx(t)

	keys := make([]string, 50)
	for i := range keys {
		keys[i] = keyName(i)
	}
	if _, err := c.BatchGet(ctx, "conversations", keys); err != nil {
		t.Fatalf("BatchGet: %v", err)
	}
	for addr, f := range fakes {
		owned := 0
		for _, k := range keys {
			if c.Owner(k) == addr {
				owned++
			}
		}
		total, calls := 0, f.received()
		for _, call := range calls {
			if len(call) > 7 {
				t.Errorf("%s received a call of %d keys", addr, len(call))
			}
			total += len(call)
		}
		if want := (owned + 6) / 7; len(calls) != want || total != owned {
			t.Errorf("%s: %d calls with %d keys, want %d calls with %d", addr, len(calls), total, want, owned)
		}
	}
}

func TestBatchSetRefusesEmptyKeyBeforeSending(t *testing.T) {
	c, fakes := cluster(t, 2, Options{})
	err := c.BatchSet(testCtx(t), "conversations", []Entry{{Key: "a"}, {Key: ""}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "entries[1]") {
		t.Fatalf("BatchSet = %v, want InvalidArgument naming entries[1]", err)
	}
	for addr, f := range fakes {
		if calls := f.received(); len(calls) != 0 {
			t.Errorf("%s received %q", addr, calls)
		}
	}
}

// splitByOwner returns a key owned by down and one owned by another
// replica.
func splitByOwner(t *testing.T, c *Client, down string) (downKey, liveKey string) {
	t.Helper()
	for i := 0; downKey == "" || liveKey == ""; i++ {
		if k := keyName(i); c.Owner(k) == down {
			downKey = k
		} else {
			liveKey = k
		}
	}
	return downKey, liveKey
}

// Without fallover, keys of a stopped replica fail with UNAVAILABLE and
// nothing moves; the other keys are served.
func TestReplicaDown(t *testing.T) {
	c, fakes := cluster(t, 3, Options{})
	ctx := testCtx(t)
	down := c.Replicas()[1]
	downKey, liveKey := splitByOwner(t, c, down)
	for _, k := range []string{downKey, liveKey} {
		if err := c.Set(ctx, "users", k, []byte(k), 0); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	fakes[down].stop()

	_, err := c.Get(ctx, "users", downKey)
	var re *ReplicaError
	if status.Code(err) != codes.Unavailable || !errors.As(err, &re) || re.Addr != down {
		t.Fatalf("Get of the down replica's key = %v, want UNAVAILABLE from %s", err, down)
	}
	if err := c.Set(ctx, "users", downKey, []byte("new"), 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("Set of the down replica's key = %v, want UNAVAILABLE", err)
	}
	for addr, f := range fakes {
		if addr != down && f.has(downKey) {
			t.Fatalf("%s was re-homed to %s", downKey, addr)
		}
	}
	if item, err := c.Get(ctx, "users", liveKey); err != nil || !item.Found {
		t.Fatalf("Get of a live replica's key = %+v, %v", item, err)
	}

	items, err := c.BatchGet(ctx, "users", []string{downKey, liveKey})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), down) {
		t.Fatalf("BatchGet error = %v, want UNAVAILABLE naming %s", err, down)
	}
	if items[0].Found || !items[1].Found || string(items[1].Value) != liveKey {
		t.Fatalf("BatchGet items = %+v, want the live key only", items)
	}

	stats, err := c.Stats(ctx, "users")
	if err == nil || len(stats) != 3 {
		t.Fatalf("Stats = %d replicas, %v; want 3 and an error", len(stats), err)
	}
	for _, s := range stats {
		if (s.Addr == down) != (s.Err != nil) || (s.Err == nil) != (s.Stats != nil) {
			t.Errorf("stats of %s: %+v", s.Addr, s)
		}
	}
}

// With fallover, keys of a stopped replica go to their next replica.
func TestReplicaDownFallover(t *testing.T) {
	c, fakes := cluster(t, 3, Options{Fallover: true})
	ctx := testCtx(t)
	down := c.Replicas()[0]
	fakes[down].stop()

	var keys []string
	for i := 0; len(keys) < 20; i++ {
		if k := keyName(i); c.Owner(k) == down {
			keys = append(keys, k)
		}
	}
	// The next replica is the owner among the others.
	rest := slices.DeleteFunc(c.Replicas(), func(a string) bool { return a == down })
	next, err := New(rest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()

	if err := c.Set(ctx, "users", keys[0], []byte("v"), 0); err != nil {
		t.Fatalf("Set with fallover: %v", err)
	}
	if !fakes[next.Owner(keys[0])].has(keys[0]) {
		t.Fatalf("%s is not on its next replica %s", keys[0], next.Owner(keys[0]))
	}
	if item, err := c.Get(ctx, "users", keys[0]); err != nil || !item.Found {
		t.Fatalf("Get with fallover = %+v, %v", item, err)
	}

	entries := make([]Entry, len(keys))
	for i, k := range keys {
		entries[i] = Entry{Key: k, Value: []byte(k)}
	}
	if err := c.BatchSet(ctx, "users", entries); err != nil {
		t.Fatalf("BatchSet with fallover: %v", err)
	}
	items, err := c.BatchGet(ctx, "users", keys)
	if err != nil {
		t.Fatalf("BatchGet with fallover: %v", err)
	}
	for i, k := range keys {
		if !items[i].Found || string(items[i].Value) != k || !fakes[next.Owner(k)].has(k) {
			t.Errorf("%s: item %+v, on %s: %v", k, items[i], next.Owner(k), fakes[next.Owner(k)].has(k))
		}
	}

	// With every replica down, fallover gives up with UNAVAILABLE.
	for _, f := range fakes {
		f.stop()
	}
	if _, err := c.Get(ctx, "users", keys[0]); status.Code(err) != codes.Unavailable {
		t.Fatalf("Get with every replica down = %v, want UNAVAILABLE", err)
	}
	if _, err := c.BatchGet(ctx, "users", keys); status.Code(err) != codes.Unavailable {
		t.Fatalf("BatchGet with every replica down = %v, want UNAVAILABLE", err)
	}
}
