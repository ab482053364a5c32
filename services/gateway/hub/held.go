package hub

import "strings"

// Membership is one user's connection in one room.
type Membership struct {
	User string
	Room string
}

// Sessions returns the distinct sessions of the registered connections,
// each with its user.
func (h *Hub) Sessions() map[string]string {
	out := make(map[string]string)
	for m, user := range h.owners() {
		if s := m.Session(); s != "" {
			out[s] = user
		}
	}
	return out
}

// Memberships returns the distinct (user, room) pairs of the registered
// connections in the rooms whose names start with prefix.
func (h *Hub) Memberships(prefix string) []Membership {
	owners := h.owners()
	seen := make(map[Membership]struct{})
	for i := range h.shards {
		h.shards[i].memberships(prefix, owners, seen)
	}
	out := make([]Membership, 0, len(seen))
	for ms := range seen {
		out = append(out, ms)
	}
	return out
}

// owners maps every registered connection to its user.
func (h *Hub) owners() map[Member]string {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	out := make(map[Member]string, h.total)
	for user, conns := range h.users {
		for m := range conns {
			out[m] = user
		}
	}
	return out
}

// memberships adds to seen the pairs of the shard's rooms named with
// prefix whose members are in owners.
func (s *shard) memberships(prefix string, owners map[Member]string, seen map[Membership]struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, r := range s.rooms {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		r.mu.Lock()
		for m := range r.members {
			if user, ok := owners[m]; ok {
				seen[Membership{user, name}] = struct{}{}
			}
		}
		r.mu.Unlock()
	}
}
