package roomhub

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// A room in cluster mode (see cluster.go). Its state is what the shared log
// delivered, applied strictly in the log's order: r.seq is the last batch
// applied, and a batch that arrives early waits in r.waiting until the
// ones before it arrive or a repair (Range) fetches them. Updates of this
// hub's clients go to the log through r.outbox, appended by one goroutine
// at a time (the group append, like the group commit of a file), and come
// back like everyone else's.

// maxWaitingBatches bounds the batches a room holds back while it repairs a
// gap; past it the room gives up and its clients reconnect.
const maxWaitingBatches = 10000

// maxOutboxBytes bounds the updates of one room waiting to be appended
// while the shared log is slow; an update past it closes its sender with
// 1013 (try again later).
const maxOutboxBytes = 16 << 20

// roomSink is how a room's SharedRoom reaches it.
type roomSink struct{ r *room }

func (s roomSink) Deliver(b Batch) { s.r.deliver(b) }
func (s roomSink) Awareness(origin string, entries []yproto.AwarenessEntry) {
	s.r.applyRemoteAwareness(entries, time.Now())
}
func (s roomSink) Stateless(origin string, payload []byte) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.loaded {
		s.r.broadcastLocked(newOutbound(OpStateless, payload, nil, nil), nil)
	}
}
func (s roomSink) Resubscribed() { s.r.resubscribed() }
func (s roomSink) Lost(err error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.breakLocked("lost contact with the cluster's shared log: reconnect to resync", err)
}

// sharedContext bounds one operation on the shared log.
func (h *Hub) sharedContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.ctx, h.cluster.Timeout())
}

// loadShared joins the room in the cluster and reads its state. It runs
// before the room is ready, like load.
func (r *room) loadShared() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.hub.cluster.Timeout())
	defer cancel()
	shared, st, err := r.hub.cluster.Join(ctx, r.key, roomSink{r})
	if err != nil {
		return fmt.Errorf("%w: %w", errSharedLoad, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shared = shared
	r.loaded = true
	r.tail = append(r.tail[:0], st.Checkpoint...)
	for _, b := range st.Batches {
		for _, u := range b.Updates {
			r.tail = append(r.tail, u.Update)
			r.sinceCPRecords++
			r.sinceCPBytes += int64(len(u.Update))
		}
	}
	for _, u := range r.tail {
		r.tailBytes += len(u)
	}
	r.seq, r.cpSeq = st.Seq, st.CheckpointSeq
	if err := r.foldLocked(); err != nil {
		r.closeLocked()
		shared.Leave()
		return fmt.Errorf("%w: merging room %q from %s: %w", errSharedLoad, r.key, shared.Where(), err)
	}
	for _, a := range st.Awareness {
		r.applyRemoteAwarenessLocked([]yproto.AwarenessEntry{a.AwarenessEntry}, a.Renewed)
	}
	// Batches delivered while the state was read.
	r.applyWaitingLocked()
	return nil
}

// deliver takes a batch from the shared log.
func (r *room) deliver(b Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken || r.loaded && b.Seq <= r.seq || !r.loaded && r.shared != nil {
		return // (the last: unloaded, and left)
	}
	if len(r.waiting) >= maxWaitingBatches {
		r.breakLocked("fell too far behind the cluster's shared log: reconnect to resync", nil)
		return
	}
	if r.waiting == nil {
		r.waiting = make(map[uint64]Batch)
	}
	r.waiting[b.Seq] = b
	if r.loaded {
		r.applyWaitingLocked()
	}
}

// applyWaitingLocked applies the waiting batches that follow r.seq, in
// order, and starts a repair if a gap holds others back.
func (r *room) applyWaitingLocked() {
	for seq := range r.waiting {
		if seq <= r.seq {
			delete(r.waiting, seq)
		}
	}
	for {
		b, ok := r.waiting[r.seq+1]
		if !ok {
			break
		}
		delete(r.waiting, b.Seq)
		r.applyBatchLocked(b)
	}
	if len(r.waiting) > 0 {
		r.startRepairLocked()
		return
	}
	if job := r.checkpointDueLocked(); job != nil {
		// Never on the goroutine that delivers every room's batches.
		go r.checkpointWhileDue(job)
	}
}

// applyBatchLocked makes a batch part of the room and relays its updates,
// each to every connection but the one (of this hub) that sent it.
func (r *room) applyBatchLocked(b Batch) {
	r.seq = b.Seq
	mine := b.Origin == r.hub.instance
	for _, u := range b.Updates {
		var from *conn
		if mine {
			from = r.byID[u.Conn]
		}
		r.acceptLocked(u.Update, newOutbound(OpUpdate, u.Update, nil, nil), from)
		r.sinceCPRecords++
		r.sinceCPBytes += int64(len(u.Update))
	}
}

// startRepairLocked fetches, outside the lock, the batches after r.seq, unless a
// repair runs already.
func (r *room) startRepairLocked() {
	t, ok := r.beginLocked(jobRepair)
	if !ok {
		// The running repair may have read the log before what this
		// one is for: it runs again when it ends.
		r.repairAgain = true
		return
	}
	r.repairAgain = false
	go r.repair(t, r.seq)
}

func (r *room) repair(t ticket, after uint64) {
	ctx, cancel := r.hub.sharedContext()
	defer cancel()
	batches, err := r.shared.Range(ctx, after)
	r.mu.Lock()
	defer r.mu.Unlock()
	if loaded, _ := r.endLocked(t); !loaded || r.broken {
		return
	}
	if err != nil {
		r.breakLocked("could not catch up with the cluster's shared log: reconnect to resync", err)
		return
	}
	for _, b := range batches {
		if b.Seq > r.seq {
			if r.waiting == nil {
				r.waiting = make(map[uint64]Batch)
			}
			r.waiting[b.Seq] = b
		}
	}
	before := r.seq
	if _, ok := r.waiting[r.seq+1]; !ok && len(r.waiting) > 0 {
		// The log's end was read, and the gap is still there: what is
		// missing is gone.
		r.breakLocked("the cluster's shared log is missing updates: reconnect to resync",
			fmt.Errorf("batch %d missing after repair", before+1))
		return
	}
	r.applyWaitingLocked()
	if r.repairAgain {
		r.startRepairLocked()
	}
}

// resubscribed repairs what the room may have missed while its
// subscription was down.
func (r *room) resubscribed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded && !r.broken {
		r.startRepairLocked()
	}
}

