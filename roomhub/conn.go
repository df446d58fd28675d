package roomhub

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

// conn is one client connection. Its outbound messages go through a bounded
// queue, so a room never waits for a client: enqueue never blocks, and a
// client whose queue overflows is closed.
//
// The queue is drained by a goroutine that exists only while there is
// something to write: an idle connection costs no goroutine but the one
// reading it. Pings come from a timer, also without a goroutine of their own
// between pings. Every write goes through the Transport, which keeps frames
// whole however the writes of the drain, the pings and the close interleave.
type conn struct {
	id       uint64 // unique in its hub
	t        Transport
	codec    Codec
	readOnly bool
	// ignoreAwareness: the connection's awareness updates are dropped.
	ignoreAwareness bool
	hub             *Hub
	// applied acknowledges one of the client's updates (codec's
	// AppendSyncStatus; nil for a protocol without acknowledgements). It is
	// built once and enqueued as is: queued messages are never modified.
	applied []byte

	mu        sync.Mutex
	queue     [][]byte
	queued    int           // bytes in queue
	drained   chan struct{} // closed when the running drain goroutine ends; nil when none runs
	closing   bool          // no more enqueues
	deniedMsg bool          // a read-only client was told once that it cannot write
	pingTimer *time.Timer

	closeOnce sync.Once
	closed    chan struct{} // closed when the transport's close is over

	// awarenessIDs are the awareness client ids this connection set; guarded
	// by the room's mutex.
	awarenessIDs map[uint64]struct{}
}

func newConn(t Transport, codec Codec, readOnly bool, hub *Hub) *conn {
	return &conn{
		id:       hub.connIDs.Add(1),
		t:        t,
		codec:    codec,
		readOnly: readOnly,
		hub:      hub,
		applied:  codec.AppendSyncStatus(nil, true),
		closed:   make(chan struct{}),
	}
}

// acknowledge tells the client that one of its updates is stored (or had
// nothing new), for protocols that say so (Hocuspocus' SyncStatus).
func (c *conn) acknowledge() {
	if c != nil && c.applied != nil {
		c.enqueue(c.applied)
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
	c.close(StatusTryAgainLater, "client too slow: outbound queue full")
	return true
}

// drain writes what is queued, batch by batch, and ends when the queue is
// empty or the connection closes.
func (c *conn) drain(drained chan struct{}) {
	defer close(drained)
	defer func() {
		if v := recover(); v != nil {
			c.hub.log().Error("panic in connection writer", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			c.close(StatusInternalError, "internal error")
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

		// Counted as they are handed to the socket: a client that has
		// read a message finds it in the metrics.
		m := c.hub.metrics()
		for _, msg := range batch {
			m.Message(Outbound, c.codec.Protocol(), c.codec.Kind(msg), len(msg))
		}
		if err := c.t.WriteMessages(batch, c.hub.options().WriteTimeout); err != nil {
			c.close(StatusGoingAway, "write failed")
			c.mu.Lock()
			c.drained = nil
			c.mu.Unlock()
			return
		}
		clear(batch)
	}
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
	err := c.t.Ping(ctx)
	cancel()
	if err != nil {
		c.hub.metrics().Rejected(RejectPingTimeout)
		c.close(StatusGoingAway, "ping timeout")
		return
	}
	c.mu.Lock()
	if !c.closing {
		c.pingTimer.Reset(c.hub.options().PingInterval)
	}
	c.mu.Unlock()
}

// close closes the connection once with a code and a reason. It does not
// block the caller: the transport waits for a write in progress and for the
// peer's side of the handshake, so that runs on a goroutine of its own, and
// a room lock holder is never delayed.
func (c *conn) close(code StatusCode, reason string) {
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
		go func() {
			defer close(c.closed)
			c.t.Close(code, reason)
			if drained != nil {
				// The transport ended any write still in progress (it
				// waits for one, then cuts the socket): the drain ends
				// before the connection counts as closed.
				<-drained
			}
		}()
	})
}
