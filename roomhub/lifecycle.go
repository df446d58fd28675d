package roomhub

import (
	"fmt"

	"go.uber.org/zap"
)

// A room is loaded on its first join (Hub.acquire), stays while it has
// connections, and is unloaded after an idle grace period (Hub.unloadIdle)
// or when the hub closes, once its log is durable and compacted.

// load opens the room's log and reads it. Records were validated by
// storage. It runs before the room is ready, with no other goroutine
// using the room.
func (r *room) load() error {
	if r.hub.cluster != nil {
		return r.loadShared()
	}
	opened, err := r.hub.store.Open(r.key)
	if err != nil {
		return err
	}
	for _, tmp := range opened.Recovery.RemovedTemps {
		r.hub.log().Warn("removed temp file of an interrupted compaction",
			zap.String("room", r.key), zap.String("path", tmp))
	}
	if opened.Recovery.TruncatedBytes > 0 {
		r.hub.log().Warn("cut torn last record of room file",
			zap.String("room", r.key), zap.String("path", opened.Log.Name()),
			zap.Int64("truncated_bytes", opened.Recovery.TruncatedBytes))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = opened.Log
	r.loaded = true
	r.trackFileSizeLocked()
	r.tail = opened.Updates
	for _, u := range r.tail {
		r.tailBytes += len(u)
	}
	if err := r.foldLocked(); err != nil {
		r.closeLocked()
		return fmt.Errorf("merging %s: %w", opened.Log.Name(), err)
	}
	// A compacted log's one record is the snapshot, and storage has parsed
	// it already: its state vector, which every join needs, comes from
	// that parse instead of a second one.
	if opened.Snapshot != nil {
		r.stateVector = stateVectorFromInfo(*opened.Snapshot)
	}
	return nil
}

// unload makes the log durable and compact and closes it. Called with no
// connections left, by the idle timer or Hub.Close.
func (r *room) unload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.awaitJobsLocked()
	if !r.loaded {
		return
	}
	if r.shared != nil {
		r.unloadSharedLocked()
		r.closeLocked()
		r.unloadedLocked()
		return
	}
	// Updates still waiting for an fsync (left by a commit that panicked)
	// are in the log: keep them.
	for _, p := range r.pending {
		r.tail = append(r.tail, p.update)
		r.tailBytes += len(p.update)
	}
	r.pending = nil
	if len(r.tail) > 0 || r.log.Stats().Records > 1 {
		r.compactLocked()
	}
	r.closeLocked()
	r.unloadedLocked()
}

// unloadedLocked reports an unload done.
func (r *room) unloadedLocked() {
	r.hub.metrics().RoomUnloaded()
	r.hub.log().Info("unloaded room", zap.String("room", r.key))
	for _, o := range r.hub.observerList() {
		o.Unloaded(r.key)
	}
}

// closeLocked closes the log and drops the document.
func (r *room) closeLocked() {
	if r.log != nil {
		if err := r.log.Close(); err != nil {
			r.hub.log().Error("closing room file", zap.String("room", r.key), zap.Error(err))
		}
	}
	r.loaded = false
	r.snapshot, r.tail, r.stateVector, r.coverage, r.fullStep2 = nil, nil, nil, nil, nil
	r.tailBytes = 0
	r.hub.metrics().FileBytes(-r.fileBytes)
	r.fileBytes = 0
}

// where names where the room is stored: its file, or in cluster mode its
// checkpoint.
func (r *room) where() string {
	if r.shared != nil {
		return r.shared.Where()
	}
	return r.log.Name()
}

// storedBytes is the size of the room's file (0 in cluster mode, where the
// shared log holds what follows the checkpoint).
func (r *room) storedBytes() int64 {
	if r.log == nil {
		return 0
	}
	return r.log.Stats().Bytes
}
