package yref

import (
	"runtime/debug"

	y "github.com/skyterra/y-crdt"

	// ysafe also silences y-crdt's Logf and Log before any test calls into it.
	"github.com/caddy-wiredb/wiredb/internal/ysafe"
)

// mergeFanIn is how many updates one y-crdt merge call takes. y-crdt's MergeUpdates (like
// Yjs's mergeUpdates, which it ports) re-sorts its inputs for every struct it writes, so
// one call over n updates costs about n² log n; a tree of calls of at most mergeFanIn inputs
// costs about n·log n. Updates merge associatively, so the result holds the same content.
const mergeFanIn = 64

// Merge folds validated v1 updates into one v1 update with y-crdt's MergeUpdates.
func Merge(updates [][]byte) (merged []byte, err error) {
	switch len(updates) {
	case 0:
		return []byte{0, 0}, nil
	case 1:
		return updates[0], nil
	}
	defer guard("merge", &err)
	for len(updates) > mergeFanIn {
		level := make([][]byte, 0, (len(updates)+mergeFanIn-1)/mergeFanIn)
		for start := 0; start < len(updates); start += mergeFanIn {
			group := updates[start:min(start+mergeFanIn, len(updates))]
			if len(group) == 1 {
				level = append(level, group[0])
				continue
			}
			level = append(level, y.MergeUpdates(group, y.NewUpdateDecoderV1, y.NewUpdateEncoderV1, false))
		}
		updates = level
	}
	return y.MergeUpdates(updates, y.NewUpdateDecoderV1, y.NewUpdateEncoderV1, false), nil
}

// Diff returns, with y-crdt's DiffUpdate, the part of a validated v1 update that a peer
// with the given (validated) state vector is missing. The delete set is carried whole.
func Diff(update, stateVector []byte) (diff []byte, err error) {
	defer guard("diff", &err)
	return y.DiffUpdate(update, stateVector), nil
}

func guard(op string, err *error) {
	if r := recover(); r != nil {
		*err = &ysafe.PanicError{Op: op, Value: r, Stack: debug.Stack()}
	}
}
