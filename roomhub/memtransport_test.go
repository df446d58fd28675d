package roomhub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memMessage is one message on an in-memory connection.
type memMessage struct {
	typ  MessageType
	data []byte
}

// memPipe is an in-memory WebSocket connection: the hub's tests serve
// connections over it instead of sockets (the transport over real sockets
// is tested in internal/wstransport). Messages sent before a close are
// delivered before the close, as on a socket.
type memPipe struct {
	toServer chan memMessage
	toClient chan memMessage
	done     chan struct{} // closed when either end closed
	once     sync.Once
	// What each end sees once done is closed: the other end's close
	// code, or nil when it closed without one (CloseNow).
	seenByServer *CloseError
	seenByClient *CloseError
}

// memWindow is how many messages may wait in each direction; a writer
// blocks beyond it, as a socket's writer does when the peer stops reading.
const memWindow = 4096

func newMemPipe() *memPipe {
	return &memPipe{
		toServer: make(chan memMessage, memWindow),
		toClient: make(chan memMessage, memWindow),
		done:     make(chan struct{}),
	}
}

// end closes the pipe once; forServer/forClient are what each side sees.
func (p *memPipe) end(forServer, forClient *CloseError) {
	p.once.Do(func() {
		p.seenByServer, p.seenByClient = forServer, forClient
		close(p.done)
	})
}

var errMemReset = errors.New("memtransport: connection reset")

// read returns the next message from in, preferring messages over the
// close, as a socket delivers what arrived before a close frame first.
func (p *memPipe) read(ctx context.Context, in chan memMessage, seen func() *CloseError) (MessageType, []byte, error) {
	select {
	case m := <-in:
		return m.typ, m.data, nil
	default:
	}
	select {
	case m := <-in:
		return m.typ, m.data, nil
	case <-p.done:
		select {
		case m := <-in:
			return m.typ, m.data, nil
		default:
		}
		if ce := seen(); ce != nil {
			return 0, nil, ce
		}
		return 0, nil, errMemReset
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (p *memPipe) write(out chan memMessage, m memMessage, timeout time.Duration) error {
	select {
	case <-p.done:
		return errMemClosed
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case out <- m:
		return nil
	case <-p.done:
		return errMemClosed
	case <-t.C:
		return errors.New("memtransport: write timeout")
	}
}

var errMemClosed = errors.New("memtransport: use of closed connection")

// memTransport is the server end of a memPipe.
type memTransport struct {
	p *memPipe
	// onRead, when set, sees every message the server reads (to inject
	// panics into the reading goroutine).
	onRead func([]byte)
}

func (t *memTransport) ReadMessage(ctx context.Context) (MessageType, []byte, error) {
	typ, data, err := t.p.read(ctx, t.p.toServer, func() *CloseError { return t.p.seenByServer })
	if err == nil && t.onRead != nil {
		t.onRead(data)
	}
	return typ, data, err
}

func (t *memTransport) WriteMessages(msgs [][]byte, timeout time.Duration) error {
	for _, m := range msgs {
		if err := t.p.write(t.p.toClient, memMessage{MessageBinary, m}, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTransport) Ping(ctx context.Context) error {
	select {
	case <-t.p.done:
		return errMemClosed
	default:
		return nil
	}
}

func (t *memTransport) Close(code StatusCode, reason string) error {
	t.p.end(&CloseError{Code: code, Reason: reason}, &CloseError{Code: code, Reason: reason})
	return nil
}

func (t *memTransport) CloseNow() error {
	t.p.end(nil, nil)
	return nil
}

// memClient is the client end of a memPipe.
type memClient struct{ p *memPipe }

func (c *memClient) Read(ctx context.Context) (MessageType, []byte, error) {
	return c.p.read(ctx, c.p.toClient, func() *CloseError { return c.p.seenByClient })
}

func (c *memClient) Write(ctx context.Context, typ MessageType, data []byte) error {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return c.p.write(c.p.toServer, memMessage{typ, data}, timeout)
}

func (c *memClient) Close(code StatusCode, reason string) {
	c.p.end(&CloseError{Code: code, Reason: reason}, &CloseError{Code: code, Reason: reason})
}

func (c *memClient) CloseNow() { c.p.end(nil, nil) }

// memServers are the hubs that testServer serves, by the id in their URL.
var (
	memServers   sync.Map // string -> *memServer
	memServerIDs atomic.Uint64
)

type memServer struct {
	hub *Hub
	co  ConnOptions
	// onRead is given to every connection's transport.
	onRead func([]byte)
}

// testServer serves hub over in-memory connections and returns its URL:
// dial(t, url+"/<room>") connects to room <room>.
func testServer(t testing.TB, hub *Hub) string {
	return testServerWith(t, hub, ConnOptions{})
}

// testServerWith serves hub with the given connection options; ?ro=1 makes
// a connection read-only.
func testServerWith(t testing.TB, hub *Hub, co ConnOptions) string {
	return registerMemServer(t, &memServer{hub: hub, co: co})
}

func registerMemServer(t testing.TB, s *memServer) string {
	id := strconv.FormatUint(memServerIDs.Add(1), 10)
	memServers.Store(id, s)
	t.Cleanup(func() { memServers.Delete(id) })
	return "mem://" + id
}

// connect opens an in-memory connection to the room a URL names and serves
// it on the hub, as the Caddy handler does with a socket.
func connect(rawURL string) (*memClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	v, ok := memServers.Load(u.Host)
	if !ok {
		return nil, fmt.Errorf("no test server %s", u.Host)
	}
	s := v.(*memServer)
	p := newMemPipe()
	co := s.co
	co.ReadOnly = co.ReadOnly || u.Query().Get("ro") == "1"
	if err := s.hub.Start(strings.TrimPrefix(u.Path, "/"), &memTransport{p: p, onRead: s.onRead}, co); err != nil {
		return nil, err
	}
	return &memClient{p: p}, nil
}
