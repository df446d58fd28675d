// Package ysafe is the only door to github.com/skyterra/y-crdt.
//
// y-crdt has no error returns: malformed input is logged through its
// package-level Logf/Log and dropped, or it panics (YCRDT-NOTES.md §2). This
// package therefore
//   - replaces Logf and Log once, in init, before any goroutine can call into
//     the library (they print to stdout by default, which a hostile client
//     could flood), counting the calls instead;
//   - runs every call under recover and turns a panic into an error;
//   - is only ever given bytes that yproto has validated, because the fatal
//     out-of-memory and endless-loop failures of y-crdt cannot be recovered.
//
// The server merges and diffs updates with yproto (CompactUpdates,
// DiffUpdate), not with y-crdt: several times faster, a few allocations
// per call instead of several per struct, and deleted content dropped.
// From y-crdt it uses only the pure byte-level EncodeStateVectorFromUpdate,
// for an update with Skip structs, which shares no state and is safe for
// concurrent use. Merge and Diff stay, as the independent references that
// yproto's tests compare its merge and diff with. No live y-crdt Doc is ever kept:
// doc.go builds a fresh Doc per call, under a package mutex, only to render
// a document as JSON (admin API, `caddy wiredb export`) or build one from
// JSON (`caddy wiredb import`).
package ysafe

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	y "github.com/skyterra/y-crdt"
)

// ErrPanic is returned (wrapped) when y-crdt panicked during a call.
var ErrPanic = errors.New("ysafe: y-crdt panicked")

// libraryMessages counts Logf/Log calls: each one means y-crdt met data it
// could not read and silently dropped it.
var libraryMessages atomic.Uint64

func init() {
	y.Logf = func(string, ...any) { libraryMessages.Add(1) }
	y.Log = func(...any) { libraryMessages.Add(1) }
}

// LibraryMessages reports how many times y-crdt tried to log since start-up.
func LibraryMessages() uint64 { return libraryMessages.Load() }

// PanicError carries the recovered value and stack of a y-crdt panic.
type PanicError struct {
	Op    string
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("ysafe: %s: y-crdt panicked: %v", e.Op, e.Value)
}
func (e *PanicError) Unwrap() error { return ErrPanic }

func guard(op string, err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Op: op, Value: r, Stack: debug.Stack()}
	}
}

// mergeFanIn is how many updates one y-crdt merge call takes. MergeUpdates
// (like Yjs's mergeUpdates, which it ports) re-sorts its inputs for every
// struct it writes, so one call over n updates costs about n² log n: 100k
// keystrokes took 14 s in one call, 193 ms as a tree (BenchmarkLoadRoom).
// A tree of calls of at most mergeFanIn inputs costs about n·log n;
// updates merge associatively, so the result holds the same content.
const mergeFanIn = 64

// Merge folds validated v1 updates into one v1 update.
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

// Diff returns the part of a validated v1 update that a peer with the given
// (validated) state vector is missing. The delete set is always carried whole.
func Diff(update, stateVector []byte) (diff []byte, err error) {
	defer guard("diff", &err)
	return y.DiffUpdate(update, stateVector), nil
}

// StateVector returns the encoded state vector of a validated v1 update.
func StateVector(update []byte) (sv []byte, err error) {
	defer guard("state vector", &err)
	return y.EncodeStateVectorFromUpdate(update), nil
}
