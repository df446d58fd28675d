// Package ysafe is the only door to github.com/skyterra/y-crdt on the serving and tool
// paths (tests also reach it through internal/yref).
//
// y-crdt has no error returns: malformed input is logged through its package-level
// Logf/Log and dropped, or it panics (docs/y-crdt.md, "What crashes or hangs it"). This
// package therefore
//   - replaces Logf and Log with functions that do nothing, once, in init, before any
//     goroutine can call into the library (they print to stdout by default, which a
//     hostile client could flood);
//   - runs every call under recover and turns a panic into an error;
//   - is only ever given bytes that yproto has validated, because the fatal out-of-memory
//     and endless-loop failures of y-crdt cannot be recovered.
//
// The server merges and diffs updates with yproto (MergeUpdates, CompactUpdates,
// DiffUpdate), not with y-crdt. On the path that serves rooms it uses from y-crdt only the
// pure byte-level EncodeStateVectorFromUpdate (StateVector), for an update with Skip
// structs, which shares no state and is safe for concurrent use. No live y-crdt Doc is ever
// kept: doc.go builds a fresh Doc per call, under a package mutex, to render a document as
// JSON (the admin API, `caddy wiredb inspect` and `export`) or build one from JSON (`caddy
// wiredb import`).
package ysafe

import (
	"errors"
	"fmt"
	"runtime/debug"

	y "github.com/skyterra/y-crdt"
)

// ErrPanic is returned (wrapped) when y-crdt panicked during a call.
var ErrPanic = errors.New("ysafe: y-crdt panicked")

func init() {
	// A call means y-crdt met data it could not read and dropped it. Only validated bytes
	// reach it, so that would be a y-crdt bug that no caller could act on: discarded.
	y.Logf = func(string, ...any) {}
	y.Log = func(...any) {}
}

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

// StateVector returns the encoded state vector of a validated v1 update.
func StateVector(update []byte) (sv []byte, err error) {
	defer guard("state vector", &err)
	return y.EncodeStateVectorFromUpdate(update), nil
}
