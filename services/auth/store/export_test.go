package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Kept returns the refresh token hashes and sealed tokens m holds, for the
// suite's storetest.Inspector.
func (m *Memory) Kept(context.Context) ([][]byte, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out [][]byte
	for _, s := range m.sessions {
		out = append(out, s.cur[:], s.prev[:], s.sealed)
		for _, h := range s.history {
			out = append(out, h[:])
		}
	}
	return out, nil
}

// Kept returns the value of every key under r's prefix (each member of a
// set, each field's value of a hash), for the suite's storetest.Inspector.
func (r *Redis) Kept(ctx context.Context) ([][]byte, error) {
	keys, err := r.c.Keys(ctx, r.prefix+"*").Result()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, k := range keys {
		vals, err := r.values(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		for _, v := range vals {
			out = append(out, []byte(v))
		}
	}
	return out, nil
}

func (r *Redis) values(ctx context.Context, key string) ([]string, error) {
	typ, err := r.c.Type(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "string":
		v, err := r.c.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) { // expired since Type
			return nil, nil
		}
		return []string{v}, err
	case "hash":
		return r.c.HVals(ctx, key).Result()
	case "set":
		return r.c.SMembers(ctx, key).Result()
	case "none": // expired since KEYS
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected type %s", typ)
}
