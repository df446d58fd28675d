// Command barerelay is the baseline of bench/run.sh, the physical limit of a y-websocket
// relay on this machine: a coder/websocket server that forwards every binary message of a
// room to the room's other connections as it is, answers a sync step1 with an empty
// step2, and keeps nothing (no document, no storage, no validation). A room is the URL
// path after /rooms/ (the whole path without it).
//
//	barerelay -addr 127.0.0.1:8081
//
// It listens on loopback only, and stops on SIGTERM or SIGINT. A connection whose outbound
// queue is full is closed (1013), as a real server would do with a client that cannot
// keep up, so a slow client never slows its room down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/coder/websocket"
)

type room struct {
	mu    sync.RWMutex
	conns map[*conn]struct{}
}

// conn is one connection: an outbound queue bounded in bytes, drained by its writer.
type conn struct {
	c         *websocket.Conn
	mu        sync.Mutex
	q         [][]byte
	qBytes    int
	limit     int
	notify    chan struct{} // cap 1: the queue has something
	closeOnce sync.Once
}

// enqueue adds b to the queue; a connection whose queue would pass the limit is closed.
func (c *conn) enqueue(b []byte) {
	c.mu.Lock()
	if c.qBytes+len(b) > c.limit {
		c.mu.Unlock()
		c.closeSlow()
		return
	}
	c.q = append(c.q, b)
	c.qBytes += len(b)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *conn) closeSlow() {
	c.closeOnce.Do(func() {
		go c.c.Close(websocket.StatusTryAgainLater, "outbound queue full")
	})
}

// writeLoop sends what is queued until stop is closed or a write fails.
func (c *conn) writeLoop(stop <-chan struct{}) {
	var batch [][]byte
	for {
		select {
		case <-stop:
			return
		case <-c.notify:
		}
		c.mu.Lock()
		batch, c.q = c.q, batch[:0]
		c.qBytes = 0
		c.mu.Unlock()
		for i, b := range batch {
			if err := c.c.Write(context.Background(), websocket.MessageBinary, b); err != nil {
				c.c.CloseNow()
				return
			}
			batch[i] = nil
		}
	}
}

type relay struct {
	mu     sync.Mutex
	rooms  map[string]*room
	queue  int // bytes
	maxMsg int64
}

func (rl *relay) join(name string, c *conn) *room {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	r := rl.rooms[name]
	if r == nil {
		r = &room{conns: map[*conn]struct{}{}}
		rl.rooms[name] = r
	}
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
	return r
}

func (rl *relay) leave(name string, r *room, c *conn) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	r.mu.Lock()
	delete(r.conns, c)
	empty := len(r.conns) == 0
	r.mu.Unlock()
	if empty && rl.rooms[name] == r {
		delete(rl.rooms, name)
	}
}

// emptyStep2 is sync(0) step2(1) varUint8Array(empty update {0, 0}).
var emptyStep2 = []byte{0, 1, 2, 0, 0}

func (rl *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name := strings.TrimPrefix(req.URL.Path, "/rooms/")
	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	ws.SetReadLimit(rl.maxMsg)
	c := &conn{c: ws, limit: rl.queue, notify: make(chan struct{}, 1)}
	r := rl.join(name, c)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the writer: one per connection, owned by this handler
		defer close(done)
		c.writeLoop(stop)
	}()
	defer func() {
		rl.leave(name, r, c)
		close(stop)
		<-done
		ws.CloseNow()
	}()

	ctx := context.Background()
	for {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary || len(b) == 0 {
			continue
		}
		switch {
		case len(b) >= 2 && b[0] == 0 && b[1] == 0: // sync step1: "you have nothing"
			c.enqueue(emptyStep2)
		case b[0] == 3: // query awareness: no awareness kept
		default: // sync step2 / update, awareness, anything else: to the others as is
			r.mu.RLock()
			for o := range r.conns {
				if o == c {
					continue
				}
				o.enqueue(b)
			}
			r.mu.RUnlock()
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address (loopback only)")
	queue := flag.Int("queue", 4<<20, "bytes that may wait for one connection (wiredb's default outbound_queue_size)")
	maxMsg := flag.Int64("max-message", 64<<20, "largest inbound message (bytes)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("barerelay: -addr must be a loopback address, got %s", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	rl := &relay{rooms: map[string]*room{}, queue: *queue, maxMsg: *maxMsg}
	srv := &http.Server{Handler: rl}
	fmt.Printf("barerelay listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
