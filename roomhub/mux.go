package roomhub

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// A Hocuspocus socket carries several documents, each named in every
// message. The socket's reader (mux) routes each message by its name to the
// document's session: a conn of the document's room, as a y-websocket
// connection is, whose codec writes the name and whose transport
// (docTransport) writes to the shared socket. A document opens with the
// provider's auth message and ends with its Close message, or with the
// socket; an error that closes one of the socket's conns closes the whole
// socket, and the provider reconnects and resyncs every document.

// hocuspocusKeepalive bounds the silence on a Hocuspocus socket: a provider
// drops a socket on which nothing arrived for 30 s (messageReconnectTimeout).
// Awareness renewals echoed back usually keep it busy; a provider without
// awareness gets a Ping.
const hocuspocusKeepalive = 10 * time.Second

// mux serves one Hocuspocus socket.
type mux struct {
	h       *Hub
	t       Transport
	o       StartOptions
	limit   *rateLimiter
	maxDocs int
	// sock writes the socket's own messages (auth answers, Pings, Pongs)
	// and pings the peer; closing it closes the socket.
	sock *conn

	// docs are the open documents by name as sent. Only the reader
	// goroutine changes it; mu guards it against the keepalive timer.
	mu        sync.Mutex
	docs      map[string]*session
	ended     bool // the socket is done: no more keepalives
	keepalive *time.Timer

	// pingable is set once a provider says it is 4.x or later: those
	// answer a Ping, which earlier ones cannot read.
	pingable  atomic.Bool
	lastWrite atomic.Int64 // unix nanoseconds
}

func newMux(h *Hub, t Transport, o StartOptions) *mux {
	m := &mux{
		h:       h,
		t:       t,
		o:       o,
		limit:   newRateLimiter(o.RateLimit),
		maxDocs: o.Hocuspocus.MaxDocuments,
		docs:    make(map[string]*session),
	}
	if m.maxDocs <= 0 {
		m.maxDocs = DefaultMaxDocuments
	}
	m.sock = newConn(socketTransport{t, m}, hocuspocusCodec{}, o.ReadOnly, h)
	return m
}

// run serves the socket until it ends, starting with its first message.
func (m *mux) run(first []byte) {
	m.h.metrics().ConnOpened()
	defer m.finish()
	m.sock.start()
	m.lastWrite.Store(time.Now().UnixNano())
	m.mu.Lock()
	m.keepalive = time.AfterFunc(m.keepaliveInterval(), m.keepAlive)
	m.mu.Unlock()
	typ, msg := MessageBinary, first
	for {
		if perr := m.handleMessage(typ, msg); perr != nil {
			if perr != errSocketClosed {
				m.sock.close(perr.code, perr.reason)
			}
			return
		}
		var err error
		typ, msg, err = m.t.ReadMessage(context.Background())
		if err != nil {
			m.h.readEnded(m.sock, "", err)
			return
		}
	}
}

