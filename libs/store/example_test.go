package store_test

import (
	"errors"
	"fmt"
	"time"

	"switchboard/libs/store"
)

func Example() {
	s, err := store.New(store.Options[string, []byte]{
		MaxEntries: 1000,
		MaxBytes:   1 << 20,
		Size:       store.StringBytesSize,
		DefaultTTL: 10 * time.Minute,
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	_ = s.Set("user:42", []byte(`{"name":"Ada"}`))
	if v, ok := s.Get("user:42"); ok {
		fmt.Printf("%s\n", v)
	}
	_, ok := s.Get("user:43")
	st := s.Stats()
	fmt.Println(ok, st.Hits, st.Misses, st.Entries)
	// Output:
	// {"name":"Ada"}
	// false 1 1 1
}

func ExampleStore_SetWithTTL() {
	s, _ := store.New(store.Options[string, []byte]{
		MaxBytes: 4096,
		Size:     store.StringBytesSize,
		Shards:   1,
	})
	defer s.Close()

	err := s.SetWithTTL("big", make([]byte, 8192), time.Minute)
	fmt.Println(errors.Is(err, store.ErrTooLarge))
	// Output: true
}

func ExampleOptions_onEvent() {
	s, _ := store.New(store.Options[string, int]{
		Policy:     store.LRU,
		MaxEntries: 2,
		OnEvent: func(ev store.Event[string]) {
			fmt.Println(ev.Kind, ev.Key)
		},
	})
	defer s.Close()

	_ = s.Set("a", 1)
	_ = s.Set("b", 2)
	s.Get("a")
	_ = s.Set("c", 3) // b is the least recently used
	s.Delete("a")
	// Output:
	// set a
	// set b
	// set c
	// evict b
	// delete a
}
