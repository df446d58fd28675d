package roomhub

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// Compaction (WireDB's "squash") replaces the log's records with one merged
// update, a checkpoint. It runs as work outside the lock: updates accepted
// meanwhile stay in the tail, and the log keeps them after the checkpoint.

// compaction is a compaction prepared under the room lock, to run outside
// it.
type compaction struct {
	t     ticket
	upTo  storage.Position // the log's end when parts were taken
	parts [][]byte         // the snapshot and the first n updates of the tail
	n     int

	// In cluster mode: the last batch of the shared log in parts, and the
	// updates after the room's checkpoint that parts hold.
	seq     uint64
	records int
	bytes   int64
}

// compactionDueLocked returns a compaction for the caller to run (with
// runCompaction, once the room lock is released) when the log grew past
// the policy's bound, or nil. Under fsync always, updates still waiting
// for their fsync are in the log but not in the tail, so compaction waits
// for a moment with none: the log then holds exactly the snapshot and the
// tail.
func (r *room) compactionDueLocked() *compaction {
	if len(r.pending) > 0 || !r.loaded {
		return nil
	}
	// Measured on the log, not the tail: joins fold the tail into the
	// snapshot, but the log keeps every record until a checkpoint.
	o := r.hub.options()
	st := r.log.Stats()
	if st.SinceCheckpointRecords < o.CompactRecords && st.SinceCheckpointBytes < int64(o.CompactBytes) {
		return nil
	}
	// Compacting merges the whole document, so it waits until what
	// follows the checkpoint is at least half its size: the cost per
	// update then stays constant however big the document grows, and the
	// log stays within about 1.5 times the document.
	if st.SinceCheckpointBytes*2 < st.CheckpointBytes {
		return nil
	}
	t, ok := r.beginLocked(jobCompaction)
	if !ok {
		return nil
	}
	return &compaction{t: t, upTo: r.log.End(), parts: r.partsLocked(), n: len(r.tail)}
}

// runCompaction merges and checkpoints the log without the room lock, then
// makes the merged update the room's snapshot, unless another snapshot was
// installed meanwhile. A failure is logged and leaves the log as it was:
// appends go on.
func (r *room) runCompaction(job *compaction) {
	start := time.Now()
	merged, err := func() (merged []byte, err error) {
		// A panic must still end the job below, or unload would wait
		// for it forever.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("panic: %v", v)
			}
		}()
		if merged, err = mergeState(job.parts); err != nil {
			return nil, err
		}
		// The log is rewritten from this update alone: check it first.
		if _, err := yproto.ValidateUpdate(merged, yproto.Limits{}); err != nil {
			return nil, fmt.Errorf("merged update: %w", err)
		}
		return merged, r.log.Checkpoint(merged, job.upTo)
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	loaded, sameSnapshot := r.endLocked(job.t)
	if err != nil {
		if !errors.Is(err, storage.ErrClosed) && !errors.Is(err, storage.ErrStalePosition) {
			r.hub.log().Error("compacting room file", zap.String("room", r.key), zap.String("path", r.log.Name()), zap.Error(err))
		}
		return
	}
	r.hub.metrics().Compacted(time.Since(start))
	if !loaded {
		return
	}
	r.trackFileSizeLocked()
	if sameSnapshot {
		r.installMergedLocked(merged, job.n)
	}
	r.hub.log().Info("compacted room file", zap.String("room", r.key),
		zap.Int64("bytes", r.log.Stats().Bytes), zap.Duration("took", time.Since(start)))
}

// compactLocked is compactNowLocked for callers that log a failure and
// carry on: appends go on, and the log is as it was.
func (r *room) compactLocked() {
	if err := r.compactNowLocked(); err != nil {
		r.hub.log().Error("compacting room file", zap.String("room", r.key), zap.String("path", r.log.Name()), zap.Error(err))
	}
}

// compactNowLocked folds the tail and checkpoints the log, all under the
// room lock: the exception to working outside it, for unload and the admin
// API. The caller makes sure that no update waits for its fsync and no
// compaction runs: the log then holds exactly the snapshot and the tail.
func (r *room) compactNowLocked() error {
	if err := r.foldLocked(); err != nil {
		return err
	}
	if r.log.Stats().Records <= 1 {
		return nil
	}
	start := time.Now()
	if err := r.log.Checkpoint(r.snapshot, r.log.End()); err != nil {
		return err
	}
	r.hub.metrics().Compacted(time.Since(start))
	r.trackFileSizeLocked()
	r.hub.log().Info("compacted room file", zap.String("room", r.key),
		zap.Int64("bytes", r.log.Stats().Bytes), zap.Duration("took", time.Since(start)))
	return nil
}
