package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// epoch is the zero of every timestamp of this process (nanotime).
var epoch = time.Now()

// nanotime is monotonic nanoseconds since epoch; never 0 after the first microsecond.
func nanotime() int64 { return int64(time.Since(epoch)) }

// loopbackOnly refuses any address that is not on this machine: a load tool must never
// send its traffic elsewhere.
func loopbackOnly(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "ws" {
		return fmt.Errorf("%s: only ws:// URLs (plain, local) are supported", rawURL)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: the host must be a loopback address (127.0.0.1, ::1 or localhost)", rawURL)
	}
	return nil
}

var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:             nil, // never through a proxy
		DialContext:       (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	},
}

// msgHandler sees every message a client receives (after the protocol's own handling).
// It runs on the client's reader goroutine; now is nanotime() at receipt.
type msgHandler interface {
	onMessage(cl *client, m *message, raw []byte, now int64)
}

// client is one WebSocket connection to a room.
type client struct {
	c       *websocket.Conn
	f       *framer
	handler msgHandler

	ready     chan struct{} // closed when synced (step2 and, for Hocuspocus, authenticated)
	readyOnce sync.Once
	gotStep2  atomic.Bool
	authed    atomic.Bool
	done      chan struct{} // closed when the reader ends

	readErr   error // set before done is closed
	denied    atomic.Value
	bad       atomic.Int64 // messages this tool could not parse
	msgs      atomic.Int64
	bytesIn   atomic.Int64
	lastRecv  atomic.Int64 // nanotime of the last message
	closeOnce sync.Once

	replyBuf []byte // the reader's own buffer for step2 answers
}

var dialOptions = &websocket.DialOptions{
	HTTPClient:      httpClient,
	CompressionMode: websocket.CompressionDisabled,
}

// dial connects to roomURL and starts the reader; the handshake is sent by start().
func dial(ctx context.Context, roomURL string, f *framer, h msgHandler) (*client, error) {
	c, resp, err := websocket.Dial(ctx, roomURL, dialOptions)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", roomURL, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", roomURL, err)
	}
	c.SetReadLimit(512 << 20)
	cl := &client{c: c, f: f, handler: h, ready: make(chan struct{}), done: make(chan struct{})}
	if f.proto != protoHocuspocus {
		cl.authed.Store(true)
	}
	go cl.readLoop()
	return cl, nil
}

// start sends what a provider sends on open: Hocuspocus' auth message, then the step1
// (an empty state vector: "send me everything").
func (cl *client) start() error {
	var b []byte
	if cl.f.proto == protoHocuspocus {
		b = cl.f.auth(b, "", "wiredb-bench")
		if err := cl.c.Write(context.Background(), websocket.MessageBinary, b); err != nil {
			return err
		}
	}
	b = cl.f.step1(b[:0], emptyStateVector)
	return cl.c.Write(context.Background(), websocket.MessageBinary, b)
}

func (cl *client) checkReady() {
	if cl.gotStep2.Load() && cl.authed.Load() {
		cl.readyOnce.Do(func() { close(cl.ready) })
	}
}

// waitReady waits until the client is synced, the reader ended, or the timeout.
func (cl *client) waitReady(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-cl.ready:
		return nil
	case <-cl.done:
		if d, ok := cl.denied.Load().(string); ok {
			return fmt.Errorf("permission denied: %s", d)
		}
		return fmt.Errorf("connection ended before sync: %v", cl.readErr)
	case <-t.C:
		return fmt.Errorf("not synced within %v", timeout)
	}
}

func (cl *client) send(b []byte) error {
	return cl.c.Write(context.Background(), websocket.MessageBinary, b)
}

// close ends the connection with a normal close handshake (bounded by coder/websocket's
// own 5 s), once.
func (cl *client) close() {
	cl.closeOnce.Do(func() {
		_ = cl.c.Close(websocket.StatusNormalClosure, "")
	})
}