// finish closes every document and the socket once the reader ends; as the
// reader's deferred call, it also recovers a panic in it.
func (m *mux) finish() {
	if v := recover(); v != nil {
		m.h.log().Error("panic while serving a Hocuspocus connection",
			zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		m.h.metrics().Rejected(RejectInternal)
	}
	m.sock.close(StatusInternalError, "internal error") // no-op if closed with a reason
	m.mu.Lock()
	m.ended = true
	if m.keepalive != nil {
		m.keepalive.Stop()
	}
	docs := m.docs
	m.docs = nil
	m.mu.Unlock()
	for _, s := range docs {
		s.leave()
	}
	<-m.sock.closed
	m.h.metrics().ConnClosed()
	m.h.served(m.t)
}

// errSocketClosed stops the reader when the socket is closed already.
var errSocketClosed = &protocolError{}

// handleMessage handles one inbound message and returns how to close the
// socket, if it must be.
//
//go:noinline
func (m *mux) handleMessage(typ MessageType, msg []byte) (perr *protocolError) {
	m.h.metrics().Message(Inbound, ProtocolHocuspocus, m.sock.codec.Kind(msg), len(msg))
	room := ""
	switch {
	case !m.limit.allow(len(msg)):
		perr = errRateLimit
	case typ != MessageBinary:
		perr = errTextFrame
	default:
		room, perr = m.handle(msg)
	}
	if perr != nil && perr != errSocketClosed {
		m.h.rejected(room, perr)
	}
	return perr
}

// handle decodes a message and routes it by its document name. It returns
// the message's room, if it has one, for the log.
func (m *mux) handle(msg []byte) (string, *protocolError) {
	hm, err := yproto.DecodeHocuspocus(msg)
	if err != nil {
		return "", decodeError(err)
	}
	switch hm.Type {
	case yproto.HocuspocusPing:
		m.sock.enqueue([]byte{byte(yproto.HocuspocusPong)})
		return "", nil
	case yproto.HocuspocusPong:
		return "", nil
	case yproto.HocuspocusAuth:
		return m.authenticate(hm)
	case yproto.HocuspocusClose:
		m.closeDocument(hm.Name)
		return "", nil
	}
	s := m.docs[hm.Name]
	if s == nil {
		// A document refused or closed: what its provider sent without
		// waiting for the answer to its token is dropped, as
		// Hocuspocus' own server drops it.
		return "", nil
	}
	return s.r.key, s.handleOp(hocuspocusOp(hm), msg)
}

// authenticate opens a document with the provider's token: it answers
// with the access the token grants, then greets the document as a
// y-websocket connection is greeted, or refuses it.
func (m *mux) authenticate(hm yproto.HocuspocusMessage) (string, *protocolError) {
	if hm.Version != "" {
		m.pingable.Store(majorVersion(hm.Version) >= 4)
	}
	name := hm.Name
	if s := m.docs[name]; s != nil {
		// The provider sent its token again: the same answer.
		s.c.enqueue(yproto.AppendHocuspocusAuthenticated(nil, name, scope(s.c.readOnly)))
		return s.r.key, nil
	}
	if len(m.docs) >= m.maxDocs {
		m.deny(name, fmt.Sprintf("too many documents on one connection (max %d)", m.maxDocs))
		return "", nil
	}
	// A provider with sessionAwareness sends "name\x00sessionId".
	docName, _, _ := strings.Cut(name, "\x00")
	access, err := m.authorize(docName, string(hm.Payload))
	if err != nil {
		m.deny(name, err.Error())
		return "", nil
	}
	c := newConn(&docTransport{m: m}, hocuspocusCodec{name}, access.ReadOnly, m.h)
	c.ignoreAwareness = access.IgnoreAwareness
	// Queued first: the provider learns its access before the sync.
	c.enqueue(yproto.AppendHocuspocusAuthenticated(nil, name, scope(access.ReadOnly)))
	s, err := m.h.enter(access.Key, c)
	if err != nil {
		// enter closed c, and with it the socket, with a code and a
		// reason: the provider reconnects later.
		return access.Key, errSocketClosed
	}
	m.mu.Lock()
	m.docs[name] = s
	m.mu.Unlock()
	return access.Key, nil
}

// authorize applies the route's Authorize, or accepts the token.
func (m *mux) authorize(name, token string) (DocumentAccess, error) {
	if m.o.Hocuspocus.Authorize != nil {
		return m.o.Hocuspocus.Authorize(name, token)
	}
	if err := storage.ValidateKey(name); err != nil {
		return DocumentAccess{}, fmt.Errorf("invalid document name: %w", err)
	}
	return DocumentAccess{Key: name, ReadOnly: m.o.ReadOnly, IgnoreAwareness: m.o.IgnoreAwareness}, nil
}

// deny refuses a document's token; the socket and its other documents go on.
func (m *mux) deny(name, reason string) {
	m.h.metrics().Rejected(RejectUnauthorized)
	m.h.log().Debug("refused a Hocuspocus document", zap.String("document", name), zap.String("reason", reason))
	m.sock.enqueue(yproto.AppendHocuspocusPermissionDenied(nil, name, truncateReason(reason)))
}

// closeDocument ends one document at its provider's request; the socket
// stays open.
func (m *mux) closeDocument(name string) {
	s := m.docs[name]
	if s == nil {
		return
	}
	m.mu.Lock()
	delete(m.docs, name)
	m.mu.Unlock()
	s.c.t.(*docTransport).detached.Store(true)
	s.leave()
}

// keepAlive sends something on a socket that was silent for a while, then
// arms the next check.
func (m *mux) keepAlive() {
	interval := m.keepaliveInterval()
	if since := time.Since(time.Unix(0, m.lastWrite.Load())); since >= interval {
		if m.pingable.Load() {
			m.sock.enqueue(yproto.AppendHocuspocusPing(nil))
		} else {
			// An awareness update without entries, which every
			// provider reads and applies as nothing.
			m.mu.Lock()
			for _, s := range m.docs {
				s.c.enqueue(s.c.codec.AppendAwareness(nil, []byte{0}))
				break
			}
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	if !m.ended {
		m.keepalive.Reset(interval)
	}
	m.mu.Unlock()
}

func (m *mux) keepaliveInterval() time.Duration {
	return min(hocuspocusKeepalive, m.h.options().PingInterval)
}

func (m *mux) wrote() { m.lastWrite.Store(time.Now().UnixNano()) }

func scope(readOnly bool) string {
	if readOnly {
		return "readonly"
	}
	return "read-write"
}

// majorVersion is the major version of a provider's version string, or 0.
func majorVersion(v string) int {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// socketTransport is the socket as the mux's own conn uses it: writes are
// noted for the keepalive.
type socketTransport struct {
	Transport
	m *mux
}

func (t socketTransport) WriteMessages(msgs [][]byte, timeout time.Duration) error {
	err := t.Transport.WriteMessages(msgs, timeout)
	t.m.wrote()
	return err
}

// docTransport is the socket as one document's conn uses it. Writes go to
// the shared socket (a Transport keeps each message whole however the
// writers of the documents interleave). Closing the conn closes the socket,
// unless its provider closed the document (detached). Pings are the mux's
// own conn's.
type docTransport struct {
	m        *mux
	detached atomic.Bool
}

func (t *docTransport) ReadMessage(context.Context) (MessageType, []byte, error) {
	panic("roomhub: a Hocuspocus document has no reader of its own")
}

func (t *docTransport) WriteMessages(msgs [][]byte, timeout time.Duration) error {
	err := t.m.t.WriteMessages(msgs, timeout)
	t.m.wrote()
	return err
}

func (t *docTransport) Ping(context.Context) error { return nil }

func (t *docTransport) Close(code StatusCode, reason string) error {
	if !t.detached.Load() {
		t.m.sock.close(code, reason)
	}
	return nil
}

func (t *docTransport) CloseNow() error {
	if t.detached.Load() {
		return nil
	}
	return t.m.t.CloseNow()
}
