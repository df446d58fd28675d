package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// These tests run against a real redis-server, started per test on a free
// loopback port with its AOF on (appendfsync always), in a temp dir. Without
// redis-server they skip, unless WIREDB_REQUIRE_REDIS=1 (scripts/test.sh
// sets it), which makes its absence a failure.

type redisServer struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin := os.Getenv("WIREDB_REDIS_SERVER")
	if bin == "" {
		bin, _ = exec.LookPath("redis-server")
	}
	if bin == "" {
		if os.Getenv("WIREDB_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not found and WIREDB_REQUIRE_REDIS=1")
		}
		t.Skip("redis-server not found (install it, or set WIREDB_REDIS_SERVER)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: port}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no")
	dieWithTest(s.cmd)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL (its AOF keeps what it acknowledged).
func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	t.Cleanup(func() { c.Close() })
	return c
}

func newTestRedis(t *testing.T, s *redisServer, instance string, opts Options) *Redis {
	t.Helper()
	opts.URL = s.url()
	opts.Instance = instance
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	rc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	waitFor(t, 5*time.Second, "the cluster client to be healthy", func() bool { return rc.Healthy() == nil })
	return rc
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sink records what a room is handed.
type sink struct {
	mu           sync.Mutex
	batches      []roomhub.Batch
	awareness    [][]yproto.AwarenessEntry
	resubscribed int
	lost         int
}

func (s *sink) Deliver(b roomhub.Batch) { s.mu.Lock(); s.batches = append(s.batches, b); s.mu.Unlock() }
func (s *sink) Awareness(origin string, e []yproto.AwarenessEntry) {
	s.mu.Lock()
	s.awareness = append(s.awareness, e)
	s.mu.Unlock()
}
func (s *sink) Stateless(origin string, p []byte) {}
func (s *sink) Resubscribed()                     { s.mu.Lock(); s.resubscribed++; s.mu.Unlock() }
func (s *sink) Lost(err error)                    { s.mu.Lock(); s.lost++; s.mu.Unlock() }

func (s *sink) seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, b := range s.batches {
		out = append(out, b.Seq)
	}
	return out
}

