package yproto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decoders wrap them with %w and add what was being read and the byte
// offset, so test them with errors.Is.
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

// errAt wraps sentinel with what was being read and where it starts. It is only called on
// the error path, so its formatting costs nothing on valid input.
func errAt(sentinel error, offset int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", sentinel, fmt.Sprintf(format, args...), offset)
}
