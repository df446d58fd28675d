package roomhub

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// emptyUpdate is a Yjs v1 update with no structs and no deletes.
var emptyUpdate = []byte{0, 0}

// room is one document and the connections editing it.
type room struct {
	key string
	hub *Hub

	// Guarded by hub.mu.
	refs      int
	idleTimer *time.Timer
	idleGen   uint64 // which arming of idleTimer is current
	unloading bool
	ready     chan struct{} // closed when loading ended; loadErr is set then
	loadErr   error
	unloaded  chan struct{} // closed when an unload finished

	mu        sync.Mutex
	log       *storage.Log
	snapshot  []byte   // everything up to the last fold, one merged update
	tail      [][]byte // updates accepted since the fold, in order
	tailBytes int
	// Derived from snapshot and tail; nil when stale.
	stateVector []byte
	coverage    *coverage
	fullStep2   *outbound // the sync step 2 for a client with nothing yet
	conns       map[*conn]struct{}
	awareness   map[uint64]*awarenessState
	lastUpdate  time.Time

	// Under fsync always, updates written to the file but not yet fsynced
	// wait here, in order, and are not yet part of the room's state: no
	// client sees them before they are durable. committing is true while a
	// connection's goroutine runs commitPending for everyone.
	pending    []pendingUpdate
	committing bool

	// compactDone is non-nil while a compaction runs outside the room lock
	// (see runCompaction), and closed when it ends. foldGen counts folds,
	// so that it can tell whether the snapshot moved on meanwhile.
	compactDone chan struct{}
	foldGen     uint64

	fileBytes int64 // the file's size as last reported to Metrics
	// mergedBytes is how much of the file the last compaction wrote (the
	// header and the merged record); what follows it is what the next
	// compaction would merge.
	mergedBytes int64
}

// pendingUpdate is an accepted update waiting for its fsync.
type pendingUpdate struct {
	update []byte
	msg    *outbound // the message to relay
	from   *conn
}

func newRoom(h *Hub, key string) *room {
	return &room{
		key:       key,
		hub:       h,
		ready:     make(chan struct{}),
		unloaded:  make(chan struct{}),
		conns:     make(map[*conn]struct{}),
		awareness: make(map[uint64]*awarenessState),
		snapshot:  emptyUpdate,
	}
}

// load reads the room's file. Records were validated by storage.
func (r *room) load() error {
	log, records, rec, err := r.hub.store.Open(r.key)
	if err != nil {
		return err
	}
	for _, tmp := range rec.RemovedTemps {
		r.hub.log().Warn("removed temp file of an interrupted compaction",
			zap.String("room", r.key), zap.String("path", tmp))
	}
	if rec.TruncatedBytes > 0 {
		r.hub.log().Warn("cut torn last record of room file",
			zap.String("room", r.key), zap.String("path", log.Path()),
			zap.Int64("truncated_bytes", rec.TruncatedBytes))
	}
	r.log = log
	r.trackFileSizeLocked()
	r.mergedBytes = int64(len(storage.Header))
	if len(records) == 1 {
		r.mergedBytes = log.Size()
	}
	r.tail = records
	for _, u := range records {
		r.tailBytes += len(u)
	}
	if len(records) > 0 {
		if err := r.foldLocked(); err != nil {
			log.Close()
			return fmt.Errorf("merging %s: %w", log.Path(), err)
		}
	}
	// A compacted file's one record is the snapshot, and storage has
	// parsed it already: its state vector, which every join needs, comes
	// from that parse instead of a second one.
	if info, ok := log.TakeOnlyRecordInfo(); ok {
		r.stateVector = stateVectorFromInfo(info)
	}
	return nil
}

// foldLocked merges the tail into the snapshot.
func (r *room) foldLocked() error {
	if len(r.tail) == 0 {
		return nil
	}
	merged, err := mergeState(r.partsLocked())
	if err != nil {
		return err
	}
	r.installMergedLocked(merged, len(r.tail))
	return nil
}

