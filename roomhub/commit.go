package roomhub

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// The write path: an update is validated (by the session), appended to the
// room's log, and only then relayed. Under fsync always it is relayed only
// once an fsync covers it, and one fsync covers every update that arrived
// while the previous one ran (group commit).

// pendingUpdate is an update in the log waiting for its fsync.
type pendingUpdate struct {
	update []byte
	msg    *outbound // the message to relay
	from   *conn
}

// applyUpdate stores a validated update and relays msg (or, when msg is
// nil, the update) to every other connection. An update that adds nothing
// to the room is neither stored nor relayed; only step 2 messages are
// checked for that (checkNew: a reconnecting client repeats what the room
// has), since live updates are new by construction.
func (r *room) applyUpdate(from *conn, update []byte, info yproto.UpdateInfo, msg *outbound, checkNew bool) error {
	commit, job, err := r.storeUpdate(from, update, info, msg, checkNew)
	if job != nil {
		r.runCompaction(job)
	}
	if commit != nil {
		if r.hub.cluster != nil {
			// On a goroutine of its own (the room's job slot owns it;
			// unload waits for it): the sender reads on while its update
			// is on its way to the shared log, and what it sends
			// meanwhile goes in the next batch. A connection's updates
			// would otherwise go one round trip at a time.
			go r.appendShared(*commit)
		} else {
			r.commitPending(*commit)
		}
	}
	return err
}

// storeUpdate is applyUpdate's part under the room lock. It returns the
// ticket of a group commit for the caller to run (fsync always, when no
// other goroutine runs one), and a compaction for the caller to run; both
// once the lock is released.
func (r *room) storeUpdate(from *conn, update []byte, info yproto.UpdateInfo, msg *outbound, checkNew bool) (commit *ticket, job *compaction, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		return nil, nil, storage.ErrClosed
	}
	if checkNew {
		cov, err := r.coverageLocked()
		if err == nil && cov.covers(info) {
			from.acknowledge() // nothing new: stored already
			return nil, nil, nil
		}
	}
	if max := r.hub.options().MaxDocumentSize; max > 0 && r.sizeLocked()+int64(len(update)) > max {
		return nil, nil, errDocumentTooLarge
	}
	if r.shared != nil {
		// Relayed when the shared log delivers it back (shared.go).
		commit, err := r.queueAppendLocked(from, update)
		return commit, nil, err
	}
	if msg == nil {
		msg = newOutbound(OpUpdate, update, nil, nil)
	}
	start := time.Now()
	if _, err := r.log.Append(update); err != nil {
		return nil, nil, err
	}
	r.hub.metrics().Appended(time.Since(start))
	r.trackFileSizeLocked()
	// Updates already waiting for an fsync keep their place in line even
	// if a reload changed the policy meanwhile.
	if r.hub.options().Fsync.Mode != FsyncAlways && len(r.pending) == 0 {
		r.acceptLocked(update, msg, from)
		return nil, r.compactionDueLocked(), nil
	}
	r.pending = append(r.pending, pendingUpdate{update: update, msg: msg, from: from})
	t, ok := r.beginLocked(jobCommit)
	if !ok {
		return nil, nil, nil // the running commit's next fsync covers it
	}
	return &t, nil, nil
}

// commitPending is the group commit: it fsyncs the log outside the room
// lock, so that updates keep arriving (and being appended) meanwhile, then
// relays every update that fsync covered, and repeats until none wait.
func (r *room) commitPending(t ticket) {
	defer func() {
		if v := recover(); v != nil {
			// Let a later update take over committing, then let the
			// connection's recover handle the panic.
			r.mu.Lock()
			r.endLocked(t)
			r.mu.Unlock()
			panic(v)
		}
	}()
	for {
		r.mu.Lock()
		n := len(r.pending)
		r.mu.Unlock()
		start := time.Now()
		err := r.log.Sync() // covers at least the first n pending updates
		r.hub.metrics().Synced(time.Since(start))
		done, job := r.finishCommit(t, n, err)
		if job != nil {
			r.runCompaction(job)
		}
		if done {
			return
		}
	}
}

// finishCommit relays the n pending updates an fsync covered (or drops
// them if it failed) and reports whether none are left waiting (the commit
// has then ended), and a compaction that is due. The room cannot unload
// meanwhile: unload waits for the commit.
func (r *room) finishCommit(t ticket, n int, syncErr error) (done bool, job *compaction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := r.pending[:n:n]
	r.pending = r.pending[n:]
	if syncErr != nil {
		// Written but maybe not durable, so never relayed. The senders
		// are closed so that they resend it when they reconnect.
		r.hub.log().Error("syncing room file", zap.String("room", r.key),
			zap.String("path", r.log.Name()), zap.Error(syncErr))
		for _, p := range batch {
			if p.from != nil {
				p.from.close(StatusInternalError, "server could not store the update")
			}
		}
	} else {
		for _, p := range batch {
			r.acceptLocked(p.update, p.msg, p.from)
		}
	}
	if len(r.pending) > 0 {
		return false, nil
	}
	r.pending = nil
	r.endLocked(t)
	if syncErr == nil {
		job = r.compactionDueLocked()
	}
	return true, job
}

// acceptLocked makes a stored update part of the room, acknowledges it to
// its sender, and relays it.
func (r *room) acceptLocked(update []byte, msg *outbound, from *conn) {
	if from != nil {
		// Before the relay: the sender's "stored" is never later than
		// what others see of it.
		from.acknowledge()
	}
	r.tail = append(r.tail, update)
	r.tailBytes += len(update)
	r.stateVector = nil
	r.coverage = nil
	r.fullStep2 = nil
	r.lastUpdate = time.Now()
	r.broadcastLocked(msg, from)
	for _, o := range r.hub.observerList() {
		o.Changed(r.key, 1)
	}
}

// sizeLocked is the document's size as stored: the merged snapshot plus
// every update since, including those waiting for an fsync.
func (r *room) sizeLocked() int64 {
	n := int64(len(r.snapshot) + r.tailBytes + r.outboxBytes)
	for _, p := range r.pending {
		n += int64(len(p.update))
	}
	return n
}

// trackFileSizeLocked reports the change of the log's size to Metrics.
func (r *room) trackFileSizeLocked() {
	if r.log == nil {
		return
	}
	size := r.log.Stats().Bytes
	r.hub.metrics().FileBytes(size - r.fileBytes)
	r.fileBytes = size
}

// syncLog flushes the room's log if it has unsynced writes (fsync
// interval). The fsync runs outside the room lock, and installs nothing.
func (r *room) syncLog() {
	r.mu.Lock()
	_, ok := r.beginLocked(jobNone)
	r.mu.Unlock()
	if !ok || r.log == nil || r.log.Unsynced() == 0 {
		return
	}
	start := time.Now()
	err := r.log.Sync()
	r.hub.metrics().Synced(time.Since(start))
	if err != nil && !errors.Is(err, storage.ErrClosed) {
		r.hub.log().Error("syncing room file", zap.String("room", r.key), zap.String("path", r.log.Name()), zap.Error(err))
	}
}
