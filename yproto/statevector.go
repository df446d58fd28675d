package yproto

// minStateVectorEntrySize is the smallest encoding of a (client, clock) pair.
const minStateVectorEntrySize = 2

// ValidateStateVector parses a v1 state vector (Yjs decodeStateVector): a count, then count
// (client, clock) pairs, each a safe integer (< 2^53), with no client twice and nothing after
// the last pair. It returns the clock of each client. The count is checked against the bytes
// left before the map is made, so a claimed count of 2^40 fails at once.
func ValidateStateVector(sv []byte) (map[uint64]uint64, error) {
	r := reader{buf: sv}
	n, err := r.readCount("state vector count", minStateVectorEntrySize)
	if err != nil {
		return nil, err
	}
	clocks := make(map[uint64]uint64, min(n, 1024)) // grows with entries actually read
	for range n {
		start := r.pos
		client, err := r.readSafeUint("state vector client")
		if err != nil {
			return nil, err
		}
		clock, err := r.readSafeUint("state vector clock")
		if err != nil {
			return nil, err
		}
		if _, dup := clocks[client]; dup {
			return nil, errAt(ErrMalformed, start, "client %d twice in state vector", client)
		}
		clocks[client] = clock
	}
	if err := r.expectEnd("state vector"); err != nil {
		return nil, err
	}
	return clocks, nil
}
