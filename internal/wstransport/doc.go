// Package wstransport implements roomhub.Transport for WebSocket connections
// upgraded from HTTP/1.1.
//
// github.com/coder/websocket does the handshake and all the reading;
// internal/wsframe's Guard sits beneath its reads and refuses a message
// whose header announces more than the size limit. Messages to the client
// are written as ready-made frames, many per write(2), straight to the
// hijacked connection, beside coder/websocket's own frames (pings, pongs,
// close).
//
// One rule keeps the two writers from corrupting the stream: every write to
// the socket, data or control, holds the socket's write lock. WriteMessages
// takes it for a batch. coder/websocket writes its frames into a
// bufio.Writer that this package hands it at the hijack; that writer writes
// into a frame-aware writer, which parses the outgoing frame stream and
// holds the lock from each frame's first byte to its last, however the
// buffer splits the frame. The lock is a one-slot channel, so that Close
// can wait for a batch in progress for a bounded time.
//
// The seam relies on coder/websocket v1.8.15 behaving as follows on the
// server side (TestCoderWebsocketAssumptions checks most of it on plain
// coder/websocket, TestStress the rest through this package):
//   - it writes only through the hijacked bufio.Writer,
//     a frame at a time, flushing at the end of each final frame;
//   - the 101 response does not go through that writer;
//   - it reads the bytes buffered before the hijack, then the hijacked
//     connection;
//   - it sets no deadlines on the connection (its timeouts close it);
//   - Close sends its close frame within 5 s, then waits 5 s for the
//     peer's, and a pong it fails to write meanwhile ends that wait with
//     the connection closed and reset, so pings are left unanswered once
//     Close has begun (AcceptOptions.OnPingReceived).
//
// TestCoderWebsocketVersion pins the version: moving it means checking
// these again.
package wstransport
