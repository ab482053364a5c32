package cacheclient_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"switchboard/libs/cacheclient"
)

// A client over three replicas: each key goes to one of them, and a batch
// is split among them and merged back in order.
func Example() {
	c, err := cacheclient.New([]string{"cache-0:7300", "cache-1:7300", "cache-2:7300"}, cacheclient.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	if err := c.Set(ctx, "conversations", "conversation:42", []byte(`{"title":"Refund"}`), 0); err != nil {
		log.Print(err) // a cache is optional: carry on without it
	}
	items, err := c.BatchGet(ctx, "conversations", []string{"conversation:42", "conversation:7"})
	if err != nil {
		log.Print(err) // items of the replicas that answered are still set
	}
	for _, it := range items {
		fmt.Println(it.Found, string(it.Value))
	}
}

// Owner tells which replica a key lives on; every client that lists the
// same addresses, in any order, agrees.
func ExampleClient_Owner() {
	c, err := cacheclient.New([]string{"cache-2:7300", "cache-0:7300", "cache-1:7300"}, cacheclient.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.Replicas())
	for _, k := range []string{"user:1", "user:2", "user:3"} {
		fmt.Println(k, "->", c.Owner(k))
	}
	// Output:
	// [cache-0:7300 cache-1:7300 cache-2:7300]
	// user:1 -> cache-1:7300
	// user:2 -> cache-1:7300
	// user:3 -> cache-2:7300
}

// A client of every replica of a scaled service: the name resolves to one
// address per replica, and the client follows the set as replicas come
// and go. In Kubernetes the name is the cache StatefulSet's headless
// Service, cache.switchboard.svc.cluster.local.
func ExampleNew_dns() {
	c, err := cacheclient.New([]string{"dns:///cache:7300"}, cacheclient.Options{
		ResolveEvery: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err) // a malformed address; a name that does not resolve yet is no error
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	if _, err := c.Get(ctx, "users", "user:1"); err != nil {
		log.Print(err) // UNAVAILABLE until the name resolves; treat it as a miss
	}
}
