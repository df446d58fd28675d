package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// Rooms is the cluster as one hub sees it: Redis, and the directory of
// checkpoint files every server of the cluster shares.
type Rooms struct {
	*Redis
	dir string
}

// ForDir returns the cluster for a hub whose checkpoints go to dir.
func (c *Redis) ForDir(dir string) *Rooms { return &Rooms{Redis: c, dir: dir} }

// Timeout bounds one operation.
func (c *Rooms) Timeout() time.Duration { return c.opts.Timeout }

func (c *Redis) key(room, what string) string {
	return c.opts.KeyPrefix + ":{" + room + "}:" + what
}

// Exists reports whether the room has metadata in Redis.
func (c *Rooms) Exists(ctx context.Context, key string) (bool, error) {
	n, err := c.client.Exists(ctx, c.key(key, "meta")).Result()
	if err != nil {
		c.failed("exists", err)
		return false, err
	}
	return n > 0, nil
}

// Join subscribes to the room's channel, then reads its state whole in one
// script (metadata, the stream after the checkpoint, awareness), then its
// checkpoint file.
func (c *Rooms) Join(ctx context.Context, key string, sink roomhub.ClusterSink) (roomhub.SharedRoom, roomhub.SharedState, error) {
	var st roomhub.SharedState
	if err := c.Healthy(); err != nil {
		return nil, st, err
	}
	sub, err := c.subscribe(ctx, c.key(key, "ch"), sink)
	if err != nil {
		c.failed("subscribe", err)
		return nil, st, err
	}
	r := &room{c: c, key: key, sub: sub}
	st, err = r.read(ctx)
	if err != nil {
		c.unsubscribe(sub)
		return nil, st, fmt.Errorf("reading room %q: %w", key, err)
	}
	return r, st, nil
}

// room is one room of a hub in the cluster (a roomhub.SharedRoom).
type room struct {
	c   *Rooms
	key string
	sub *subscription

	mu    sync.Mutex
	epoch string
	cp    string // the checkpoint's file name, "" if none
}

func (r *room) keys(what ...string) []string {
	ks := make([]string, len(what))
	for i, w := range what {
		ks[i] = r.c.key(r.key, w)
	}
	return ks
}

// read runs the join script and reads the checkpoint it names. A room
// without metadata in Redis (a new room, or a Redis that lost it) adopts
// the newest file the directory has of it, so that what it holds is never
// dropped. If the checkpoint file is missing (another server replaced it,
// and it was removed, between the script and the read), it reads once
// more.
func (r *room) read(ctx context.Context) (roomhub.SharedState, error) {
	var candidate string
	lookedUp, gone := false, false
	for {
		st, created, err := r.readOnce(ctx, candidate, lookedUp)
		switch {
		case errors.Is(err, errNoMetadata) && !lookedUp:
			if candidate, err = storage.LatestCheckpoint(r.c.dir, r.key); err != nil {
				return roomhub.SharedState{}, err
			}
			lookedUp = true
		case errors.Is(err, errCheckpointGone) && !gone:
			gone = true
		case err != nil:
			return roomhub.SharedState{}, err
		default:
			if created && st.cpName != "" {
				r.c.log.Warn("room had no metadata in Redis: adopted its newest file as its checkpoint",
					zap.String("room", r.key), zap.String("checkpoint", st.cpName))
			}
			return st.SharedState, nil
		}
	}
}

var errNoMetadata = errors.New("room has no metadata")

var errCheckpointGone = errors.New("checkpoint file missing")

type readState struct {
	roomhub.SharedState
	cpName string
}

