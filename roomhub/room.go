package roomhub

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/storage"
)

// room is one document and the connections editing it. Its concerns live in
// files of their own: the document's state (state.go), storing and relaying
// updates (commit.go), compaction (compaction.go), awareness
// (awareness.go), loading and unloading (lifecycle.go); membership and
// fan-out are here. docs/architecture.md has the whole picture.
//
// Locks, always taken in this order (never the other way round):
//
//	Hub.mu → room.mu → conn.mu → the log's own locks
//
// Hub.mu guards the lifecycle fields below; room.mu guards everything
// else of the room, and also conn.awarenessIDs of its connections. No lock
// is held across a merge, a parse of the whole document, an fsync or a
// file rewrite: those run as work outside the lock (see beginLocked).
type room struct {
	key string
	hub *Hub

	// Lifecycle, guarded by hub.mu.
	refs      int
	idleTimer *time.Timer
	idleGen   uint64 // which arming of idleTimer is current
	unloading bool
	ready     chan struct{} // closed when loading ended; loadErr is set then
	loadErr   error
	unloaded  chan struct{} // closed when an unload finished

	mu     sync.Mutex
	loaded bool // the log is open: set by load, cleared by unload
	log    storage.Log

	// The document (state.go): everything up to the last fold as one
	// merged update, and the updates accepted since.
	snapshot  []byte
	tail      [][]byte
	tailBytes int
	gen       uint64 // counts replacements of snapshot (folds, compactions)
	// Derived from snapshot and tail; nil when stale.
	stateVector []byte
	coverage    *coverage
	fullStep2   *outbound // the sync step 2 for a client with nothing yet
	lastUpdate  time.Time

	// Under fsync always, updates written to the log but not yet fsynced
	// wait here, in order, and are not yet part of the room's state: no
	// client sees them before they are durable (commit.go).
	pending []pendingUpdate

	// Work outside the lock that must run alone (see beginLocked).
	running  [numJobs]bool
	jobEnded sync.Cond // on mu: signalled when a job ends

	conns     map[*conn]struct{}
	awareness map[uint64]*awarenessState

	fileBytes int64 // the log's size as last reported to Metrics

	// Cluster mode (shared.go); log is nil then.
	shared         SharedRoom
	seq            uint64           // the last batch of the shared log applied
	cpSeq          uint64           // the last batch the room's checkpoint covers
	sinceCPRecords int              // updates applied since the room compacted its state
	sinceCPBytes   int64            // (checkpoint or local fold, shared.go), and their bytes
	waiting        map[uint64]Batch // delivered ahead of a gap, or while loading
	outbox         []SharedUpdate   // this hub's updates waiting to be appended
	outboxFrom     []*conn          // their senders
	outboxBytes    int
	byID           map[uint64]*conn // connections by id, to skip a sender
	broken         bool             // the room gave up following the log (breakLocked)
	repairAgain    bool             // a repair was asked for while one ran
}

func newRoom(h *Hub, key string) *room {
	r := &room{
		key:       key,
		hub:       h,
		ready:     make(chan struct{}),
		unloaded:  make(chan struct{}),
		conns:     make(map[*conn]struct{}),
		awareness: make(map[uint64]*awarenessState),
		snapshot:  emptyUpdate,
	}
	r.jobEnded.L = &r.mu
	return r
}

// Work outside the lock. Merging, parsing a big document, fsyncing and
// rewriting the log take milliseconds, so the room lock is never held for
// them, and updates keep flowing meanwhile. Every such piece of work
// follows one scheme:
//
//  1. Under the lock, it takes what it needs and a ticket (beginLocked).
//     A job that must run alone (a group commit, a compaction) takes its
//     slot with the ticket, or finds it taken and leaves the work to the
//     goroutine that holds it.
//  2. It works with the lock released.
//  3. Under the lock again, endLocked frees the slot (waking an unload that
//     waits for it) and tells whether the room moved on meanwhile: the
//     result is installed only into a room still loaded, and a new
//     snapshot only if no other one was installed since the ticket.
type job uint8