// mergeState merges parts of a room's document into one update, and drops
// the content of deleted items as it goes (CompactUpdates): the
// snapshot, the file after a compaction and every step 2 then carry what a
// Yjs document with gc on keeps, and no deleted text that no client shows.
// One part is merged already.
func mergeState(parts [][]byte) ([]byte, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	return yproto.CompactUpdates(parts)
}

// partsLocked is the document as the updates to merge: the snapshot (left
// out when empty, unless it is all there is) and the tail.
func (r *room) partsLocked() [][]byte {
	parts := make([][]byte, 0, len(r.tail)+1)
	if len(r.tail) == 0 || !bytes.Equal(r.snapshot, emptyUpdate) {
		parts = append(parts, r.snapshot)
	}
	return append(parts, r.tail...)
}

// installMergedLocked makes merged, the merge of the snapshot and the first
// n updates of the tail, the new snapshot. The document is unchanged, so the
// state vector, coverage and full step 2 still hold.
func (r *room) installMergedLocked(merged []byte, n int) {
	r.snapshot = merged
	for _, u := range r.tail[:n] {
		r.tailBytes -= len(u)
	}
	r.tail = append([][]byte(nil), r.tail[n:]...)
	r.foldGen++
}

// stateLocked returns the whole document as one update.
func (r *room) stateLocked() ([]byte, error) {
	if err := r.foldLocked(); err != nil {
		return nil, err
	}
	return r.snapshot, nil
}

func (r *room) stateVectorLocked() ([]byte, error) {
	state, err := r.stateLocked()
	if err != nil {
		return nil, err
	}
	if r.stateVector == nil {
		sv, err := stateVectorOf(state)
		if err != nil {
			return nil, err
		}
		r.stateVector = sv
	}
	return r.stateVector, nil
}

// stateVectorOf is y-crdt's EncodeStateVectorFromUpdate, computed from
// yproto's parse when it can be: about 6 times faster on a large document
// (1.6 ms against 9.7 ms for 450 KB), since y-crdt builds an object per
// struct. Without Skip structs each client's section is one run of clocks,
// and Yjs counts a client only if that run starts at clock 0.
func stateVectorOf(update []byte) ([]byte, error) {
	info, err := yproto.ValidateUpdate(update, yproto.Limits{})
	if err != nil {
		return ysafe.StateVector(update)
	}
	return stateVectorParsed(update, info)
}

// stateVectorParsed is stateVectorOf for an update already parsed as info.
func stateVectorParsed(update []byte, info yproto.UpdateInfo) ([]byte, error) {
	if sv := stateVectorFromInfo(info); sv != nil {
		return sv, nil
	}
	return ysafe.StateVector(update)
}

// stateVectorFromInfo is the state vector of the update info was parsed
// from, or nil if it has Skip structs (stateVectorOf then asks y-crdt).
func stateVectorFromInfo(info yproto.UpdateInfo) []byte {
	if info.HasSkips {
		return nil
	}
	n := 0
	for _, s := range info.Structs {
		if s.Clock == 0 && s.End > 0 {
			n++
		}
	}
	sv := yproto.AppendVarUint(make([]byte, 0, 1+n*10), uint64(n))
	for _, s := range info.Structs {
		if s.Clock == 0 && s.End > 0 {
			sv = yproto.AppendVarUint(sv, s.Client)
			sv = yproto.AppendVarUint(sv, s.End)
		}
	}
	return sv
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
	if max := r.hub.options().MaxConnsPerRoom; max > 0 && len(r.conns) >= max {
		return errRoomFull
	}
	sv, err := r.stateVectorLocked()
	if err != nil {
		return err
	}
	r.conns[c] = struct{}{}
	c.enqueue(c.codec.AppendSyncStep1(nil, sv))
	if aw := r.awarenessUpdateLocked(); aw != nil {
		c.enqueue(c.codec.AppendAwareness(nil, aw))
	}
	return nil
}

// leave removes c and broadcasts the removal of the awareness states it set,
// with their current clock and a null state.
func (r *room) leave(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	r.removeAwarenessOfLocked(c)
}

