package roomhub

import (
	"context"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/internal/wsframe"
)

// conn is one client connection. Its outbound messages go through a bounded
// queue, so a room never waits for a client: enqueue never blocks, and a
// client whose queue overflows is closed.
//
// The queue is drained by a goroutine that exists only while there is
// something to write: an idle connection costs no goroutine but the one
// reading it. Pings come from a timer, also without a goroutine of their own
// between pings.
type conn struct {
	ws *websocket.Conn
	// raw is the connection under ws, when known: drained messages are then
	// written as ready-made frames, many per write(2), instead of one
	// coder/websocket Write (and syscall) each.
	raw      net.Conn
	readOnly bool
	// ignoreAwareness: the connection's awareness updates are dropped.
	ignoreAwareness bool
	hub             *Hub

	mu        sync.Mutex
	queue     [][]byte
	queued    int           // bytes in queue
	drained   chan struct{} // closed when the running drain goroutine ends; nil when none runs
	closing   bool          // no more enqueues
	deniedMsg bool          // a read-only client was told once that it cannot write
	pingTimer *time.Timer

	closeOnce sync.Once
	wsClosed  chan struct{} // closed when the close handshake is over

	// awarenessIDs are the awareness client ids this connection set; guarded
	// by the room's mutex.
	awarenessIDs map[uint64]struct{}
}

func newConn(ws *websocket.Conn, raw net.Conn, readOnly bool, hub *Hub) *conn {
	return &conn{
		ws:       ws,
		raw:      raw,
		readOnly: readOnly,
		hub:      hub,
		wsClosed: make(chan struct{}),
	}
}

// start arms the ping timer; the connection is then live.
func (c *conn) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.pingTimer = time.AfterFunc(c.hub.options().PingInterval, c.ping)
	}
}

// enqueue adds a message without blocking. It reports false when the
// connection is closing or its queue would pass OutboundQueueBytes; one
// message larger than the bound is still accepted into an empty queue, so a
// big sync step 2 can reach a client that is keeping up.
func (c *conn) enqueue(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if c.queued > 0 && c.queued+len(msg) > c.hub.options().OutboundQueueBytes {
		return false
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	if c.drained == nil {
		c.drained = make(chan struct{})
		go c.drain(c.drained)
	}
	return true
}

// dropIfFull closes the connection as too slow, unless it is closing
// already (enqueue refuses then too). It reports whether it closed it.
func (c *conn) dropIfFull() bool {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return false
	}
	c.close(websocket.StatusTryAgainLater, "client too slow: outbound queue full")
	return true
}

// drain writes what is queued, batch by batch, and ends when the queue is
// empty or the connection closes.
func (c *conn) drain(drained chan struct{}) {
	defer close(drained)
	defer func() {
		if v := recover(); v != nil {
			c.hub.log().Error("panic in connection writer", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			c.close(websocket.StatusInternalError, "internal error")
		}
	}()
	var batch [][]byte
	for {
		c.mu.Lock()
		if c.closing || len(c.queue) == 0 {
			c.drained = nil
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.queued = 0
		c.mu.Unlock()

		if err := c.write(batch); err != nil {
			c.close(websocket.StatusGoingAway, "write failed")
			c.mu.Lock()
			c.drained = nil
			c.mu.Unlock()
			return
		}
		clear(batch)
	}
}

// batchBuffers hold frames on their way to one write(2).
var batchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBatch keeps a huge step 2's buffer out of the pool.
const maxPooledBatch = 1 << 20

func (c *conn) write(batch [][]byte) error {
	timeout := c.hub.options().WriteTimeout
	m := c.hub.metrics()
	if c.raw == nil {
		for _, msg := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := c.ws.Write(ctx, websocket.MessageBinary, msg)
			cancel()
			if err != nil {
				return err
			}
			m.Message(Outbound, kindOf(msg), len(msg))
		}
		return nil
	}
	bufp := batchBuffers.Get().(*[]byte)
	buf := (*bufp)[:0]
	defer func() {
		if cap(buf) <= maxPooledBatch {
			*bufp = buf[:0]
			batchBuffers.Put(bufp)
		}
	}()
	for _, msg := range batch {
		buf = wsframe.AppendBinaryFrame(buf, msg)
		m.Message(Outbound, kindOf(msg), len(msg))
	}
	// coder/websocket sets no deadlines of its own (it uses context
	// timers), so this one is ours alone; cleared so that its pings and
	// close frame are not cut short by it.
	c.raw.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.raw.Write(buf)
	c.raw.SetWriteDeadline(time.Time{})
	return err
}

// ping checks that the peer is alive, then arms the next ping.
func (c *conn) ping() {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.options().WriteTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.hub.metrics().Rejected(RejectPingTimeout)
		c.close(websocket.StatusGoingAway, "ping timeout")
		return
	}
	c.mu.Lock()
	if !c.closing {
		c.pingTimer.Reset(c.hub.options().PingInterval)
	}
	c.mu.Unlock()
}

// close closes the connection once with a code and a reason. It does not
// block the caller on the close handshake.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.queue = nil
		c.queued = 0
		if c.pingTimer != nil {
			c.pingTimer.Stop()
		}
		drained := c.drained
		c.mu.Unlock()
		// The handshake waits for the peer (at most 5 s in coder/websocket);
		// run it aside so that a room lock holder is never delayed.
		go func() {
			defer close(c.wsClosed)
			if drained != nil && !c.awaitDrain(drained) {
				// A write stuck on a client that stopped reading: cut it.
				// The stream now ends inside a frame, so no close frame
				// can follow it.
				c.ws.CloseNow()
				return
			}
			c.ws.Close(code, reason)
		}()
	})
}

// closeDrainWait is how long a closing connection waits for a write in
// progress, so that its close frame comes after whole frames: as long as
// coder/websocket waits to write a close frame.
const closeDrainWait = 5 * time.Second

// awaitDrain waits for the drain goroutine to end, at most closeDrainWait;
// then it aborts the drain's write. It reports whether the drain ended by
// itself.
func (c *conn) awaitDrain(drained chan struct{}) bool {
	t := time.NewTimer(closeDrainWait)
	defer t.Stop()
	select {
	case <-drained:
		return true
	case <-t.C:
	}
	// Closing the connection ends a write blocked in either path (our own
	// frames or coder/websocket's Write).
	c.ws.CloseNow()
	<-drained
	return false
}
