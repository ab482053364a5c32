package hub

// Register records m as a connection of user, within the limits.
func (h *Hub) Register(user string, m Member) error {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	if h.opts.MaxConnections > 0 && h.total >= h.opts.MaxConnections {
		return ErrNodeFull
	}
	conns := h.users[user]
	if h.opts.MaxPerUser > 0 && len(conns) >= h.opts.MaxPerUser {
		return ErrTooManyForUser
	}
	if conns == nil {
		conns = make(map[Member]struct{})
		h.users[user] = conns
	}
	conns[m] = struct{}{}
	h.total++
	return nil
}

// Unregister forgets m.
func (h *Hub) Unregister(user string, m Member) {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	conns := h.users[user]
	if _, ok := conns[m]; !ok {
		return
	}
	delete(conns, m)
	h.total--
	if len(conns) == 0 {
		delete(h.users, user)
	}
}

// Connections returns the number of registered connections.
func (h *Hub) Connections() int {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	return h.total
}

func (h *Hub) userConns(user string) []Member {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	out := make([]Member, 0, len(h.users[user]))
	for m := range h.users[user] {
		out = append(out, m)
	}
	return out
}

// All returns every registered connection.
func (h *Hub) All() []Member {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	out := make([]Member, 0, h.total)
	for _, conns := range h.users {
		for m := range conns {
			out = append(out, m)
		}
	}
	return out
}

// RevokeSession tells every connection of user that session ended.
func (h *Hub) RevokeSession(user, session string) {
	for _, m := range h.userConns(user) {
		m.SessionRevoked(session)
	}
}

// RevokeAccess tells every connection of user it may no longer see room.
func (h *Hub) RevokeAccess(user, room string) {
	for _, m := range h.userConns(user) {
		m.AccessRevoked(room)
	}
}