func (r *room) readOnce(ctx context.Context, candidate string, lookedUp bool) (readState, bool, error) {
	var st readState
	looked := "0"
	if lookedUp {
		looked = "1"
	}
	res, err := joinScript.Run(ctx, r.c.client, r.keys("meta", "log", "aw"), randomHex(8), candidate, looked).Slice()
	if err != nil {
		r.c.failed("join", err)
		return st, false, err
	}
	if len(res) == 1 {
		return st, false, errNoMetadata
	}
	if len(res) != 7 {
		return st, false, fmt.Errorf("join script returned %d values", len(res))
	}
	created, _ := res[0].(int64)
	epoch, _ := res[1].(string)
	seq, err1 := strconv.ParseUint(asString(res[2]), 10, 64)
	cp := asString(res[3])
	cpSeq, err2 := strconv.ParseUint(asString(res[4]), 10, 64)
	if err := errors.Join(err1, err2); err != nil || epoch == "" {
		return st, false, fmt.Errorf("room metadata unreadable: %v", res[:5])
	}
	batches, err := decodeEntries(res[5])
	if err != nil {
		return st, false, err
	}
	// The stream must hold every batch after the checkpoint: the state
	// is whole, or the join is refused.
	next := cpSeq + 1
	for _, b := range batches {
		if b.Seq != next {
			return st, false, fmt.Errorf("the stream lacks batch %d (has %d next; the room's metadata says %d..%d)", next, b.Seq, cpSeq+1, seq)
		}
		next++
	}
	if next != seq+1 {
		return st, false, fmt.Errorf("the stream ends at batch %d, the room's metadata says %d", next-1, seq)
	}
	st.Batches, st.Seq, st.CheckpointSeq, st.cpName = batches, seq, cpSeq, cp
	st.Awareness = decodeAwarenessHash(res[6], time.Now())
	if cp != "" {
		updates, err := storage.ReadCheckpoint(r.c.dir, cp)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return st, false, fmt.Errorf("%w: %v", errCheckpointGone, err)
			}
			return st, false, err
		}
		st.Checkpoint = updates
	}
	r.mu.Lock()
	r.epoch, r.cp = epoch, cp
	r.mu.Unlock()
	return st, created == 1, nil
}

// Append appends a batch in one script, which orders, holds and publishes
// it.
func (r *room) Append(ctx context.Context, updates []roomhub.SharedUpdate) (uint64, error) {
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	args := make([]any, 0, 2+2*len(updates))
	args = append(args, epoch, r.c.opts.Instance)
	for _, u := range updates {
		args = append(args, strconv.FormatUint(u.Conn, 10), u.Update)
	}
	start := time.Now()
	seq, err := appendScript.Run(ctx, r.c.client, r.keys("meta", "log", "ch"), args...).Uint64()
	if err != nil {
		r.c.failed("append", err)
		if strings.HasPrefix(err.Error(), "WIREDB_RESET") {
			return 0, fmt.Errorf("%w: %v", roomhub.ErrRoomReset, err)
		}
		return 0, err
	}
	r.c.m.RoundTrip(time.Since(start))
	r.c.m.Appended(len(updates))
	return seq, nil
}

// Range reads the stream after batch after, with the room's last seq in
// the same transaction: read apart, an append landing in between would
// make a stream that was read to its end look trimmed.
func (r *room) Range(ctx context.Context, after uint64) ([]roomhub.Batch, error) {
	var xr *redis.XMessageSliceCmd
	var last *redis.StringCmd
	_, err := r.c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		xr = p.XRange(ctx, r.c.key(r.key, "log"), strconv.FormatUint(after+1, 10)+"-0", "+")
		last = p.HGet(ctx, r.c.key(r.key, "meta"), "seq")
		return nil
	})
	if err != nil {
		r.c.failed("range", err)
		return nil, err
	}
	seq, err := last.Uint64()
	if err != nil {
		return nil, fmt.Errorf("room metadata: %w", err)
	}
	batches, err := batchesOf(xr.Val())
	if err != nil {
		return nil, err
	}
	if len(batches) > 0 && batches[0].Seq != after+1 {
		return nil, fmt.Errorf("%w: batch %d (the stream starts at %d)", roomhub.ErrTrimmed, after+1, batches[0].Seq)
	}
	end := after
	if len(batches) > 0 {
		end = batches[len(batches)-1].Seq
	}
	if seq > end {
		return nil, fmt.Errorf("%w: batches %d..%d", roomhub.ErrTrimmed, end+1, seq)
	}
	r.c.m.GapRepaired(len(batches))
	return batches, nil
}

// PublishAwareness stores entries in the room's awareness hash (a removal
// deletes) and publishes them.
func (r *room) PublishAwareness(ctx context.Context, entries []yproto.AwarenessEntry) error {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	args := make([]any, 0, 3+2*len(entries))
	args = append(args, r.c.opts.Instance, yproto.AppendAwarenessUpdate(nil, entries),
		strconv.FormatInt((2*roomhub.AwarenessTimeout).Milliseconds(), 10))
	for _, e := range entries {
		value := ""
		if !e.Removed() {
			value = now + " " + string(yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{e}))
		}
		args = append(args, strconv.FormatUint(e.ClientID, 10), value)
	}
	if err := awarenessScript.Run(ctx, r.c.client, r.keys("aw", "ch"), args...).Err(); err != nil {
		r.c.failed("awareness", err)
		return err
	}
	return nil
}