// broadcastLocked queues msg for every connection but except, encoded for
// its codec. A connection whose queue is full is closed: the room never
// waits for one client.
func (r *room) broadcastLocked(msg *outbound, except *conn) {
	for c := range r.conns {
		if c == except {
			continue
		}
		if !c.enqueue(msg.frameFor(c.codec)) && c.dropIfFull() {
			r.hub.metrics().Rejected(RejectSlowClient)
			r.hub.log().Warn("closing a client too slow to keep up", zap.String("room", r.key),
				zap.Int("outbound_queue_size", r.hub.options().OutboundQueueBytes))
		}
	}
}

// answerStep1 sends c the part of the document its state vector lacks.
//
// It answers from the document as refreshState found it, without holding
// the room lock while merging or diffing: c has been in the room since its
// join, so every update accepted after that moment reaches it by broadcast.
func (r *room) answerStep1(c *conn, clientSV []byte) error {
	state, err := r.refreshState(false)
	if err != nil {
		return err
	}
	var msg []byte
	if len(clientSV) == 1 && clientSV[0] == 0 {
		// An empty state vector, as every new client sends: the answer is
		// the whole document, with no diff to compute, and the same
		// message (shared, never modified) serves every such join until
		// the document changes.
		r.mu.Lock()
		full := r.fullStep2
		if full == nil {
			full = newOutbound(OpSyncStep2, state, nil, nil)
			if len(r.tail) == 0 && sameBytes(r.snapshot, state) {
				r.fullStep2 = full // still the whole document
			}
		}
		msg = full.frameFor(c.codec)
		r.mu.Unlock()
	} else {
		diff, err := yproto.DiffUpdate(state, clientSV)
		if err != nil {
			return err
		}
		msg = c.codec.AppendSyncStep2(nil, diff)
	}
	if !c.enqueue(msg) {
		return errQueueFull
	}
	return nil
}

// refreshState returns the whole document as one update, merging the tail
// into the snapshot, and computes the state vector that goes with it (and,
// withCoverage, the coverage a step 2 is checked against). The merge and
// the parse behind the others, milliseconds each for a big document, run
// with the room unlocked, so that updates keep flowing; the results become
// the room's if no other fold happened meanwhile (the state vector and
// coverage only if no update arrived meanwhile either).
func (r *room) refreshState(withCoverage bool) ([]byte, error) {
	r.mu.Lock()
	if len(r.tail) == 0 && r.stateVector != nil && (r.coverage != nil || !withCoverage) {
		state := r.snapshot
		r.mu.Unlock()
		return state, nil
	}
	parts, n, gen := r.partsLocked(), len(r.tail), r.foldGen
	r.mu.Unlock()

	merged, err := mergeState(parts)
	if err != nil {
		return nil, err
	}
	info, err := yproto.ValidateUpdate(merged, yproto.Limits{})
	if err != nil {
		return nil, err
	}
	sv, err := stateVectorParsed(merged, info)
	if err != nil {
		return nil, err
	}
	var cov *coverage
	if withCoverage {
		cov = coverageFromInfo(info)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.foldGen != gen || r.log == nil {
		return merged, nil
	}
	if n > 0 {
		r.installMergedLocked(merged, n)
	}
	if len(r.tail) == 0 {
		r.stateVector = sv
		if cov != nil {
			r.coverage = cov
		}
	}
	return merged, nil
}

// sameBytes reports whether a and b are the same slice (not only equal).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// applyUpdate stores a validated update and relays msg (or, when msg is
// nil, the update) to every other connection.
// An update that adds nothing to the room is neither stored nor relayed;
// only step 2 messages are checked for that (a reconnecting client repeats
// what the room has), since live updates are new by construction.
//
// The update reaches the file (write(2)) before any client can receive it.
// Under fsync always it is relayed only once fsynced, by commitPending.
func (r *room) applyUpdate(from *conn, update []byte, info yproto.UpdateInfo, msg *outbound, checkNew bool) error {
	commit, job, err := r.storeUpdate(from, update, info, msg, checkNew)
	if job != nil {
		r.runCompaction(job)
	}
	if commit {
		r.commitPending()
	}
	return err
}

// storeUpdate is applyUpdate's part under the room lock. It reports whether
// the caller must run commitPending (fsync always, and no one else is), and
// a compaction for the caller to run once the lock is released.
func (r *room) storeUpdate(from *conn, update []byte, info yproto.UpdateInfo, msg *outbound, checkNew bool) (commit bool, job *compaction, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		return false, nil, storage.ErrClosed
	}
	if checkNew {
		cov, err := r.coverageLocked()
		if err == nil && cov.covers(info) {
			return false, nil, nil
		}
	}
	if max := r.hub.options().MaxDocumentSize; max > 0 && r.sizeLocked()+int64(len(update)) > max {
		return false, nil, errDocumentTooLarge
	}
	if msg == nil {
		msg = newOutbound(OpUpdate, update, nil, nil)
	}
	start := time.Now()
	if err := r.log.Append(update); err != nil {
		return false, nil, err
	}
	r.hub.metrics().Appended(time.Since(start))
	r.trackFileSizeLocked()
	// Updates already waiting for an fsync keep their place in line even
	// if a reload changed the policy meanwhile.
	if r.hub.options().Fsync.Mode != FsyncAlways && len(r.pending) == 0 {
		r.acceptLocked(update, msg, from)
		return false, r.compactionDueLocked(), nil
	}
	r.pending = append(r.pending, pendingUpdate{update: update, msg: msg, from: from})
	if r.committing {
		// The committing goroutine's next fsync covers this update.
		return false, nil, nil
	}
	r.committing = true
	return true, nil, nil
}

