// Package yproto reads and writes the bytes that y-websocket (Yjs) clients exchange, and
// validates them strictly before anything else touches them.
//
// It has three parts:
//
//   - varints and messages: lib0's unsigned LEB128 varUint and the y-websocket framing of
//     y-protocols (sync step 1, sync step 2, update, awareness, auth, query awareness), one
//     message per binary WebSocket frame;
//   - awareness updates: the presence states (cursors, user names) that clients broadcast;
//   - a strict validator for Yjs v1 updates and state vectors.
//
// The validator stands in front of everything that reads an update: this package's merge
// and diff (MergeUpdates, CompactUpdates, DiffUpdate) take only validated updates, and
// github.com/skyterra/y-crdt (reached through internal/ysafe, for the state vectors of
// stored updates and for rendering) allocates without bound, loops forever or panics on
// hostile or corrupted bytes (docs/y-crdt.md, "What crashes or hangs it"). ValidateUpdate
// parses an update exactly as Yjs 13.6 reads it (readClientsStructRefs, readItemContent,
// lib0 readAny, readDeleteSet) and rejects everything Yjs would not write: every count and
// length is checked against the bytes that remain before it is used, nothing is allocated
// from a size the input claims, nesting depth is bounded without recursion, client IDs and
// clocks must be JavaScript safe integers (< 2^53), and no bytes may follow the delete set.
// Only bytes that passed it may reach y-crdt.
//
// Decoded payloads alias the input (no copies): a caller that keeps a Message.Payload or an
// AwarenessEntry.State beyond the life of the frame must not reuse the frame's buffer.
//
// Every error returned for rejected bytes is an *Error: its Kind is exactly one of the
// sentinel errors (ErrTruncated, ErrMalformed, ErrOutOfRange, ErrTooDeep, ErrTooManyEntries,
// ErrUnknownMessageType, ErrAwarenessState), which errors.Is finds through Unwrap, and its
// Offset and Detail say where the problem starts and what it is. Callers build messages from
// the fields (errors.As), never by taking Error() apart.
//
// All functions are pure: they keep no state between calls and only read their inputs, so
// they are safe for concurrent use, also on the same input. The decoders never panic, whatever
// the input (fuzz tests hold them to that).
package yproto