const (
	jobNone       job = iota // no slot: any number may run at once
	jobCommit                // group commit: fsync, then relay (commit.go)
	jobCompaction            // merge and rewrite the log (compaction.go), or checkpoint (shared.go)
	jobRepair                // fetch batches missed from the shared log (shared.go)
	numJobs
)

// ticket is what work outside the lock took when it began.
type ticket struct {
	job job
	gen uint64 // the snapshot's generation
}

// beginLocked starts work of kind j. It reports false if the room is
// unloaded or, for a job with a slot, if that job runs already.
func (r *room) beginLocked(j job) (ticket, bool) {
	if !r.loaded || j != jobNone && r.running[j] {
		return ticket{}, false
	}
	r.running[j] = j != jobNone
	return ticket{job: j, gen: r.gen}, true
}

// endLocked ends the work t began. It reports whether the room is still
// loaded, and whether its snapshot is still the one t saw.
func (r *room) endLocked(t ticket) (loaded, sameSnapshot bool) {
	if t.job != jobNone {
		r.running[t.job] = false
		r.jobEnded.Broadcast()
	}
	return r.loaded, r.loaded && r.gen == t.gen
}

// awaitJobsLocked waits, with the lock released meanwhile, until no job
// runs outside the lock.
func (r *room) awaitJobsLocked() {
	for r.running != [numJobs]bool{} {
		r.jobEnded.Wait()
	}
}

// join adds c and greets it: the server's sync step 1, then every current
// awareness state. Both are queued under the room lock, so every update
// accepted later is queued after them.
func (r *room) join(c *conn) error {
	// The merge and the state vector the greeting needs are computed first,
	// without the room lock; under it they are then ready, unless updates
	// arrived meanwhile.
	if _, err := r.refreshState(false); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken {
		return errRoomBroken // (it broke after acquire handed it out)
	}
	if max := r.hub.options().MaxConnsPerRoom; max > 0 && len(r.conns) >= max {
		return errRoomFull
	}
	sv, err := r.stateVectorLocked()
	if err != nil {
		return err
	}
	r.conns[c] = struct{}{}
	if r.shared != nil {
		if r.byID == nil {
			r.byID = make(map[uint64]*conn)
		}
		r.byID[c.id] = c
	}
	c.enqueue(c.codec.AppendSyncStep1(nil, sv))
	if aw := r.awarenessUpdateLocked(); aw != nil {
		c.enqueue(c.codec.AppendAwareness(nil, aw))
	}
	return nil
}

// leave removes c and broadcasts the removal of the awareness states it set
// (in cluster mode, to the other hubs too).
func (r *room) leave(c *conn) {
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.byID, c.id)
	removed := r.removeAwarenessOfLocked(c)
	r.mu.Unlock()
	r.publishAwareness(removed)
}

// broadcastLocked queues msg for every connection but except, encoded for
// its codec. A connection whose queue is full is closed: the room never
// waits for one client.
func (r *room) broadcastLocked(msg *outbound, except *conn) {
	for c := range r.conns {
		if c == except {
			continue
		}
		frame := msg.frameFor(c.codec)
		if frame == nil {
			continue // e.g. a stateless message, for a y-websocket client
		}
		if !c.enqueue(frame) && c.dropIfFull() {
			r.hub.metrics().Rejected(RejectSlowClient)
			r.hub.log().Warn("closing a client too slow to keep up", zap.String("room", r.key),
				zap.Int("outbound_queue_size", r.hub.options().OutboundQueueBytes))
		}
	}
}

// closeAll closes every connection of the room.
func (r *room) closeAll(code StatusCode, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.close(code, reason)
	}
}

// cutAll closes every connection of the room without a handshake (at
// shutdown, for connections that did not end after their close).
func (r *room) cutAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.t.CloseNow()
	}
}

// relayStateless relays an application's stateless message to the room's
// other connections whose protocol carries them, on every hub of a
// cluster. It is never stored.
func (r *room) relayStateless(from *conn, payload, msg []byte) {
	r.mu.Lock()
	r.broadcastLocked(newOutbound(OpStateless, payload, from.codec, msg), from)
	r.mu.Unlock()
	r.publishStateless(payload)
}