// update returns a distinct small Yjs v1 update (one insert by client id).
func update(client uint64) []byte {
	// One struct: an Item with content "x" in the root type "text".
	b := yproto.AppendVarUint(nil, 1) // one client
	b = yproto.AppendVarUint(b, 1)    // one struct
	b = yproto.AppendVarUint(b, client)
	b = yproto.AppendVarUint(b, 0)               // clock
	b = append(b, 4)                             // info: ContentString, no origins, parent is a root name
	b = append(b, 1)                             // parentYKey follows
	b = append(b, 4, 't', 'e', 'x', 't', 1, 'x') // "text", content "x"
	return append(b, 0)                          // empty delete set
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestUpdateHelperIsValid(t *testing.T) {
	if _, err := yproto.ValidateUpdate(update(7), yproto.Limits{}); err != nil {
		t.Fatal(err)
	}
}

// A join while another server appends sees every batch exactly once: in
// its state or delivered after it, never both, none missing.
func TestJoinDuringAppendsMissesNothing(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := newTestRedis(t, srv, "a", Options{}).ForDir(dir)
	b := newTestRedis(t, srv, "b", Options{}).ForDir(dir)
	var sa sink
	ra, _, err := a.Join(ctx(t), "doc", &sa)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := ra.Append(context.Background(), []roomhub.SharedUpdate{{Conn: 1, Update: update(uint64(i + 1))}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(5 * time.Millisecond)
	var sb sink
	_, st, err := b.Join(ctx(t), "doc", &sb)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every batch delivered to a", func() bool { return len(sa.seqs()) == n })
	covered := map[uint64]int{}
	for _, bt := range st.Batches {
		covered[bt.Seq]++
	}
	waitFor(t, 5*time.Second, "b to receive the batches after its state", func() bool {
		seqs := sb.seqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == n || st.Seq == n
	})
	for _, s := range sb.seqs() {
		if s > st.Seq {
			covered[s]++
		}
	}
	for s := uint64(1); s <= n; s++ {
		if covered[s] != 1 {
			t.Fatalf("batch %d covered %d times (state up to %d, %d batches in it)", s, covered[s], st.Seq, len(st.Batches))
		}
	}
	if st.Seq == 0 || st.Seq == n {
		t.Logf("the join fell at seq %d of %d: the test did not overlap the appends this time", st.Seq, n)
	}
	// Every server relays in Redis's order.
	for i, s := range sa.seqs() {
		if s != uint64(i+1) {
			t.Fatalf("a received batch %d at position %d", s, i)
		}
	}
}

func TestBatchKeepsOriginAndOrder(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{}).ForDir(t.TempDir())
	var s sink
	r, _, err := a.Join(ctx(t), "room/with spaces and {braces}", &s)
	if err != nil {
		t.Fatal(err)
	}
	ups := []roomhub.SharedUpdate{{Conn: 5, Update: update(1)}, {Conn: 9, Update: update(2)}}
	seq, err := r.Append(ctx(t), ups)
	if err != nil || seq != 1 {
		t.Fatalf("append: seq %d, %v", seq, err)
	}
	waitFor(t, 5*time.Second, "the batch", func() bool { return len(s.seqs()) == 1 })
	got := s.batches[0]
	if got.Origin != "a" || len(got.Updates) != 2 || got.Updates[1].Conn != 9 || string(got.Updates[1].Update) != string(update(2)) {
		t.Fatalf("delivered %+v", got)
	}
	ranged, err := r.Range(ctx(t), 0)
	if err != nil || len(ranged) != 1 || len(ranged[0].Updates) != 2 || ranged[0].Updates[0].Conn != 5 || ranged[0].Origin != "a" {
		t.Fatalf("range: %+v, %v", ranged, err)
	}
}

// A checkpoint commits only for the lease holder and only forward; the
// stream keeps exactly what follows the committed checkpoint, and a loser's
// file is removed.
func TestCheckpointLeaseAndCompareAndSet(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := newTestRedis(t, srv, "a", Options{Lease: 300 * time.Millisecond, CheckpointGrace: time.Nanosecond}).ForDir(dir)
	b := newTestRedis(t, srv, "b", Options{Lease: 300 * time.Millisecond, CheckpointGrace: time.Nanosecond}).ForDir(dir)
	ra, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	rb, _, err := b.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	var all [][]byte
	for i := range 30 {
		u := update(uint64(i + 1))
		all = append(all, u)
		if _, err := ra.Append(ctx(t), []roomhub.SharedUpdate{{Update: u}}); err != nil {
			t.Fatal(err)
		}
	}
	merged10, _ := yproto.MergeUpdates(all[:10])
	merged20, _ := yproto.MergeUpdates(all[:20])

	// checkpoint is what a hub does: the lease, then the compare-and-set.
	checkpoint := func(r roomhub.SharedRoom, merged []byte, seq uint64) (uint64, error) {
		if err := r.AcquireLease(ctx(t)); err != nil {
			return 0, err
		}
		return r.Checkpoint(ctx(t), merged, seq)
	}
	if cp, err := checkpoint(ra, merged10, 10); err != nil || cp != 10 {
		t.Fatalf("a's checkpoint: %d, %v", cp, err)
	}
	if _, err := checkpoint(rb, merged20, 20); err != roomhub.ErrNotLeaseHolder {
		t.Fatalf("b checkpointed while a held the lease: %v", err)
	}
	// a holds the lease and prepares a checkpoint at 15, then stalls past
	// its lease; b takes the lease and commits 20.
	if err := ra.AcquireLease(ctx(t)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if cp, err := checkpoint(rb, merged20, 20); err != nil || cp != 20 {
		t.Fatalf("b's checkpoint after a's lease expired: %d, %v", cp, err)
	}
	// a, stale, goes on with its older state: refused.
	if _, err := ra.Checkpoint(ctx(t), merged10, 15); err != roomhub.ErrStaleCheckpoint {
		t.Fatalf("stale a: %v", err)
	}
	// With a newer seq than the committed one, the lease alone stops it
	// (in the compare-and-set), and its file is removed.
	if _, err := ra.Checkpoint(ctx(t), merged20, 25); err != roomhub.ErrNotLeaseHolder {
		t.Fatalf("a without the lease, newer seq: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if cp, err := checkpoint(ra, merged10, 15); err != roomhub.ErrStaleCheckpoint || cp != 20 {
		t.Fatalf("a with the lease again but older state: %d, %v", cp, err)
	}
	rc := srv.client(t)
	meta := rc.HGetAll(ctx(t), "wiredb:{doc}:meta").Val()
	if meta["cpseq"] != "20" || !strings.Contains(meta["cp"], "@00000000000000000020-") {
		t.Fatalf("meta after the race: %v", meta)
	}
	// The stream keeps what follows the checkpoint before (10): a server
	// lagging behind the new one can still repair from it.
	if n := rc.XLen(ctx(t), "wiredb:{doc}:log").Val(); n != 20 {
		t.Fatalf("stream holds %d entries, want the 20 after the previous checkpoint", n)
	}
	if bs, err := rb.Range(ctx(t), 12); err != nil || len(bs) != 18 || bs[0].Seq != 13 {
		t.Fatalf("a laggard's repair behind the newest checkpoint: %d batches, %v", len(bs), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "doc@*.y"))
	if len(files) != 1 || filepath.Base(files[0]) != meta["cp"] {
		t.Fatalf("checkpoint files %v, meta names %s", files, meta["cp"])
	}
	// A fresh server reads checkpoint plus stream: all 30 updates.
	c := newTestRedis(t, srv, "c", Options{}).ForDir(dir)
	_, st, err := c.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	if st.CheckpointSeq != 20 || st.Seq != 30 || len(st.Batches) != 10 || len(st.Checkpoint) != 1 {
		t.Fatalf("fresh join: cp %d seq %d batches %d checkpoint updates %d", st.CheckpointSeq, st.Seq, len(st.Batches), len(st.Checkpoint))
	}
	if _, err := ra.Range(ctx(t), 5); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("range into the trimmed part: %v", err)
	}
}

// Redis killed and restarted from its AOF: what it acknowledged is there,
// the subscription comes back and tells the room to repair, and a loss past
// the grace period is reported.
func TestRedisRestartFromAOF(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{SubscriptionGrace: 300 * time.Millisecond, Timeout: 500 * time.Millisecond}).ForDir(t.TempDir())
	var s sink
	r, _, err := a.Join(ctx(t), "doc", &s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: update(uint64(i + 1))}}); err != nil {
			t.Fatal(err)
		}
	}
	srv.kill()
	waitFor(t, 5*time.Second, "Healthy to report the loss", func() bool { return a.Healthy() != nil })
	if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: update(99)}}); err == nil {
		t.Fatal("append succeeded with Redis down")
	}
	waitFor(t, 5*time.Second, "Lost after the grace period", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.lost == 1 })
	srv.start()
	waitFor(t, 10*time.Second, "health after the restart", func() bool { return a.Healthy() == nil })
	waitFor(t, 5*time.Second, "Resubscribed", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.resubscribed >= 1 })
	batches, err := r.Range(ctx(t), 0)
	if err != nil || len(batches) != 20 {
		t.Fatalf("after the restart the stream has %d batches (%v), want the 20 acknowledged", len(batches), err)
	}
	seq, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: update(21)}})
	if err != nil || seq != 21 {
		t.Fatalf("append after the restart: %d, %v", seq, err)
	}
	waitFor(t, 5*time.Second, "delivery after the restart", func() bool {
		seqs := s.seqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == 21
	})
}