// closeAll closes many clients, some at a time.
func closeAll(cls []*client) {
	sem := make(chan struct{}, 128)
	var wg sync.WaitGroup
	for _, cl := range cls {
		if cl == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cl.close()
		}()
	}
	wg.Wait()
}

func (cl *client) readLoop() {
	defer close(cl.done)
	buf := make([]byte, 0, 4096)
	ctx := context.Background() // no per-read timer: the connection is closed to stop
	for {
		typ, r, err := cl.c.Reader(ctx)
		if err != nil {
			cl.readErr = err
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			cl.readErr = err
			return
		}
		now := nanotime()
		cl.msgs.Add(1)
		cl.bytesIn.Add(int64(len(buf)))
		cl.lastRecv.Store(now)
		if typ != websocket.MessageBinary {
			cl.bad.Add(1)
			continue
		}
		m, err := cl.f.parse(buf)
		if err != nil {
			cl.bad.Add(1)
			continue
		}
		switch m.typ {
		case msgSync:
			switch m.sub {
			case syncStep1:
				// answer with an empty step2: this client holds nothing the room lacks
				cl.replyBuf = cl.f.step2(cl.replyBuf[:0], emptyUpdate)
				if err := cl.send(cl.replyBuf); err != nil {
					cl.readErr = err
					return
				}
			case syncStep2:
				if !cl.gotStep2.Load() {
					cl.gotStep2.Store(true)
					cl.checkReady()
				}
			}
		case msgAuth:
			if cl.f.proto == protoHocuspocus {
				switch m.sub {
				case authAuthenticated:
					cl.authed.Store(true)
					cl.checkReady()
				case authDenied:
					cl.denied.Store(string(m.payload))
				}
			} else {
				cl.denied.Store(string(m.payload))
			}
		}
		if cl.handler != nil {
			cl.handler.onMessage(cl, &m, buf, now)
		}
	}
}

// readAll reads r to its end into buf (reused, grown as needed).
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return buf, err
		}
	}
}

// roomURL joins the base URL (e.g. ws://127.0.0.1:8080/rooms) and a room name.
func roomURL(base, room string) string {
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(room)
}

// dialURL is the URL a client of room connects to. y-websocket names the room in the
// path (roomURL). A Hocuspocus provider connects to one URL for all its documents and
// names the document in every message (wire.go), so it dials the base URL, and, as a
// provider does by default, without a trailing slash (@hocuspocus/provider 4.x
// src/HocuspocusProviderWebsocket.ts serverUrl strips it unless preserveTrailingSlash):
// ws://127.0.0.1:8080/rooms.
func dialURL(p protocol, base, room string) string {
	if p == protoHocuspocus {
		return strings.TrimRight(base, "/")
	}
	return roomURL(base, room)
}

// dialMany connects n clients (index i to room roomOf(i) at base URL roomOf(i)), at most
// conc at a time, and waits until every one is synced. On error it closes what it opened.
func dialMany(ctx context.Context, n, conc int, roomOf func(i int) (base, room string, f *framer), handlerOf func(i int) msgHandler, timeout time.Duration) ([]*client, error) {
	cls := make([]*client, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || dctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			base, room, f := roomOf(i)
			var h msgHandler
			if handlerOf != nil {
				h = handlerOf(i)
			}
			cl, err := dial(dctx, dialURL(f.proto, base, room), f, h)
			if err != nil {
				fail(fmt.Errorf("client %d: %w", i, err))
				return
			}
			cls[i] = cl
			if err := cl.start(); err != nil {
				fail(fmt.Errorf("client %d: handshake: %w", i, err))
				return
			}
			if err := cl.waitReady(timeout); err != nil {
				fail(fmt.Errorf("client %d (room %s): %w", i, room, err))
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && dctx.Err() != nil {
		firstErr = fmt.Errorf("connecting %d clients: %w", n, dctx.Err())
	}
	if firstErr != nil {
		closeAll(cls)
		return nil, firstErr
	}
	return cls, nil
}
