package roomhub

// Test-only helpers that need the hub's internals.

// roomCount is the number of rooms in memory, loading or loaded.
func (h *Hub) roomCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}
