package main

// The wire protocols this tool speaks.
//
// y-websocket (y-protocols; what wiredb, @y/websocket-server and the bare relay speak): one
// message per binary WebSocket frame, varUint = unsigned LEB128.
//
//	sync:            varUint(0) varUint(sub) varUint8Array(payload)
//	                 sub 0 step1 (payload = state vector), 1 step2 (update), 2 update
//	awareness:       varUint(1) varUint8Array(n × (clientID, clock, JSON state))
//	auth:            varUint(2) varUint(0) varString(reason)   (permission denied)
//	query awareness: varUint(3)
//
// A client sends its step1 on open and answers the server's step1 with a step2; it is
// synced when the server's step2 (the answer to its step1) has arrived.
//
// Hocuspocus (@hocuspocus/server 4.7.0 and @hocuspocus/provider 4.7.0, read from the npm
// packages' sources; paths below are inside node_modules/@hocuspocus/):
//
//   - Every message, both ways, starts with the document name as a varString (varUint
//     byte length + UTF-8): provider src/OutgoingMessages/*.ts all begin with
//     writeVarString(encoder, documentName); server src/OutgoingMessage.ts constructor does
//     writeVarString(documentName); server src/ClientConnection.ts handleMessage reads it
//     first (readVarString) and routes by it, so one socket can carry several documents.
//     The name may be "name\0sessionId" (common/src/routingKey.ts) for session-aware
//     providers; we send the plain name. The URL path is not used for routing.
//   - Then varUint message type (server src/types.ts MessageType): 0 Sync, 1 Awareness,
//     2 Auth, 3 QueryAwareness, 4 SyncReply, 5 Stateless, 6 BroadcastStateless, 7 CLOSE,
//     8 SyncStatus, 9 Ping, 10 Pong. Sync's body is y-protocols' (varUint sub-type +
//     varUint8Array), as above.
//   - Auth first: the provider's first message is
//     [name] varUint(2 Auth) varUint(0 Token) varString(token) varString(providerVersion)
//     (provider src/OutgoingMessages/AuthenticationMessage.ts, common/src/auth.ts
//     writeAuthentication). The server queues every other message of that document until
//     the auth message has run the onConnect/onAuthenticate hooks (ClientConnection.ts
//     handleQueueingMessage), then answers [name] varUint(2) varUint(2 Authenticated)
//     varString("read-write"|"readonly") and replays the queue; a refusal is varUint(2)
//     varUint(1 PermissionDenied) varString(reason). The provider sends its step1 right
//     after the token without waiting (provider src/HocuspocusProvider.ts onOpen:
//     sendToken(); startSync()); so do we, and we count a connection as synced when both
//     "authenticated" and the step2 have arrived.
//   - The server never opens with a step1 of its own: it answers a client's step1 with the
//     step2 and then its own step1 (server src/MessageReceiver.ts readSyncMessage); the
//     client answers that with a step2.
//   - Every sync step2 or update a client sends is acknowledged to that client with
//     [name] varUint(8 SyncStatus) varUint(1) (MessageReceiver.ts readSyncMessage).
//   - Updates are relayed re-encoded, not as received: the server applies them to its
//     Y.Doc and broadcasts the doc's "update" event; with the default flushDelay 0 the
//     updates of one event-loop turn are merged (Y.mergeUpdates) into one message
//     (server src/Document.ts handleUpdate/flush). The broadcast goes to every connection
//     of the document, the sender included (Document.ts broadcast has no origin filter).
//     That is why this tool identifies a received update by the clock ranges of its
//     structs (yupdate.go), not by its bytes, and counts echoes apart.
//   - A connection from which nothing arrived for `timeout` (default 60 s) is closed
//     (ClientConnection.ts check); the idle scenario sends a query-awareness now and then
//     to stay (the server answers it with nothing when no awareness is set).
//
// The reference y-websocket server (@y/websocket-server 0.1.5, src/utils.js updateHandler)
// also relays re-encoded updates (its Y.Doc's "update" event), one message per applied
// update, to every connection of the document, the sender included.

import (
	"errors"
	"unicode/utf8"
)