// Redis lost the room's metadata (FLUSHALL): an append of the old epoch is
// refused (the room resyncs), and a new join adopts the newest checkpoint
// file instead of starting empty.
func TestResetRoomAdoptsNewestCheckpoint(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := newTestRedis(t, srv, "a", Options{}).ForDir(dir)
	r, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	u := update(1)
	if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: u}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AcquireLease(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Checkpoint(ctx(t), u, 1); err != nil {
		t.Fatal(err)
	}
	srv.client(t).FlushAll(ctx(t))
	if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: update(2)}}); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("append after the reset: %v", err)
	}
	_, st, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Checkpoint) != 1 || string(st.Checkpoint[0]) != string(u) || st.Seq != 0 {
		t.Fatalf("join after the reset: %d checkpoint updates, seq %d", len(st.Checkpoint), st.Seq)
	}
}

// The join refuses a room whose stream lacks batches its metadata counts,
// instead of serving part of it.
func TestJoinRefusesPartialState(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{}).ForDir(t.TempDir())
	r, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Update: update(uint64(i + 1))}}); err != nil {
			t.Fatal(err)
		}
	}
	srv.client(t).XDel(ctx(t), "wiredb:{doc}:log", "2-0")
	if _, _, err := a.Join(ctx(t), "doc", &sink{}); err == nil || !strings.Contains(err.Error(), "lacks batch 2") {
		t.Fatalf("join of a room with a hole: %v", err)
	}
	// A checkpoint named in meta but gone from the directory.
	srv.client(t).HSet(ctx(t), "wiredb:{doc}:meta", "cp", "doc@00000000000000000002-00000000.y", "cpseq", "2")
	srv.client(t).XTrimMinID(ctx(t), "wiredb:{doc}:log", "3-0")
	if _, _, err := a.Join(ctx(t), "doc", &sink{}); err == nil || !strings.Contains(err.Error(), "checkpoint file missing") {
		t.Fatalf("join with a missing checkpoint: %v", err)
	}
}