// breakLocked gives up on the room: its state can no longer be kept in
// line with the shared log. Its clients are closed with 1013 and reconnect
// to a fresh load (acquire never hands out a broken room), which resyncs
// them: what they have that the log lacks, they send back in their step 2.
func (r *room) breakLocked(reason string, err error) {
	if r.broken {
		return
	}
	r.broken = true
	r.hub.log().Warn("closing room: it cannot follow the cluster's shared log", zap.String("room", r.key),
		zap.String("reason", reason), zap.Error(err))
	for c := range r.conns {
		c.close(StatusTryAgainLater, reason)
	}
}

func (r *room) isBroken() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.broken
}

// queueAppendLocked queues a validated update of from for the shared log.
// It returns a ticket if the caller must run the group append.
func (r *room) queueAppendLocked(from *conn, update []byte) (*ticket, error) {
	if r.broken {
		return nil, errRoomBroken
	}
	if r.outboxBytes+len(update) > maxOutboxBytes {
		return nil, errSharedLogBusy
	}
	r.outbox = append(r.outbox, SharedUpdate{Conn: from.id, Update: update})
	r.outboxFrom = append(r.outboxFrom, from)
	r.outboxBytes += len(update)
	t, ok := r.beginLocked(jobCommit)
	if !ok {
		return nil, nil // the running group append takes it
	}
	return &t, nil
}

