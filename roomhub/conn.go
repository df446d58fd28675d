package roomhub

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// conn is one client connection. Its outbound messages go through a bounded
// queue drained by its own writer goroutine, so a room never waits for a
// client: enqueue never blocks, and a client whose queue overflows is closed.
type conn struct {
	ws       *websocket.Conn
	readOnly bool
	// ignoreAwareness: the connection's awareness updates are dropped.
	ignoreAwareness bool
	// tooBig is closed when the peer announced an oversize message; nil
	// (never ready) without a frame guard.
	tooBig       <-chan struct{}
	tooBigReason func() string
	hub          *Hub

	mu        sync.Mutex
	queue     [][]byte
	queued    int  // bytes in queue
	closing   bool // no more enqueues
	deniedMsg bool // a read-only client was told once that it cannot write

	wake      chan struct{} // cap 1: the queue has something
	done      chan struct{} // closed when the connection is shutting down
	closeOnce sync.Once
	writerEnd chan struct{} // closed when writeLoop returns
	wsClosed  chan struct{} // closed when the close handshake is over

	// awarenessIDs are the awareness client ids this connection set; guarded
	// by the room's mutex.
	awarenessIDs map[uint64]struct{}
}

func newConn(ws *websocket.Conn, readOnly bool, hub *Hub) *conn {
	return &conn{
		ws:        ws,
		readOnly:  readOnly,
		hub:       hub,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		writerEnd: make(chan struct{}),
		wsClosed:  make(chan struct{}),
	}
}

// enqueue adds a message without blocking. It reports false when the
// connection is closing or its queue would pass OutboundQueueBytes; one
// message larger than the bound is still accepted into an empty queue, so a
// big sync step 2 can reach a client that is keeping up.
func (c *conn) enqueue(msg []byte) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.queued > 0 && c.queued+len(msg) > c.hub.options().OutboundQueueBytes {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// writeLoop owns all data writes and pings of the connection. It ends when
// the connection closes.
func (c *conn) writeLoop() {
	defer close(c.writerEnd)
	defer func() {
		if v := recover(); v != nil {
			c.hub.log().Error("panic in connection writer", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			c.close(websocket.StatusInternalError, "internal error")
		}
	}()
	ping := time.NewTicker(c.hub.options().PingInterval)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-c.done:
			return
		case <-c.tooBig:
			// The reader is stuck inside the frame; closing is all that
			// is left to do, and it is this goroutine's to do.
			c.hub.metrics().Rejected(RejectTooBig)
			c.close(websocket.StatusMessageTooBig, c.tooBigReason())
			return
		case <-ping.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.hub.options().WriteTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.hub.metrics().Rejected(RejectPingTimeout)
				c.close(websocket.StatusGoingAway, "ping timeout")
				return
			}
		case <-c.wake:
			c.mu.Lock()
			batch, c.queue = c.queue, batch[:0]
			c.queued = 0
			c.mu.Unlock()
			for i, msg := range batch {
				ctx, cancel := context.WithTimeout(context.Background(), c.hub.options().WriteTimeout)
				err := c.ws.Write(ctx, websocket.MessageBinary, msg)
				cancel()
				batch[i] = nil
				if err != nil {
					c.close(websocket.StatusGoingAway, "write failed")
					return
				}
				c.hub.metrics().Message(Outbound, kindOf(msg), len(msg))
			}
		}
	}
}

// close closes the connection once with a code and a reason. It does not
// block the caller on the close handshake.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.queue = nil
		c.queued = 0
		c.mu.Unlock()
		close(c.done)
		// The handshake waits for the peer (at most 5 s in coder/websocket);
		// run it aside so that a room lock holder is never delayed.
		go func() {
			defer close(c.wsClosed)
			c.ws.Close(code, reason)
		}()
	})
}