// Message types (y-protocols; Hocuspocus adds 4-10).
const (
	msgSync           = 0
	msgAwareness      = 1
	msgAuth           = 2
	msgQueryAwareness = 3
	msgSyncStatus     = 8 // Hocuspocus: acknowledgement of a step2/update

	syncStep1  = 0
	syncStep2  = 1
	syncUpdate = 2

	authToken         = 0 // Hocuspocus: client -> server token
	authDenied        = 1
	authAuthenticated = 2 // Hocuspocus: server -> client
)

// protocol is the dialect on the wire.
type protocol int

const (
	protoYWebsocket protocol = iota
	protoHocuspocus
)

func (p protocol) String() string {
	if p == protoHocuspocus {
		return "hocuspocus"
	}
	return "y-websocket"
}

var errShort = errors.New("message too short")

// emptyUpdate is a Yjs v1 update with no structs and an empty delete set.
var emptyUpdate = []byte{0, 0}

// emptyStateVector is a Yjs state vector with no clients.
var emptyStateVector = []byte{0}

func appendVarUint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// readVarUint decodes an unsigned LEB128 number; n <= 0 when b holds none (or one of
// more than 64 bits).
func readVarUint(b []byte) (v uint64, n int) {
	var shift uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

func appendVarBytes(b, p []byte) []byte {
	b = appendVarUint(b, uint64(len(p)))
	return append(b, p...)
}

func appendVarString(b []byte, s string) []byte {
	b = appendVarUint(b, uint64(len(s)))
	return append(b, s...)
}

// readVarBytes reads a varUint8Array / varString: the bytes (aliasing b) and the rest.
func readVarBytes(b []byte) (p, rest []byte, err error) {
	l, n := readVarUint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, errShort
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// framer builds and parses the messages of one document (room) in one protocol. Its
// append methods write into a caller's buffer, so that a loop allocates nothing.
type framer struct {
	proto  protocol
	prefix []byte // Hocuspocus: varString(document name); y-websocket: none
}

func newFramer(p protocol, doc string) *framer {
	f := &framer{proto: p}
	if p == protoHocuspocus {
		f.prefix = appendVarString(nil, doc)
	}
	return f
}

func (f *framer) sync(dst []byte, sub int, payload []byte) []byte {
	dst = append(dst, f.prefix...)
	dst = append(dst, msgSync, byte(sub))
	return appendVarBytes(dst, payload)
}

func (f *framer) update(dst, u []byte) []byte { return f.sync(dst, syncUpdate, u) }
func (f *framer) step1(dst, sv []byte) []byte { return f.sync(dst, syncStep1, sv) }
func (f *framer) step2(dst, u []byte) []byte  { return f.sync(dst, syncStep2, u) }

func (f *framer) queryAwareness(dst []byte) []byte {
	dst = append(dst, f.prefix...)
	return append(dst, msgQueryAwareness)
}

// auth is Hocuspocus' first message (see the top of this file); nil for y-websocket.
func (f *framer) auth(dst []byte, token, version string) []byte {
	if f.proto != protoHocuspocus {
		return dst
	}
	dst = append(dst, f.prefix...)
	dst = append(dst, msgAuth, authToken)
	dst = appendVarString(dst, token)
	return appendVarString(dst, version)
}

// message is one parsed incoming message. Payload aliases the read buffer.
type message struct {
	typ     uint64 // msgSync, msgAwareness, ...
	sub     uint64 // sync sub-type, auth sub-type
	payload []byte // sync: the state vector or update; auth: the reason/scope; else the rest
}

// parse splits an incoming message. For Hocuspocus it skips the document name (one socket
// carries one document here, so it is not compared).
func (f *framer) parse(b []byte) (m message, err error) {
	if f.proto == protoHocuspocus {
		if _, b, err = readVarBytes(b); err != nil {
			return m, err
		}
	}
	var n int
	if m.typ, n = readVarUint(b); n <= 0 {
		return m, errShort
	}
	b = b[n:]
	switch m.typ {
	case msgSync:
		if m.sub, n = readVarUint(b); n <= 0 {
			return m, errShort
		}
		m.payload, _, err = readVarBytes(b[n:])
	case msgAuth:
		if m.sub, n = readVarUint(b); n <= 0 {
			return m, errShort
		}
		m.payload = b[n:]
		if len(m.payload) > 0 {
			if p, _, e := readVarBytes(m.payload); e == nil && utf8.Valid(p) {
				m.payload = p
			}
		}
	default:
		m.payload = b
	}
	return m, err
}