// appendShared is the group append: it appends what waits in the outbox as
// one batch, outside the room lock, and repeats until nothing waits. One
// runs per room at a time (the jobCommit slot), so batches keep the order
// in which the room queued their updates. The
// updates are relayed when the log delivers them back. If the log does not
// take a batch, its senders are closed with 1011, so that they resend it
// when they reconnect.
func (r *room) appendShared(t ticket) {
	ended := false
	var froms []*conn // the senders of the batch on its way
	defer func() {
		// A goroutine of its own: a panic must not take the server down.
		// The batch's senders resend it when they reconnect.
		if v := recover(); v != nil {
			r.hub.log().Error("panic while appending to the cluster's shared log", zap.String("room", r.key),
				zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			for _, c := range froms {
				c.close(StatusInternalError, "internal error")
			}
		}
		if !ended {
			r.mu.Lock()
			r.endLocked(t)
			r.mu.Unlock()
		}
	}()
	for {
		r.mu.Lock()
		var batch []SharedUpdate
		batch, froms = r.outbox, r.outboxFrom
		r.outbox, r.outboxFrom, r.outboxBytes = nil, nil, 0
		if len(batch) == 0 {
			r.endLocked(t)
			ended = true
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := r.hub.sharedContext()
		_, err := r.shared.Append(ctx, batch)
		cancel()
		if err == nil {
			continue
		}
		r.hub.log().Error("appending to the cluster's shared log", zap.String("room", r.key),
			zap.Int("updates", len(batch)), zap.Error(err))
		r.mu.Lock()
		for _, c := range froms {
			r.hub.metrics().Rejected(RejectInternal)
			c.close(StatusInternalError, "server could not store the update: the cluster's shared log did not take it")
		}
		if errors.Is(err, ErrRoomReset) {
			r.breakLocked("the room was reset in the cluster's shared log: reconnect to resync", err)
		}
		r.mu.Unlock()
	}
}

// checkpointDueLocked returns a checkpoint for the caller to run (with
// runSharedCheckpoint, once the room lock is released) when what the room
// applied since it last compacted its state passed the compaction policy,
// or nil.
func (r *room) checkpointDueLocked() *compaction {
	if !r.loaded || r.broken {
		return nil
	}
	o := r.hub.options()
	if r.sinceCPRecords < o.CompactRecords && r.sinceCPBytes < int64(o.CompactBytes) {
		return nil
	}
	// As for files: wait until what follows the snapshot is half its
	// size, so that the cost per update stays constant.
	if r.sinceCPBytes*2 < int64(len(r.snapshot)) {
		return nil
	}
	return r.checkpointJobLocked()
}

// checkpointJobLocked takes the state up to r.seq for a checkpoint, unless
// one runs already.
func (r *room) checkpointJobLocked() *compaction {
	t, ok := r.beginLocked(jobCompaction)
	if !ok {
		return nil
	}
	return &compaction{t: t, parts: r.partsLocked(), n: len(r.tail), seq: r.seq,
		records: r.sinceCPRecords, bytes: r.sinceCPBytes}
}

// checkpointWhileDue runs job, then the next checkpoint if enough arrived
// meanwhile: nothing else would start it if no batch followed.
func (r *room) checkpointWhileDue(job *compaction) {
	for job != nil {
		err := r.runSharedCheckpoint(job)
		if err != nil && !errors.Is(err, ErrNotLeaseHolder) && !errors.Is(err, ErrStaleCheckpoint) {
			return // logged; the next batch tries again
		}
		r.mu.Lock()
		job = r.checkpointDueLocked()
		r.mu.Unlock()
	}
}

// runSharedCheckpoint merges the state a checkpoint job took, without the
// room lock, and stores it as the room's checkpoint if this hub holds the
// room's lease. Either way the merge becomes the room's snapshot: every
// server that has the room compacts its memory as a single server
// compacts its file, and only the lease holder also writes the checkpoint
// (and so bounds the shared log).
func (r *room) runSharedCheckpoint(job *compaction) error {
	start := time.Now()
	var merged []byte
	var cpSeq uint64
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		ctx, cancel := r.hub.sharedContext()
		defer cancel()
		leaseErr := r.shared.AcquireLease(ctx)
		if merged, err = mergeState(job.parts); err != nil {
			merged = nil
			return err
		}
		if _, err := yproto.ValidateUpdate(merged, yproto.Limits{}); err != nil {
			merged = nil
			return fmt.Errorf("merged update: %w", err)
		}
		if leaseErr != nil {
			return leaseErr
		}
		cpSeq, err = r.shared.Checkpoint(ctx, merged, job.seq)
		return err
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	loaded, sameSnapshot := r.endLocked(job.t)
	if loaded && merged != nil {
		r.sinceCPRecords -= job.records
		r.sinceCPBytes -= job.bytes
		if sameSnapshot {
			r.installMergedLocked(merged, job.n)
		}
	}
	switch {
	case err == nil:
		r.hub.metrics().Compacted(time.Since(start))
		r.cpSeq = cpSeq
		r.hub.log().Info("checkpointed room", zap.String("room", r.key), zap.Uint64("seq", job.seq),
			zap.String("checkpoint", r.shared.Where()), zap.Int("bytes", len(merged)), zap.Duration("took", time.Since(start)))
	case errors.Is(err, ErrNotLeaseHolder) || errors.Is(err, ErrStaleCheckpoint):
		// Another server checkpoints the room, or did past this point.
		r.cpSeq = max(r.cpSeq, cpSeq)
	default:
		r.hub.log().Error("checkpointing room", zap.String("room", r.key), zap.Error(err))
	}
	return err
}

// checkpointNow checkpoints the room now, waiting for a checkpoint that
// runs already (the admin API's compact).
func (r *room) checkpointNow() error {
	deadline := time.Now().Add(compactWait)
	for {
		r.mu.Lock()
		if !r.loaded {
			r.mu.Unlock()
			return ErrRoomNotFound
		}
		if r.seq == r.cpSeq {
			r.mu.Unlock()
			return nil // nothing after the checkpoint
		}
		job := r.checkpointJobLocked()
		r.mu.Unlock()
		if job != nil {
			return r.runSharedCheckpoint(job)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: a checkpoint kept running for %v", ErrBusy, compactWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// unloadSharedLocked checkpoints what the log holds after the last
// checkpoint, if this hub gets the lease, and leaves the room. Called by
// unload with no job running.
func (r *room) unloadSharedLocked() {
	// Not while the cluster is unreachable: a stop would wait for a
	// timeout per room, and the stream keeps the updates anyway.
	if r.seq > r.cpSeq && !r.broken && r.hub.cluster.Healthy() == nil {
		if job := r.checkpointJobLocked(); job != nil {
			r.mu.Unlock()
			err := r.runSharedCheckpoint(job)
			r.mu.Lock()
			if err != nil && !errors.Is(err, ErrNotLeaseHolder) && !errors.Is(err, ErrStaleCheckpoint) {
				r.hub.log().Warn("room left without a checkpoint: the shared log keeps its updates",
					zap.String("room", r.key), zap.Error(err))
			}
		}
	}
	if !r.broken && r.hub.cluster.Healthy() == nil {
		ctx, cancel := r.hub.sharedContext()
		// Another server that still has the room checkpoints it next.
		_ = r.shared.ReleaseLease(ctx)
		cancel()
	}
	r.shared.Leave()
	r.waiting = nil
}

// publishAwareness sends entries this hub's clients set to the other hubs.
// A failure is logged: presence is not worth a connection.
func (r *room) publishAwareness(entries []yproto.AwarenessEntry) {
	if r.shared == nil || len(entries) == 0 || r.hub.cluster.Healthy() != nil {
		return
	}
	ctx, cancel := r.hub.sharedContext()
	defer cancel()
	if err := r.shared.PublishAwareness(ctx, entries); err != nil {
		r.hub.log().Warn("publishing awareness to the cluster", zap.String("room", r.key), zap.Error(err))
	}
}

// publishStateless relays a stateless message to the other hubs, best
// effort: it is not stored, and a client that misses it is not told.
func (r *room) publishStateless(payload []byte) {
	if r.shared == nil || r.hub.cluster.Healthy() != nil {
		return
	}
	ctx, cancel := r.hub.sharedContext()
	defer cancel()
	if err := r.shared.PublishStateless(ctx, payload); err != nil {
		r.hub.log().Warn("publishing a stateless message to the cluster", zap.String("room", r.key), zap.Error(err))
	}
}

// applyRemoteAwareness applies entries another hub published.
func (r *room) applyRemoteAwareness(entries []yproto.AwarenessEntry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded {
		r.applyRemoteAwarenessLocked(entries, now)
	}
}

// applyRemoteAwarenessLocked records entries of another hub's clients and
// relays those that changed. An entry it already has with the same clock
// is a renewal: kept longer, not relayed.
func (r *room) applyRemoteAwarenessLocked(entries []yproto.AwarenessEntry, now time.Time) {
	var changed []yproto.AwarenessEntry
	for _, e := range entries {
		cur := r.awareness[e.ClientID]
		removed := e.Removed()
		if cur != nil && !(cur.clock < e.Clock || cur.clock == e.Clock && removed && cur.state != nil) {
			if cur.owner == nil && cur.clock == e.Clock && !removed {
				cur.renewed = now
			}
			continue
		}
		if cur == nil {
			cur = &awarenessState{}
			r.awareness[e.ClientID] = cur
		} else if cur.owner != nil {
			delete(cur.owner.awarenessIDs, e.ClientID)
		}
		cur.clock, cur.owner, cur.renewed = e.Clock, nil, now
		if removed {
			cur.state = nil
		} else {
			cur.state = append([]byte(nil), e.State...)
		}
		changed = append(changed, e)
	}
	r.relayAwarenessLocked(changed)
}

// expireRemoteAwareness drops the entries of other hubs that were not
// renewed within AwarenessTimeout (their server died, or lost its
// connection to the cluster), and relays their removal.
func (r *room) expireRemoteAwareness(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var removed []yproto.AwarenessEntry
	for id, st := range r.awareness {
		if st.owner != nil || now.Sub(st.renewed) < AwarenessTimeout {
			continue
		}
		removed = r.dropAwarenessLocked(id, st, removed)
	}
	r.relayAwarenessLocked(removed)
}

// renewAwareness republishes the entries of this hub's clients, so that
// the other hubs keep them.
func (r *room) renewAwareness() {
	r.mu.Lock()
	var entries []yproto.AwarenessEntry
	if r.loaded && !r.broken {
		for id, st := range r.awareness {
			if st.owner != nil && st.state != nil {
				entries = append(entries, yproto.AwarenessEntry{ClientID: id, Clock: st.clock, State: st.state})
			}
		}
	}
	r.mu.Unlock()
	r.publishAwareness(entries)
}
