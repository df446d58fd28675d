package roomhub

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// Cluster mode: the hubs of several servers serve the same rooms through a
// shared log (cluster.Redis implements it on Redis). The log orders every
// update and holds it before any hub relays it, the sender's own included;
// each hub applies what the log delivers, in the log's order. A room's
// state is a checkpoint (a WireDB file in a directory the servers share)
// plus the log after it. docs/cluster.md has the whole picture.

// Cluster is the shared log of a cluster.
type Cluster interface {
	// Join subscribes to the room of key, then reads its state whole: the
	// subscription is in place before the read, so every batch after the
	// state's Seq reaches sink (batches at or below it may too; the room
	// drops them). It fails, rather than return part of the state, if the
	// state cannot be read whole.
	Join(ctx context.Context, key string, sink ClusterSink) (SharedRoom, SharedState, error)
	// Exists reports whether the room of key has state in the cluster.
	Exists(ctx context.Context, key string) (bool, error)
	// Healthy returns why the cluster cannot take new joins now, or nil.
	Healthy() error
	// Timeout bounds one operation on the shared log.
	Timeout() time.Duration
}

// SharedRoom is a hub's handle on one room of the shared log, from Join to
// Leave. Its methods are safe for concurrent use.
type SharedRoom interface {
	// Append orders and holds updates (from one hub, in this order) as the
	// next batch of the room, and returns the batch's sequence number. The
	// batch reaches every hub's sink, this one's included. On an error
	// the batch may or may not have been taken.
	Append(ctx context.Context, updates []SharedUpdate) (seq uint64, err error)
	// Range reads the batches after seq, to the log's end. It returns an
	// error wrapping ErrTrimmed if the log no longer holds seq+1 (a
	// checkpoint covered it since).
	Range(ctx context.Context, after uint64) ([]Batch, error)
	// PublishStateless relays an application's stateless message to the
	// room's connections on the other hubs; it is not kept.
	PublishStateless(ctx context.Context, payload []byte) error
	// PublishAwareness tells the other hubs about entries (y-protocols
	// awareness entries; a removal has the state "null"), and keeps them
	// for hubs that join the room later.
	PublishAwareness(ctx context.Context, entries []yproto.AwarenessEntry) error
	// AcquireLease takes or renews the room's checkpoint lease; it
	// returns ErrNotLeaseHolder if another server holds it.
	AcquireLease(ctx context.Context) error
	// ReleaseLease gives the lease up if this hub holds it.
	ReleaseLease(ctx context.Context) error
	// Checkpoint stores merged, the room's state up to seq, as the room's
	// checkpoint, if this hub still holds the room's checkpoint lease and
	// no checkpoint at or after seq exists; the log then drops what it
	// covers. It reports the sequence number the room's checkpoint
	// covers afterwards; an error wraps ErrNotLeaseHolder or
	// ErrStaleCheckpoint when it stored nothing for those reasons.
	Checkpoint(ctx context.Context, merged []byte, seq uint64) (checkpointSeq uint64, err error)
	// Where names the room's current checkpoint (for logs and the admin API).
	Where() string
	// Leave ends the subscription. The sink gets nothing after it returns.
	Leave()
}

// Errors of a SharedRoom.
var (
	ErrTrimmed         = errors.New("roomhub: the shared log no longer holds what was asked for")
	ErrNotLeaseHolder  = errors.New("roomhub: another server holds the room's checkpoint lease")
	ErrStaleCheckpoint = errors.New("roomhub: a newer checkpoint exists")
)

// SharedState is a room as Join read it.
type SharedState struct {
	// Checkpoint are the updates of the room's checkpoint file (usually
	// one), or none.
	Checkpoint    [][]byte
	CheckpointSeq uint64
	// Batches are the log's batches after the checkpoint, in order.
	Batches []Batch
	// Seq is the last batch the state covers.
	Seq uint64
	// Awareness are the entries hubs published and renewed within
	// AwarenessTimeout.
	Awareness []SharedAwareness
}

// SharedAwareness is an awareness entry as the shared log keeps it: the
// entry and when a hub last published it.
type SharedAwareness struct {
	yproto.AwarenessEntry
	Renewed time.Time
}

// Batch is what one Append added to the shared log.
type Batch struct {
	Seq uint64
	// Origin identifies the hub that appended it (ClusterSink knows its
	// own).
	Origin  string
	Updates []SharedUpdate
}

// SharedUpdate is one update of a batch, and the connection (of the
// origin hub) that sent it, so that the origin does not echo it back.
type SharedUpdate struct {
	Conn   uint64
	Update []byte
}

// ClusterSink is how a SharedRoom hands a hub what the log delivers. Its
// methods are called from one goroutine per cluster, in the order the
// shared log published; they must not block.
type ClusterSink interface {
	// Deliver hands over a batch. Batches can be missing (a gap) or come
	// twice; the sink repairs gaps with Range.
	Deliver(b Batch)
	// Awareness hands over entries another hub published.
	Awareness(origin string, entries []yproto.AwarenessEntry)
	// Stateless hands over a stateless message another hub published.
	Stateless(origin string, payload []byte)
	// Resubscribed says the subscription was lost and is back: batches
	// may have been missed meanwhile.
	Resubscribed()
	// Lost says the subscription has been lost for longer than the grace
	// period: the room's clients are no longer kept in sync.
	Lost(err error)
}

// AwarenessTimeout is how long a hub keeps an awareness entry another hub
// published and stopped renewing (y-protocols' own outdated timeout): the
// presence of the clients of a server that died goes away after it.
const AwarenessTimeout = 30 * time.Second

// awarenessRenewal is how often a hub republishes the awareness entries of
// its own clients, so that the other hubs keep them (clients renew their
// own only when something changes, or every 15 s for y-protocols).
const awarenessRenewal = 10 * time.Second

// SetCluster makes the hub serve its rooms through c. It must be called
// before the hub's first connection.
func (h *Hub) SetCluster(c Cluster, instance string) {
	h.cluster = c
	h.instance = instance
	h.background.Add(1)
	go h.awarenessLoop()
}

// Healthy returns why the hub cannot take new connections now (its
// cluster's shared log is unreachable), or nil.
func (h *Hub) Healthy() error {
	if h.cluster == nil {
		return nil
	}
	return h.cluster.Healthy()
}

// awarenessLoop renews the awareness of this hub's clients in the cluster
// and drops, in every room, the entries of other hubs that stopped
// renewing theirs.
func (h *Hub) awarenessLoop() {
	defer h.background.Done()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	lastRenewal := time.Now()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-sweep.C:
			renew := now.Sub(lastRenewal) >= awarenessRenewal
			if renew {
				lastRenewal = now
			}
			for _, r := range h.loadedRooms() {
				r.expireRemoteAwareness(now)
				if renew {
					r.renewAwareness()
				}
			}
		}
	}
}