// PublishStateless publishes "S<instance>\n<payload>" on the room's
// channel; nothing is stored.
func (r *room) PublishStateless(ctx context.Context, payload []byte) error {
	msg := make([]byte, 0, 2+len(r.c.opts.Instance)+len(payload))
	msg = append(append(append(append(msg, 'S'), r.c.opts.Instance...), '\n'), payload...)
	if err := r.c.client.Publish(ctx, r.keys("ch")[0], msg).Err(); err != nil {
		r.c.failed("stateless", err)
		return err
	}
	return nil
}

// AcquireLease takes or renews the room's checkpoint lease.
func (r *room) AcquireLease(ctx context.Context) error {
	lease, err := leaseScript.Run(ctx, r.c.client, r.keys("lease"), r.c.opts.Instance,
		strconv.FormatInt(r.c.opts.Lease.Milliseconds(), 10)).Int()
	if err != nil {
		r.c.failed("lease", err)
		return err
	}
	switch lease {
	case 0:
		return roomhub.ErrNotLeaseHolder
	case 2:
		r.c.m.LeaseChanged()
		r.c.log.Info("took the checkpoint lease of a room", zap.String("room", r.key))
	}
	return nil
}

// ReleaseLease gives up the room's lease if this server holds it, so that
// another server that still has the room can checkpoint it at once.
func (r *room) ReleaseLease(ctx context.Context) error {
	if err := releaseLeaseScript.Run(ctx, r.c.client, r.keys("lease"), r.c.opts.Instance).Err(); err != nil {
		r.c.failed("lease", err)
		return err
	}
	return nil
}

// Checkpoint writes merged as a new checkpoint file, and commits it with a
// compare-and-set (on the lease and the sequence) that also trims the
// stream. A checkpoint that did not commit is removed; superseded ones are
// removed after the grace period.
func (r *room) Checkpoint(ctx context.Context, merged []byte, seq uint64) (uint64, error) {
	cpSeq, err := r.c.client.HGet(ctx, r.c.key(r.key, "meta"), "cpseq").Uint64()
	if err != nil {
		r.c.failed("checkpoint", err)
		return 0, err
	}
	if cpSeq >= seq {
		return cpSeq, roomhub.ErrStaleCheckpoint
	}
	name, err := storage.CheckpointName(r.key, seq)
	if err != nil {
		return 0, err
	}
	if err := storage.WriteCheckpoint(r.c.dir, name, merged); err != nil {
		return 0, err
	}
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	res, err := commitCheckpointScript.Run(ctx, r.c.client, r.keys("meta", "log", "lease"),
		epoch, r.c.opts.Instance, name, strconv.FormatUint(seq, 10)).Slice()
	if err != nil || len(res) != 3 {
		// Unknown whether it committed: the file stays (if it did not,
		// a later checkpoint removes it after the grace period).
		r.c.failed("checkpoint", err)
		if err == nil {
			err = fmt.Errorf("checkpoint script returned %d values", len(res))
		}
		if strings.HasPrefix(err.Error(), "WIREDB_RESET") {
			err = fmt.Errorf("%w: %v", roomhub.ErrRoomReset, err)
		}
		return 0, err
	}
	status, _ := res[0].(int64)
	current, _ := strconv.ParseUint(asString(res[1]), 10, 64)
	if status != 1 {
		removeFile(r.c.dir, name)
		if status == 0 {
			r.c.m.LeaseChanged()
			return current, roomhub.ErrNotLeaseHolder
		}
		return current, roomhub.ErrStaleCheckpoint
	}
	r.mu.Lock()
	r.cp = name
	r.mu.Unlock()
	r.c.m.Checkpointed()
	removed, err := storage.RemoveCheckpoints(r.c.dir, r.key, name, r.c.opts.CheckpointGrace)
	if err != nil {
		r.c.log.Warn("removing superseded checkpoints", zap.String("room", r.key), zap.Error(err))
	}
	for _, n := range removed {
		r.c.log.Debug("removed superseded checkpoint", zap.String("room", r.key), zap.String("file", n))
	}
	return seq, nil
}

// Where names the room's checkpoint file.
func (r *room) Where() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cp == "" {
		return "redis stream " + r.c.key(r.key, "log")
	}
	return filepath.Join(r.c.dir, r.cp)
}

// Leave ends the room's subscription.
func (r *room) Leave() { r.c.unsubscribe(r.sub) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func asString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}

