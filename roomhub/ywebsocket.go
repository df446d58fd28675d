package roomhub

import "github.com/caddy-wiredb/wiredb/yproto"

// YWebsocket is the y-websocket protocol, as y-protocols defines it: one
// message per binary WebSocket message, `varUint(type)` first (0 sync, 1
// awareness, 2 auth, 3 query awareness).
var YWebsocket Codec = yWebsocket{}

type yWebsocket struct{}

func (yWebsocket) Decode(msg []byte) (Op, error) {
	m, err := yproto.DecodeMessage(msg)
	if err != nil {
		return Op{}, err
	}
	switch m.Type {
	case yproto.MessageSync:
		switch m.Sync {
		case yproto.SyncStep1:
			return Op{Kind: OpSyncStep1, Payload: m.Payload}, nil
		case yproto.SyncStep2:
			return Op{Kind: OpSyncStep2, Payload: m.Payload}, nil
		case yproto.SyncUpdate:
			return Op{Kind: OpUpdate, Payload: m.Payload}, nil
		}
	case yproto.MessageAwareness:
		return Op{Kind: OpAwareness, Payload: m.Payload}, nil
	case yproto.MessageQueryAwareness:
		return Op{Kind: OpQueryAwareness}, nil
	}
	// Auth: clients have nothing to say in it.
	return Op{Kind: OpNone}, nil
}

// Kind reads the type and, for sync, the sub-type: one-byte varuints in
// every well-formed message.
func (yWebsocket) Kind(msg []byte) MessageKind {
	if len(msg) == 0 {
		return KindOther
	}
	switch msg[0] {
	case 0:
		if len(msg) > 1 && msg[1] <= 2 {
			return KindSyncStep1 + MessageKind(msg[1])
		}
	case 1:
		return KindAwareness
	case 2:
		return KindAuth
	case 3:
		return KindQueryAwareness
	}
	return KindOther
}

func (yWebsocket) AppendSyncStep1(dst, sv []byte) []byte { return yproto.AppendSyncStep1(dst, sv) }
func (yWebsocket) AppendSyncStep2(dst, u []byte) []byte  { return yproto.AppendSyncStep2(dst, u) }
func (yWebsocket) AppendUpdate(dst, u []byte) []byte     { return yproto.AppendSyncUpdate(dst, u) }
func (yWebsocket) AppendAwareness(dst, a []byte) []byte  { return yproto.AppendAwareness(dst, a) }
func (yWebsocket) AppendPermissionDenied(dst []byte, reason string) []byte {
	return yproto.AppendPermissionDenied(dst, reason)
}

func (yWebsocket) AppendSyncStatus(dst []byte, _ bool) []byte { return dst }
func (yWebsocket) AppendStateless(dst, _ []byte) []byte       { return dst }
func (yWebsocket) Protocol() Protocol                         { return ProtocolYWebsocket }
