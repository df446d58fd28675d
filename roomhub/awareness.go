package roomhub

import (
	"bytes"
	"sort"
	"time"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// A room's awareness (presence, cursors) is kept as y-protocols' awareness
// protocol defines it: one entry per client ID, with a clock; an entry with
// a higher clock replaces it, and a removal (state JSON null) with an equal
// clock removes it. The room remembers which connection set each entry, so
// that it can remove a connection's entries when it leaves, and so that a
// read-only connection cannot touch anyone else's.

// awarenessState is the room's entry for one client ID.
type awarenessState struct {
	clock uint64
	state []byte // JSON object; nil once removed
	owner *conn  // the connection that set it last; nil for another hub's client
	// renewed is when another hub last published the entry (owner nil).
	renewed time.Time
}

// applyAwareness records the entries that are newer than what the room
// knows and relays them to every connection when any was. msg is relayed as
// it came if every entry was allowed; otherwise only the allowed ones are.
// In cluster mode it returns the entries to publish to the other hubs.
func (r *room) applyAwareness(from *conn, entries []yproto.AwarenessEntry, msg *outbound) (publish []yproto.AwarenessEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	var allowed []yproto.AwarenessEntry // set once an entry is refused
	for i, e := range entries {
		cur := r.awareness[e.ClientID]
		if from.readOnly && cur != nil && cur.owner != from {
			// A viewer cannot change or remove the presence of a client
			// ID another connection introduced (by reusing its ID).
			if allowed == nil {
				allowed = append(make([]yproto.AwarenessEntry, 0, len(entries)), entries[:i]...)
			}
			continue
		}
		if allowed != nil {
			allowed = append(allowed, e)
		}
		removed := e.Removed()
		if cur != nil && !(cur.clock < e.Clock || cur.clock == e.Clock && removed && cur.state != nil) {
			continue
		}
		changed = true
		if cur == nil {
			cur = &awarenessState{}
			r.awareness[e.ClientID] = cur
		}
		cur.clock = e.Clock
		cur.owner = from
		if removed {
			cur.state = nil
			delete(from.awarenessIDs, e.ClientID)
			continue
		}
		cur.state = bytes.Clone(e.State)
		if from.awarenessIDs == nil {
			from.awarenessIDs = make(map[uint64]struct{})
		}
		from.awarenessIDs[e.ClientID] = struct{}{}
	}
	if !changed {
		return nil
	}
	if allowed != nil {
		msg = newOutbound(OpAwareness, yproto.AppendAwarenessUpdate(nil, allowed), nil, nil)
	}
	if r.shared != nil {
		publish = entries
		if allowed != nil {
			publish = allowed
		}
	}
	// To the sender too, as y-websocket's server does: a y-websocket client
	// drops a connection that received nothing for 30 s, and its own 15 s
	// awareness renewal echoed back is what keeps a lone client connected.
	r.broadcastLocked(msg, nil)
	return publish
}

// removeAwarenessOfLocked deletes the entries c set and broadcasts their
// removal, with their current clock and a null state (receivers accept an
// equal-clock removal). It returns the removals.
func (r *room) removeAwarenessOfLocked(c *conn) []yproto.AwarenessEntry {
	var removed []yproto.AwarenessEntry
	for id := range c.awarenessIDs {
		st := r.awareness[id]
		if st == nil || st.owner != c {
			continue
		}
		removed = r.dropAwarenessLocked(id, st, removed)
	}
	r.relayAwarenessLocked(removed)
	return removed
}

// relayAwarenessLocked broadcasts entries (if any) to every connection.
func (r *room) relayAwarenessLocked(entries []yproto.AwarenessEntry) {
	if len(entries) > 0 {
		r.broadcastLocked(newOutbound(OpAwareness, yproto.AppendAwarenessUpdate(nil, entries), nil, nil), nil)
	}
}

// dropAwarenessLocked deletes the entry of id and, if it was visible,
// appends its removal (current clock, null state: receivers accept an
// equal-clock removal) to removed.
func (r *room) dropAwarenessLocked(id uint64, st *awarenessState, removed []yproto.AwarenessEntry) []yproto.AwarenessEntry {
	delete(r.awareness, id)
	if st.state == nil {
		return removed
	}
	return append(removed, yproto.AwarenessEntry{ClientID: id, Clock: st.clock, State: []byte("null")})
}

// awarenessEntriesLocked returns every current awareness state, sorted by
// client ID.
func (r *room) awarenessEntriesLocked() []yproto.AwarenessEntry {
	var entries []yproto.AwarenessEntry
	for id, st := range r.awareness {
		if st.state != nil {
			entries = append(entries, yproto.AwarenessEntry{ClientID: id, Clock: st.clock, State: st.state})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ClientID < entries[j].ClientID })
	return entries
}

// awarenessUpdateLocked encodes every current awareness state, or returns
// nil if there is none.
func (r *room) awarenessUpdateLocked() []byte {
	entries := r.awarenessEntriesLocked()
	if len(entries) == 0 {
		return nil
	}
	return yproto.AppendAwarenessUpdate(nil, entries)
}

// sendAwareness answers a query for awareness with every current state.
func (r *room) sendAwareness(c *conn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if aw := r.awarenessUpdateLocked(); aw != nil && !c.enqueue(c.codec.AppendAwareness(nil, aw)) {
		return errQueueFull
	}
	return nil
}