// decodeEntries decodes XRANGE's reply as a script returns it.
func decodeEntries(v any) ([]roomhub.Batch, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("stream entries: unexpected %T", v)
	}
	msgs := make([]redis.XMessage, 0, len(list))
	for _, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("stream entry: unexpected %v", e)
		}
		fields, _ := pair[1].([]any)
		values := make(map[string]any, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			values[asString(fields[i])] = fields[i+1]
		}
		msgs = append(msgs, redis.XMessage{ID: asString(pair[0]), Values: values})
	}
	return batchesOf(msgs)
}

// batchesOf groups stream entries (id <seq>-<i>) into batches.
func batchesOf(msgs []redis.XMessage) ([]roomhub.Batch, error) {
	var batches []roomhub.Batch
	for _, m := range msgs {
		seqStr, idx, ok := strings.Cut(m.ID, "-")
		seq, err1 := strconv.ParseUint(seqStr, 10, 64)
		i, err2 := strconv.ParseUint(idx, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("stream entry id %q: not <seq>-<i>", m.ID)
		}
		u, _ := m.Values["u"].(string)
		origin, _ := m.Values["o"].(string)
		instance, connStr, _ := strings.Cut(origin, "/")
		conn, _ := strconv.ParseUint(connStr, 10, 64)
		if len(batches) == 0 || batches[len(batches)-1].Seq != seq {
			if i != 0 {
				return nil, fmt.Errorf("stream entry %s: batch %d starts at update %d", m.ID, seq, i)
			}
			batches = append(batches, roomhub.Batch{Seq: seq, Origin: instance})
		}
		b := &batches[len(batches)-1]
		b.Updates = append(b.Updates, roomhub.SharedUpdate{Conn: conn, Update: []byte(u)})
	}
	return batches, nil
}

// decodeBatchMessage decodes a published batch: "U<seq> <instance>\n",
// then per update "<connection> <length>\n<update>".
func decodeBatchMessage(p string) (roomhub.Batch, error) {
	var b roomhub.Batch
	head, rest, ok := strings.Cut(p[1:], "\n")
	seqStr, origin, ok2 := strings.Cut(head, " ")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if !ok || !ok2 || err != nil {
		return b, fmt.Errorf("bad batch header %q", head)
	}
	b.Seq, b.Origin = seq, origin
	for rest != "" {
		line, after, ok := strings.Cut(rest, "\n")
		connStr, lenStr, ok2 := strings.Cut(line, " ")
		conn, err1 := strconv.ParseUint(connStr, 10, 64)
		n, err2 := strconv.Atoi(lenStr)
		if !ok || !ok2 || err1 != nil || err2 != nil || n < 0 || n > len(after) {
			return b, fmt.Errorf("bad update header %q in batch %d", line, seq)
		}
		b.Updates = append(b.Updates, roomhub.SharedUpdate{Conn: conn, Update: []byte(after[:n])})
		rest = after[n:]
	}
	return b, nil
}

// decodeAwarenessMessage decodes "A<instance>\n<awareness update>".
func decodeAwarenessMessage(p string) (string, []yproto.AwarenessEntry, error) {
	origin, update, ok := strings.Cut(p[1:], "\n")
	if !ok {
		return "", nil, errors.New("no instance line")
	}
	entries, err := yproto.DecodeAwarenessUpdate([]byte(update), 0)
	return origin, entries, err
}

// decodeAwarenessHash returns the entries of the awareness hash renewed
// within roomhub.AwarenessTimeout, with the time they were.
func decodeAwarenessHash(v any, now time.Time) []roomhub.SharedAwareness {
	list, _ := v.([]any)
	var entries []roomhub.SharedAwareness
	for i := 0; i+1 < len(list); i += 2 {
		msStr, update, ok := strings.Cut(asString(list[i+1]), " ")
		ms, err := strconv.ParseInt(msStr, 10, 64)
		renewed := time.UnixMilli(ms)
		if !ok || err != nil || now.Sub(renewed) > roomhub.AwarenessTimeout {
			continue
		}
		es, err := yproto.DecodeAwarenessUpdate([]byte(update), 0)
		if err != nil {
			continue
		}
		for _, e := range es {
			entries = append(entries, roomhub.SharedAwareness{AwarenessEntry: e, Renewed: renewed})
		}
	}
	return entries
}

// removeFile removes a checkpoint that did not commit.
func removeFile(dir, name string) {
	_ = os.Remove(filepath.Join(dir, name))
}
