package storebench

import "container/heap"

// Belady returns the hits of the optimal offline policy on keys with a
// cache of size entries: on a miss with the cache full, it evicts the
// key whose next use is furthest away, or declines to admit the new key
// when that key's own next use is the furthest. O(n log n): next-use
// indices are computed in one backward pass and the cached keys sit in a
// max-heap by next use, with stale heap items skipped lazily.
func Belady(keys []uint64, size int) int {
	n := len(keys)
	never := int32(n) // next use of a key not used again
	next := nextUses(keys)

	cached := make(map[uint64]int32, size) // key -> its next use
	h := &useHeap{}
	hits := 0
	for i, k := range keys {
		nu := next[i]
		if _, ok := cached[k]; ok {
			hits++
			cached[k] = nu
			heap.Push(h, use{nu, k})
			continue
		}
		if nu == never || size == 0 {
			continue // never used again: caching it cannot help
		}
		if len(cached) >= size {
			far := h.furthest(cached)
			if far.next <= nu {
				continue // the new key is the furthest: decline it
			}
			heap.Pop(h)
			delete(cached, far.key)
		}
		cached[k] = nu
		heap.Push(h, use{nu, k})
	}
	return hits
}

// nextUses returns, for each position, the position of the next request
// of the same key, or len(keys) when there is none.
func nextUses(keys []uint64) []int32 {
	next := make([]int32, len(keys))
	last := make(map[uint64]int32)
	for i := len(keys) - 1; i >= 0; i-- {
		if j, ok := last[keys[i]]; ok {
			next[i] = j
		} else {
			next[i] = int32(len(keys))
		}
		last[keys[i]] = int32(i)
	}
	return next
}

type use struct {
	next int32
	key  uint64
}

// useHeap is a max-heap of uses by next use.
type useHeap []use

func (h useHeap) Len() int           { return len(h) }
func (h useHeap) Less(i, j int) bool { return h[i].next > h[j].next }
func (h useHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *useHeap) Push(x any)        { *h = append(*h, x.(use)) }
func (h *useHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// furthest drops stale items off the top and returns the cached key with
// the furthest next use, left on top of the heap.
func (h *useHeap) furthest(cached map[uint64]int32) use {
	for {
		top := (*h)[0]
		if nu, ok := cached[top.key]; ok && nu == top.next {
			return top
		}
		heap.Pop(h)
	}
}