func TestAwarenessCrossesAndIsKeptForJoiners(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := newTestRedis(t, srv, "a", Options{}).ForDir(dir)
	b := newTestRedis(t, srv, "b", Options{}).ForDir(dir)
	ra, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	var sb sink
	if _, _, err := b.Join(ctx(t), "doc", &sb); err != nil {
		t.Fatal(err)
	}
	e := yproto.AwarenessEntry{ClientID: 42, Clock: 3, State: []byte(`{"user":"ann"}`)}
	if err := ra.PublishAwareness(ctx(t), []yproto.AwarenessEntry{e}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to get a's awareness", func() bool { sb.mu.Lock(); defer sb.mu.Unlock(); return len(sb.awareness) == 1 })
	if got := sb.awareness[0][0]; got.ClientID != 42 || string(got.State) != string(e.State) {
		t.Fatalf("b got %+v", got)
	}
	c := newTestRedis(t, srv, "c", Options{}).ForDir(dir)
	_, st, err := c.Join(ctx(t), "doc", &sink{})
	if err != nil || len(st.Awareness) != 1 || st.Awareness[0].ClientID != 42 {
		t.Fatalf("joiner's awareness: %+v, %v", st.Awareness, err)
	}
	// A removal deletes it for later joiners.
	if err := ra.PublishAwareness(ctx(t), []yproto.AwarenessEntry{{ClientID: 42, Clock: 3, State: []byte("null")}}); err != nil {
		t.Fatal(err)
	}
	_, st, err = c.Join(ctx(t), "doc", &sink{})
	if err != nil || len(st.Awareness) != 0 {
		t.Fatalf("joiner's awareness after the removal: %+v, %v", st.Awareness, err)
	}
}

func TestDecodeBatchMessageRefusesGarbage(t *testing.T) {
	for _, p := range []string{"U", "Ux a\n", "U1 a\n5 9\nabc", "U1 a\nx 1\na", "U1 a\n1 -1\n"} {
		if _, err := decodeBatchMessage(p); err == nil {
			t.Errorf("%q decoded", p)
		}
	}
	b, err := decodeBatchMessage("U7 inst\n3 2\nab4 0\n")
	if err != nil || b.Seq != 7 || b.Origin != "inst" || len(b.Updates) != 2 || string(b.Updates[0].Update) != "ab" || b.Updates[1].Conn != 4 {
		t.Fatalf("%+v %v", b, err)
	}
}

// The published format is what the append script writes: check the script
// against the decoder with an update holding the separators.
func TestPublishedBatchRoundTrips(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{}).ForDir(t.TempDir())
	rc := srv.client(t)
	ps := rc.Subscribe(ctx(t), "wiredb:{doc}:ch")
	defer ps.Close()
	if _, err := ps.Receive(ctx(t)); err != nil {
		t.Fatal(err)
	}
	r, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	odd := []byte("a b\n7 1\nx\x00U")
	if _, err := r.Append(ctx(t), []roomhub.SharedUpdate{{Conn: 1, Update: odd}, {Conn: 2, Update: update(1)}}); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBatchMessage(msg.Payload)
	if err != nil || len(b.Updates) != 2 || string(b.Updates[0].Update) != string(odd) {
		t.Fatalf("%+v %v", b, err)
	}
}

// A repair that reads the stream to its end while appends go on never
// takes a batch appended after its read for a trimmed one.
func TestRangeDuringAppendsIsNeverTrimmed(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{}).ForDir(t.TempDir())
	r, _, err := a.Join(ctx(t), "doc", &sink{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 400 {
			r.Append(context.Background(), []roomhub.SharedUpdate{{Update: update(uint64(i + 1))}})
		}
	}()
	ranges := 0
	for after := uint64(0); ; ranges++ {
		select {
		case <-done:
			if ranges < 10 {
				t.Logf("only %d ranges overlapped the appends", ranges)
			}
			return
		default:
		}
		bs, err := r.Range(ctx(t), after)
		if err != nil {
			t.Fatalf("range after %d, nothing trimmed: %v", after, err)
		}
		if len(bs) > 0 {
			after = bs[len(bs)-1].Seq
		}
	}
}

// The subscription stays up while Redis does: no read deadline left over
// from connecting ends it (a regression once dropped it every Timeout).
func TestSubscriptionOutlivesTheTimeout(t *testing.T) {
	srv := startRedis(t)
	a := newTestRedis(t, srv, "a", Options{Timeout: 300 * time.Millisecond}).ForDir(t.TempDir())
	if _, _, err := a.Join(ctx(t), "doc", &sink{}); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	session := a.session
	a.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := a.Healthy(); err != nil {
			t.Fatalf("unhealthy while Redis is fine: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.session != session {
		t.Fatalf("the subscription was made anew %d times in 2s, with Redis up", a.session-session)
	}
}