// commitPending is group commit: it fsyncs the room's file outside the room
// lock, so that updates keep arriving (and being written) meanwhile, then
// relays every update that fsync covered, and repeats until none wait. One
// fsync thus covers every update that arrived while the previous one ran.
func (r *room) commitPending() {
	defer func() {
		if v := recover(); v != nil {
			// Let a later update take over committing, then let the
			// connection's recover handle the panic.
			r.mu.Lock()
			r.committing = false
			r.mu.Unlock()
			panic(v)
		}
	}()
	for {
		r.mu.Lock()
		log, n := r.log, len(r.pending)
		r.mu.Unlock()
		var err error
		if log != nil {
			start := time.Now()
			err = log.Sync() // covers at least the first n pending updates
			r.hub.metrics().Synced(time.Since(start))
		}
		done, job := r.finishCommit(log, n, err)
		if job != nil {
			r.runCompaction(job)
		}
		if done {
			return
		}
	}
}

// finishCommit relays the n pending updates an fsync of log covered (or
// drops them if it failed) and reports whether none are left waiting, and
// a compaction that is due.
func (r *room) finishCommit(log *storage.Log, n int, syncErr error) (done bool, job *compaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil || r.log != log {
		// Unloaded meanwhile: unload made everything durable.
		r.pending, r.committing = nil, false
		return true, nil
	}
	batch := r.pending[:n:n]
	r.pending = r.pending[n:]
	if syncErr != nil {
		// Written but maybe not durable, so never relayed. The senders
		// are closed so that they resend it when they reconnect.
		r.hub.log().Error("syncing room file", zap.String("room", r.key),
			zap.String("path", log.Path()), zap.Error(syncErr))
		for _, p := range batch {
			if p.from != nil {
				p.from.close(StatusInternalError, "server could not store the update")
			}
		}
	} else {
		for _, p := range batch {
			r.acceptLocked(p.update, p.msg, p.from)
		}
		job = r.compactionDueLocked()
	}
	if len(r.pending) == 0 {
		r.pending, r.committing = nil, false
		return true, job
	}
	return false, job
}

// sizeLocked is the document's size as stored: the merged snapshot plus
// every update since, including those waiting for an fsync.
func (r *room) sizeLocked() int64 {
	n := int64(len(r.snapshot) + r.tailBytes)
	for _, p := range r.pending {
		n += int64(len(p.update))
	}
	return n
}

