package yproto

import "bytes"

// AwarenessEntry is one client's presence state in an awareness update (y-protocols
// awareness.js).
type AwarenessEntry struct {
	ClientID uint64
	// Clock orders the states of one client; receivers keep the state with the highest clock
	// and also accept a removal (State null) with an equal clock.
	Clock uint64
	// State is the JSON text as sent, aliasing the decoded input: an object, or null when
	// the client is gone. AppendAwarenessUpdate writes a nil State as null.
	State []byte
}

// Removed reports whether the entry announces that the client is gone (its state is null).
func (e AwarenessEntry) Removed() bool {
	return string(bytes.Trim(e.State, " \t\n\r")) == "null"
}

// minAwarenessEntrySize is the smallest encoded entry: client, clock and state length, one
// byte each. (A valid state adds at least two more, but then an entry with an empty or
// one-byte state would be reported as truncated instead of malformed.)
const minAwarenessEntrySize = 3

// DecodeAwarenessUpdate decodes an awareness update, the payload of an awareness message: a
// count, then count × (clientID, clock, JSON state). It fails with ErrTooManyEntries if the
// count exceeds maxEntries (when maxEntries > 0), with ErrTruncated if the count cannot fit
// in the bytes left, with ErrOutOfRange for IDs or clocks not below 2^53, with ErrMalformed or
// ErrTooDeep for a state that is not valid JSON or nests deeper than 128, and with
// ErrAwarenessState for a state that is valid JSON but neither an object nor null. States
// alias b.
func DecodeAwarenessUpdate(b []byte, maxEntries int) ([]AwarenessEntry, error) {
	r := reader{buf: b}
	n, err := r.readCount("awareness entry count", minAwarenessEntrySize)
	if err != nil {
		return nil, err
	}
	if maxEntries > 0 && n > uint64(maxEntries) {
		return nil, errAt(ErrTooManyEntries, 0, "%d awareness entries, at most %d allowed", n, maxEntries)
	}
	entries := make([]AwarenessEntry, 0, min(n, 256)) // grows with entries actually read
	for range n {
		e, err := r.readAwarenessEntry()
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if err := r.expectEnd("awareness update"); err != nil {
		return nil, err
	}
	return entries, nil
}

func (r *reader) readAwarenessEntry() (AwarenessEntry, error) {
	var e AwarenessEntry
	var err error
	if e.ClientID, err = r.readSafeUint("awareness client"); err != nil {
		return e, err
	}
	if e.Clock, err = r.readSafeUint("awareness clock"); err != nil {
		return e, err
	}
	start := r.pos
	if e.State, err = r.readVarBytes("awareness state"); err != nil {
		return e, err
	}
	if err := checkJSON(e.State, defaultMaxDepth, start, "awareness state"); err != nil {
		return e, err
	}
	// y-crdt asserts that a state is an object; Yjs clients only ever send objects or null.
	if c := firstNonSpace(e.State); c != '{' && c != 'n' {
		return e, errAt(ErrAwarenessState, start, "awareness state of client %d starts with %q", e.ClientID, c)
	}
	return e, nil
}

// AppendAwarenessUpdate appends an awareness update holding entries, as y-protocols
// encodeAwarenessUpdate writes it. A nil State is written as null, which removes the client.
// States are written as they are, without checking that they are JSON.
func AppendAwarenessUpdate(dst []byte, entries []AwarenessEntry) []byte {
	dst = AppendVarUint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = AppendVarUint(dst, e.ClientID)
		dst = AppendVarUint(dst, e.Clock)
		if e.State == nil {
			dst = AppendVarString(dst, "null")
		} else {
			dst = AppendVarBytes(dst, e.State)
		}
	}
	return dst
}
