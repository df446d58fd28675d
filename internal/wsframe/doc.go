// Package wsframe watches the client-to-server WebSocket framing of one
// connection (RFC 6455 §5.2) beneath github.com/coder/websocket, so that a
// message announcing more bytes than allowed is refused as soon as its frame
// header arrives.
//
// coder/websocket's SetReadLimit only fails once limit+1 payload bytes have
// actually been read. A peer that announces a 1 TiB frame and then sends a
// few bytes, or nothing, keeps the connection stuck in the middle of that
// frame. A Guard sees the header instead: Guard.Wrap wraps the
// http.ResponseWriter given to websocket.Accept, so that the hijacked
// connection's reads pass through a byte-stream frame parser. The parser
// keeps a few counters and never buffers payload, so nothing it allocates
// depends on announced sizes.
//
// When a data message announces more than the limit, the Guard stops
// delivering bytes to coder/websocket and runs the function given to
// OnTooBig; the caller then closes the connection with
// websocket.StatusMessageTooBig.
//
// The write side is not watched here. AppendBinaryFrame encodes the frames
// that a caller writes beside coder/websocket's own; internal/wstransport
// puts every write to the connection, its own batches and coder/websocket's
// frames alike, under one write lock.
//
// The parser counts announced (wire) lengths. Accept must be called without
// compression, as it is by default: with permessage-deflate the announced
// lengths would be compressed sizes, and a small compressed message could
// still inflate beyond the limit (SetReadLimit remains the check for that).
package wsframe