// trackFileSizeLocked reports the change of the file's size to Metrics.
func (r *room) trackFileSizeLocked() {
	size := r.log.Size()
	r.hub.metrics().FileBytes(size - r.fileBytes)
	r.fileBytes = size
}

// acceptLocked makes a stored update part of the room and relays it.
func (r *room) acceptLocked(update []byte, msg *outbound, from *conn) {
	r.tail = append(r.tail, update)
	r.tailBytes += len(update)
	r.stateVector = nil
	r.coverage = nil
	r.fullStep2 = nil
	r.lastUpdate = time.Now()
	r.broadcastLocked(msg, from)
}

// compaction is a compaction prepared under the room lock and run outside
// it: merging a big document takes milliseconds, and the room's updates
// keep flowing meanwhile.
type compaction struct {
	log     *storage.Log
	mark    storage.Mark // the file's end when parts were taken
	parts   [][]byte     // the snapshot and the first n updates of the tail
	n       int
	foldGen uint64
}

// compactionDueLocked returns a compaction for the caller to run (with
// runCompaction, once the room lock is released) when the tail passed a
// bound, or nil. Under fsync always, updates still waiting for their fsync
// are in the file but not in the tail, so compaction waits for a moment
// with none: the file then holds exactly the snapshot and the tail.
func (r *room) compactionDueLocked() *compaction {
	if len(r.pending) > 0 || r.compactDone != nil || r.log == nil {
		return nil
	}
	// Measured on the file, not the tail: joins fold the tail into the
	// snapshot, but the file keeps every record until a compaction.
	o := r.hub.options()
	records := r.log.Records() // appended since the last compaction...
	if r.mergedBytes > int64(len(storage.Header)) {
		records-- // ...after the merged record it wrote
	}
	unmerged := r.log.Size() - r.mergedBytes
	if records < o.CompactRecords && unmerged < int64(o.CompactBytes) {
		return nil
	}
	// Compacting merges the whole document, so it waits until what
	// follows the merged record is at least half its size: the cost per
	// update then stays constant however big the document grows, and the
	// file stays within about 1.5 times the document. (Compacting a
	// 100k-keystroke room every 1,000 updates took two thirds of the
	// server's CPU, with y-crdt's merge.)
	if unmerged*2 < r.mergedBytes {
		return nil
	}
	r.compactDone = make(chan struct{})
	return &compaction{log: r.log, mark: r.log.Mark(), parts: r.partsLocked(), n: len(r.tail), foldGen: r.foldGen}
}

// runCompaction merges and rewrites the file without the room lock, then
// makes the merged update the room's snapshot, unless a fold moved the
// snapshot on meanwhile. Updates accepted meanwhile stay in the tail, and
// the file keeps them after the merged record. A failure is logged and
// leaves the file as it was: appends go on.
func (r *room) runCompaction(job *compaction) {
	start := time.Now()
	merged, err := func() (merged []byte, err error) {
		// A panic must still end the compaction below, or unload would
		// wait for it forever.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		if merged, err = mergeState(job.parts); err != nil {
			return nil, err
		}
		// The file is rewritten from this update alone: check it first.
		if _, err := yproto.ValidateUpdate(merged, yproto.Limits{}); err != nil {
			return nil, fmt.Errorf("merged update: %w", err)
		}
		if testHookCompactionMerged != nil {
			testHookCompactionMerged()
		}
		return merged, job.log.Compact(merged, job.mark)
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.compactDone)
	r.compactDone = nil
	if err != nil {
		if !errors.Is(err, storage.ErrClosed) && !errors.Is(err, storage.ErrStaleMark) {
			r.hub.log().Error("compacting room file", zap.String("room", r.key), zap.String("path", job.log.Path()), zap.Error(err))
		}
		return
	}
	r.hub.metrics().Compacted(time.Since(start))
	if r.log != job.log {
		return
	}
	r.trackFileSizeLocked()
	r.mergedBytes = mergedRecordBytes(merged)
	if r.foldGen == job.foldGen {
		r.installMergedLocked(merged, job.n)
	}
	r.hub.log().Info("compacted room file", zap.String("room", r.key),
		zap.Int64("bytes", r.log.Size()), zap.Duration("took", time.Since(start)))
}

