package roomhub

// Codec is one wire protocol's framing: it decodes a connection's inbound
// messages into protocol-neutral operations and encodes what the room sends
// back. Room state never sees framing, so a second protocol is one more
// Codec. A connection's codec is chosen when it is served and never changes.
//
// A Codec must be safe for concurrent use and comparable: rooms encode a
// relayed message once per distinct codec among their connections.
type Codec interface {
	// Decode reads one inbound message. It checks the framing only;
	// payloads (updates, state vectors, awareness updates) are validated by
	// the hub. Errors wrap yproto.ErrUnknownMessageType for a message type
	// the protocol does not define (closed with 1003), and any other error
	// means malformed framing (1007).
	Decode(msg []byte) (Op, error)
	// Kind classifies a message, inbound or outbound, for metrics, from
	// its first bytes only: it is called for malformed messages too.
	Kind(msg []byte) MessageKind

	AppendSyncStep1(dst, stateVector []byte) []byte
	// AppendSyncStep2 answers a sync step 1.
	AppendSyncStep2(dst, update []byte) []byte
	// AppendUpdate relays an update accepted from another connection.
	AppendUpdate(dst, update []byte) []byte
	// AppendAwareness carries a y-protocols awareness update (the encoded
	// entries, as Op.Payload holds them).
	AppendAwareness(dst, awarenessUpdate []byte) []byte
	// AppendPermissionDenied tells a client that its writes are refused.
	AppendPermissionDenied(dst []byte, reason string) []byte
	// AppendSyncStatus acknowledges one step 2 or update of the client's:
	// applied (stored under the fsync policy) or refused. It returns dst
	// unchanged for a protocol without acknowledgements.
	AppendSyncStatus(dst []byte, applied bool) []byte
	// AppendStateless carries an application's stateless message; it
	// returns dst unchanged for a protocol without them.
	AppendStateless(dst, payload []byte) []byte
	// Protocol names the codec's protocol, for metrics.
	Protocol() Protocol
}

// Protocol is a wire protocol the hub speaks.
type Protocol uint8

const (
	ProtocolYWebsocket Protocol = iota // y-protocols over one room per socket
	ProtocolHocuspocus                 // Hocuspocus: documents multiplexed by name
	ProtocolHTTP                       // a backend's write over HTTP (backend.go); no WebSocket
	NumProtocols
)

var protocolNames = [NumProtocols]string{"y-websocket", "hocuspocus", "http"}

// String is the protocol's name in the Caddyfile and in metrics.
func (p Protocol) String() string {
	if p < NumProtocols {
		return protocolNames[p]
	}
	return "unknown"
}

// ParseProtocol returns the WebSocket protocol named s (as String writes it).
func ParseProtocol(s string) (Protocol, bool) {
	for p, name := range protocolNames[:ProtocolHTTP] {
		if name == s {
			return Protocol(p), true
		}
	}
	return 0, false
}

// Protocols is a set of protocols; the zero value means y-websocket only.
type Protocols uint8

// ProtocolSet returns the set of ps.
func ProtocolSet(ps ...Protocol) Protocols {
	var s Protocols
	for _, p := range ps {
		s |= 1 << p
	}
	return s
}

// Has reports whether p is in the set.
func (s Protocols) Has(p Protocol) bool { return s&(1<<p) != 0 }

// OpKind is what an inbound message asks of the room.
type OpKind uint8

const (
	// OpNone needs nothing (e.g. a client's auth message, which
	// y-websocket's server ignores too).
	OpNone OpKind = iota
	// OpSyncStep1 carries the client's state vector; the room answers with
	// what the client lacks.
	OpSyncStep1
	// OpSyncStep2 carries an update answering the server's step 1: it may
	// repeat what the room has (a reconnecting client's), so only what is
	// new is kept.
	OpSyncStep2
	// OpUpdate carries a live update.
	OpUpdate
	// OpAwareness carries an awareness update.
	OpAwareness
	// OpQueryAwareness asks for every current awareness state.
	OpQueryAwareness
	// OpStateless carries an application's message for the room's other
	// connections, relayed and never stored.
	OpStateless
)

// Op is one decoded inbound message.
type Op struct {
	Kind OpKind
	// Payload is the state vector, the update or the awareness update the
	// message carried, not yet validated. It aliases the message.
	Payload []byte
}

// outbound is a message a room sends to several connections, kept
// protocol-neutral and encoded for each codec at most once. It is built and
// read under the room's lock.
type outbound struct {
	kind    OpKind // OpUpdate, OpAwareness, OpSyncStep2 or OpStateless
	payload []byte
	// Encodings so far: the sender's own message, relayed as it came when
	// codecs match, and those made for other codecs. Two fit inline, as
	// many as a room has codecs, so a relay allocates nothing more.
	n      int
	codecs [2]Codec
	frames [2][]byte
	more   []encoding
}

type encoding struct {
	codec Codec
	frame []byte
}

// newOutbound returns kind with payload, already encoded as frame for
// codec (frame and codec may be nil).
func newOutbound(kind OpKind, payload []byte, codec Codec, frame []byte) *outbound {
	m := &outbound{kind: kind, payload: payload}
	if frame != nil {
		m.codecs[0], m.frames[0], m.n = codec, frame, 1
	}
	return m
}

// frameFor returns the message encoded for codec.
func (m *outbound) frameFor(codec Codec) []byte {
	for i := range m.n {
		if m.codecs[i] == codec {
			return m.frames[i]
		}
	}
	for _, e := range m.more {
		if e.codec == codec {
			return e.frame
		}
	}
	var frame []byte // nil: the codec cannot carry the message
	switch m.kind {
	case OpUpdate:
		frame = codec.AppendUpdate(nil, m.payload)
	case OpAwareness:
		frame = codec.AppendAwareness(nil, m.payload)
	case OpSyncStep2:
		frame = codec.AppendSyncStep2(nil, m.payload)
	case OpStateless:
		frame = codec.AppendStateless(nil, m.payload)
	}
	if m.n < len(m.codecs) {
		m.codecs[m.n], m.frames[m.n] = codec, frame
		m.n++
	} else {
		m.more = append(m.more, encoding{codec, frame})
	}
	return frame
}
