package roomhub

import "github.com/caddy-wiredb/wiredb/yproto"

// hocuspocusCodec is the Hocuspocus protocol for one document on a socket:
// every message it encodes starts with the document's name as the provider
// sent it (sessionId included), so two providers of one room that use the
// same name share encodings. The socket's reader (mux.go) decodes inbound
// messages, since it must route them by name first.
type hocuspocusCodec struct{ name string }

func (c hocuspocusCodec) Decode(msg []byte) (Op, error) {
	m, err := yproto.DecodeHocuspocus(msg)
	if err != nil {
		return Op{}, err
	}
	return hocuspocusOp(m), nil
}

// hocuspocusOp is what a decoded message asks of its document's room. Auth,
// Close, Ping and Pong are the socket's business (mux.go): OpNone here.
func hocuspocusOp(m yproto.HocuspocusMessage) Op {
	switch m.Type {
	case yproto.HocuspocusSync:
		switch m.Sync {
		case yproto.SyncStep1:
			return Op{Kind: OpSyncStep1, Payload: m.Payload}
		case yproto.SyncStep2:
			return Op{Kind: OpSyncStep2, Payload: m.Payload}
		case yproto.SyncUpdate:
			return Op{Kind: OpUpdate, Payload: m.Payload}
		}
	case yproto.HocuspocusAwareness:
		return Op{Kind: OpAwareness, Payload: m.Payload}
	case yproto.HocuspocusQueryAwareness:
		return Op{Kind: OpQueryAwareness}
	case yproto.HocuspocusStateless:
		return Op{Kind: OpStateless, Payload: m.Payload}
	}
	return Op{Kind: OpNone}
}

func (hocuspocusCodec) Kind(msg []byte) MessageKind {
	t, sync, ok := yproto.HocuspocusKind(msg)
	if !ok {
		return KindOther
	}
	switch t {
	case yproto.HocuspocusSync:
		return KindSyncStep1 + MessageKind(sync)
	case yproto.HocuspocusAwareness:
		return KindAwareness
	case yproto.HocuspocusAuth:
		return KindAuth
	case yproto.HocuspocusQueryAwareness:
		return KindQueryAwareness
	case yproto.HocuspocusStateless:
		return KindStateless
	case yproto.HocuspocusSyncStatus:
		return KindSyncStatus
	case yproto.HocuspocusClose:
		return KindClose
	case yproto.HocuspocusPing, yproto.HocuspocusPong:
		return KindPing
	}
	return KindOther
}

func (c hocuspocusCodec) AppendSyncStep1(dst, sv []byte) []byte {
	return yproto.AppendSyncStep1(yproto.AppendHocuspocusName(dst, c.name), sv)
}

func (c hocuspocusCodec) AppendSyncStep2(dst, u []byte) []byte {
	return yproto.AppendSyncStep2(yproto.AppendHocuspocusName(dst, c.name), u)
}

func (c hocuspocusCodec) AppendUpdate(dst, u []byte) []byte {
	return yproto.AppendSyncUpdate(yproto.AppendHocuspocusName(dst, c.name), u)
}

func (c hocuspocusCodec) AppendAwareness(dst, a []byte) []byte {
	return yproto.AppendAwareness(yproto.AppendHocuspocusName(dst, c.name), a)
}

// AppendPermissionDenied refuses the document's token. (A read-only
// provider's writes are refused with a SyncStatus instead: a permission
// denied would make the provider count itself unauthenticated.)
func (c hocuspocusCodec) AppendPermissionDenied(dst []byte, reason string) []byte {
	return yproto.AppendHocuspocusPermissionDenied(dst, c.name, reason)
}

func (c hocuspocusCodec) AppendSyncStatus(dst []byte, applied bool) []byte {
	return yproto.AppendHocuspocusSyncStatus(dst, c.name, applied)
}

func (c hocuspocusCodec) AppendStateless(dst, payload []byte) []byte {
	return yproto.AppendHocuspocusStateless(dst, c.name, payload)
}

func (hocuspocusCodec) Protocol() Protocol { return ProtocolHocuspocus }