// testHookCompactionMerged, when set by a test, runs in runCompaction
// between the merge and the file's rewrite, with the room unlocked.
var testHookCompactionMerged func()

// awaitCompactionLocked waits, with the room lock released meanwhile, until
// no compaction runs.
func (r *room) awaitCompactionLocked() {
	for r.compactDone != nil {
		done := r.compactDone
		r.mu.Unlock()
		<-done
		r.mu.Lock()
	}
}

// compactLocked folds the tail and rewrites the file as one record. A
// failure is logged and leaves the file as it was: appends go on.
func (r *room) compactLocked() {
	if err := r.compactNowLocked(); err != nil {
		r.hub.log().Error("compacting room file", zap.String("room", r.key), zap.String("path", r.log.Path()), zap.Error(err))
	}
}

// compactNowLocked folds the tail and rewrites the file as one record, all
// under the room lock. The caller makes sure that no update waits for its
// fsync and no compaction runs (awaitCompactionLocked): the file then holds
// exactly the snapshot and the tail.
func (r *room) compactNowLocked() error {
	if err := r.foldLocked(); err != nil {
		return err
	}
	if r.log.Records() <= 1 {
		return nil
	}
	start := time.Now()
	if err := r.log.Compact(r.snapshot, r.log.Mark()); err != nil {
		return err
	}
	r.hub.metrics().Compacted(time.Since(start))
	r.trackFileSizeLocked()
	r.mergedBytes = mergedRecordBytes(r.snapshot)
	r.hub.log().Info("compacted room file", zap.String("room", r.key),
		zap.Int64("bytes", r.log.Size()), zap.Duration("took", time.Since(start)))
	return nil
}

// mergedRecordBytes is the size of a compacted file holding merged.
func mergedRecordBytes(merged []byte) int64 {
	return int64(len(storage.Header) + len(yproto.AppendVarUint(nil, uint64(len(merged)))) + len(merged))
}

// closeAll closes every connection of the room.
func (r *room) closeAll(code StatusCode, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.close(code, reason)
	}
}

// unload makes the file durable and compact and closes it. Called with no
// connections left, by the idle timer or Hub.Close.
func (r *room) unload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.awaitCompactionLocked()
	if r.log == nil {
		return
	}
	// Updates still waiting for an fsync are in the file: keep them.
	for _, p := range r.pending {
		r.tail = append(r.tail, p.update)
		r.tailBytes += len(p.update)
	}
	r.pending = nil
	if len(r.tail) > 0 || r.log.Records() > 1 {
		r.compactLocked()
	}
	if err := r.log.Close(); err != nil {
		r.hub.log().Error("closing room file", zap.String("room", r.key), zap.Error(err))
	}
	r.log = nil
	r.snapshot, r.tail, r.stateVector, r.coverage, r.fullStep2 = nil, nil, nil, nil, nil
	r.hub.metrics().FileBytes(-r.fileBytes)
	r.fileBytes = 0
	r.hub.metrics().RoomUnloaded()
	r.hub.log().Info("unloaded room", zap.String("room", r.key))
}

// syncLog flushes the room's file if it has unsynced writes.
// The fsync runs outside the room lock: relays go on meanwhile.
func (r *room) syncLog() {
	r.mu.Lock()
	log := r.log
	r.mu.Unlock()
	if log == nil || log.Unsynced() == 0 {
		return
	}
	start := time.Now()
	err := log.Sync()
	r.hub.metrics().Synced(time.Since(start))
	if err != nil && !errors.Is(err, storage.ErrClosed) {
		r.hub.log().Error("syncing room file", zap.String("room", r.key), zap.String("path", log.Path()), zap.Error(err))
	}
}
