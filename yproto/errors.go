package yproto

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Every decoder returns an *Error whose Kind is one of them, so test them
// with errors.Is, and read the offset and detail with errors.As.
var (
	// ErrTruncated is returned when the input ends inside a value, or when a count or length
	// claims more elements or bytes than the input has left (a count of 2^40 fails here
	// before any loop runs).
	ErrTruncated = errors.New("yproto: truncated input")

	// ErrMalformed is returned when the bytes cannot be what Yjs or y-protocols writes: an
	// unknown content, type or any tag, invalid UTF-8 or JSON, a zero-length struct, a
	// duplicate client, or bytes left over after the last field.
	ErrMalformed = errors.New("yproto: malformed input")

	// ErrOutOfRange is returned when a varUint does not fit in 64 bits, or a client ID, clock,
	// clock+length or integer is not a JavaScript safe integer (< 2^53). Yjs cannot represent
	// such numbers exactly, and y-crdt panics on IDs of 2^63 and above.
	ErrOutOfRange = errors.New("yproto: number out of range")

	// ErrTooDeep is returned when Any values or JSON text nest deeper than Limits.MaxDepth
	// (128 by default).
	ErrTooDeep = errors.New("yproto: nesting too deep")

	// ErrTooManyEntries is returned by DecodeAwarenessUpdate when an update carries more
	// entries than the caller allows.
	ErrTooManyEntries = errors.New("yproto: too many entries")

	// ErrUnknownMessageType is returned by DecodeMessage for a message type other than sync,
	// awareness, auth and query awareness, a sync type other than step 1, step 2 and update,
	// and an auth type other than permission denied.
	ErrUnknownMessageType = errors.New("yproto: unknown message type")

	// ErrAwarenessState is returned by DecodeAwarenessUpdate when a state is valid JSON but not
	// an object or null (y-crdt would panic on it).
	ErrAwarenessState = errors.New("yproto: awareness state is not an object or null")
)

// Error is the error every function of this package returns for bytes it rejects:
// ValidateUpdate, ValidateStateVector, DecodeMessage, DecodeAwarenessUpdate, ReadVarUint,
// MergeUpdates, CompactUpdates and DiffUpdate. Unwrap returns Kind, so errors.Is(err,
// ErrTruncated) and the like work on it; errors.As gives the fields:
//
//	var e *yproto.Error
//	if errors.As(err, &e) {
//		// "invalid update: string content length 9 exceeds the 2 bytes left at byte 5"
//		reason := "invalid update: " + e.Reason()
//	}
//
// Error() is Kind's text, ": " and Reason(): "yproto: truncated input: string content length
// 9 exceeds the 2 bytes left at byte 5". An Error is built (and its detail formatted) only
// when input is rejected, so errors cost valid input nothing. The receiver of an Error owns
// it: no two calls return the same one.
type Error struct {
	// Kind is the sentinel that classifies the problem: ErrTruncated, ErrMalformed,
	// ErrOutOfRange, ErrTooDeep, ErrTooManyEntries, ErrUnknownMessageType or
	// ErrAwarenessState. Compare it with ==.
	Kind error
	// Offset is where the rejected value starts, in bytes from the start of the input that
	// was rejected: the frame for DecodeMessage, the payload for ValidateUpdate,
	// ValidateStateVector and DecodeAwarenessUpdate, b for ReadVarUint (always 0 there), and
	// for MergeUpdates, CompactUpdates and DiffUpdate the one update (or the state vector)
	// that was rejected.
	Offset int
	// Detail names the field and what is wrong with it, without the kind and the offset, in
	// lower case: "string content length 9 exceeds the 2 bytes left", "unknown any tag 115
	// in any content", "message type 7".
	Detail string
}

// Error returns Kind's text, ": " and Reason().
func (e *Error) Error() string {
	return e.Kind.Error() + ": " + e.Reason()
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// Reason returns Detail and Offset as "<detail> at byte <offset>": the text of Error()
// without the kind, for messages that name the kind in their own words (a WebSocket close
// reason such as "invalid update: zero delete length at byte 12").
func (e *Error) Reason() string {
	return e.Detail + " at byte " + strconv.Itoa(e.Offset)
}

// errAt returns an *Error of kind at offset, its detail formatted from format and args. It
// is only called on the error path, so its formatting costs nothing on valid input.
func errAt(kind error, offset int, format string, args ...any) error {
	return &Error{Kind: kind, Offset: offset, Detail: fmt.Sprintf(format, args...)}
}
