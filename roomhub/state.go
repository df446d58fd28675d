package roomhub

import (
	"bytes"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// A room keeps its document as bytes, never as a live Yjs document: a
// snapshot (one merged update) and the tail of updates accepted since.
// Folding merges the tail into the snapshot; it happens when the whole
// document is needed (a join, a step 2, a compaction), and the state
// vector, coverage and full step 2 derived from it are cached until the
// next update.

// emptyUpdate is a Yjs v1 update with no structs and no deletes.
var emptyUpdate = []byte{0, 0}

// foldLocked merges the tail into the snapshot, under the lock (for a
// caller that needs the document now and holds the lock anyway).
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
// the content of deleted items as it goes (CompactUpdates): the snapshot,
// the log after a compaction and every step 2 then carry what a Yjs
// document with gc on keeps, and no deleted text that no client shows.
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
	r.gen++
}

// stateLocked returns the whole document as one update.
func (r *room) stateLocked() ([]byte, error) {
	if !r.loaded {
		return nil, storage.ErrClosed
	}
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
// yproto's parse when it can be (y-crdt builds an object per struct).
// Without Skip structs each client's section is one run of clocks, and Yjs
// counts a client only if that run starts at clock 0.
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

// refreshState returns the whole document as one update, merging the tail
// into the snapshot, and computes the state vector that goes with it (and,
// withCoverage, the coverage a step 2 is checked against). The merge and
// the parse behind the others run outside the lock; the results become the
// room's if no other snapshot was installed meanwhile (the state vector and
// coverage only if no update arrived meanwhile either).
func (r *room) refreshState(withCoverage bool) ([]byte, error) {
	r.mu.Lock()
	if len(r.tail) == 0 && r.stateVector != nil && (r.coverage != nil || !withCoverage) {
		state := r.snapshot
		r.mu.Unlock()
		return state, nil
	}
	t, ok := r.beginLocked(jobNone)
	parts, n := r.partsLocked(), len(r.tail)
	r.mu.Unlock()
	if !ok {
		return nil, storage.ErrClosed
	}

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
	if _, same := r.endLocked(t); !same {
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

// sameBytes reports whether a and b are the same slice (not only equal).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// covers reports whether the room has everything of an update already (a
// read-only client's step 2 is acknowledged then, as nothing is lost).
func (r *room) covers(info yproto.UpdateInfo) (bool, error) {
	if _, err := r.refreshState(true); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cov, err := r.coverageLocked()
	if err != nil {
		return false, err
	}
	return cov.covers(info), nil
}
