package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The load engine behind fanout and maxrate: rooms of peers, some of which are writers
// replaying keystroke streams, every peer receiving. A receiver identifies each update it
// gets by the clock ranges of its structs (yupdate.go) -> (writer, seq), and measures its
// latency against the time the writer handed it to the socket.

type loadConfig struct {
	rooms     int
	clients   int // per room, writers included
	writers   int // per room
	receivers int // maxrate: pure receivers (clients = writers + receivers)
	rate      float64
	duration  time.Duration
	window    int // > 0: unpaced, at most window updates beyond what the monitor has seen
	maxPer    int // updates per stream at most (0: the stream's length)
	drain     time.Duration
	stall     time.Duration
}

// A room's streams are numbered 0..; writer w sends streams w, w+W, w+2W, ... one after
// the other (fanout: one each; maxrate: all the data has, so that a fast server does not
// run out). A connection may carry updates of several Yjs clientIDs.
type loadRoom struct {
	name     string
	f        *framer
	writers  int
	streams  []*stream
	streamOf map[uint64]int   // clientID -> stream
	sendAt   [][]atomic.Int64 // [stream][seq] nanotime when handed to the socket; 0 = not yet
	sent     []atomic.Int64   // per stream
	acked    []atomic.Int64   // per stream: updates the monitor has, contiguous from 0
	wake     []chan struct{}  // per writer: the monitor advanced acked of one of its streams
	peers    []*loadPeer
	multi    bool // the peers are on several servers (cluster): latency split by path
}

type loadPeer struct {
	room    *loadRoom
	self    int  // writer index, or -1
	monitor bool // its receipts pace the writers (window mode)
	server  int  // index of the base URL it is connected to
	got     [][]uint64
	h       hist
	hLocal  hist // multi: from a writer on the same server
	hCross  hist // multi: from a writer on another server
	now     int64

	delivered atomic.Int64
	echoes    int64
	dups      int64
	unknown   int64
	lastAt    atomic.Int64
}

func (p *loadPeer) onMessage(cl *client, m *message, _ []byte, now int64) {
	if m.typ != msgSync || (m.sub != syncUpdate && m.sub != syncStep2) {
		return
	}
	p.now = now
	if err := scanStructs(m.payload, p); err != nil {
		cl.bad.Add(1)
	}
}

func (p *loadPeer) addRange(client, start, end uint64) {
	r := p.room
	w, ok := r.streamOf[client]
	if !ok {
		p.unknown++
		return
	}
	s := r.streams[w]
	if end > uint64(len(s.seqOfClock)) || start >= end {
		p.unknown++
		return
	}
	if w%r.writers == p.self {
		// its own update back: Hocuspocus and the y-websocket server send to everyone
		p.echoes += int64(s.seqOfClock[end-1]-s.seqOfClock[start]) + 1
		return
	}
	got := p.got[w]
	n := int64(0)
	for seq := s.seqOfClock[start]; seq <= s.seqOfClock[end-1]; seq++ {
		word, bit := seq>>6, uint64(1)<<(seq&63)
		if got[word]&bit != 0 {
			p.dups++
			continue
		}
		got[word] |= bit
		n++
		lat := p.now - r.sendAt[w][seq].Load()
		p.h.record(lat)
		if r.multi {
			if r.peers[w%r.writers].server == p.server {
				p.hLocal.record(lat)
			} else {
				p.hCross.record(lat)
			}
		}
	}
	if n == 0 {
		return
	}
	p.delivered.Add(n)
	p.lastAt.Store(p.now)
	if p.monitor {
		a := r.acked[w].Load()
		for a < int64(len(r.sendAt[w])) && got[a>>6]&(1<<(a&63)) != 0 {
			a++
		}
		if a != r.acked[w].Load() {
			r.acked[w].Store(a)
			select {
			case r.wake[w%r.writers] <- struct{}{}:
			default:
			}
		}
	}
}

// runLoad connects, runs the writers, drains, and measures. label names the scenario.
func runLoad(ctx context.Context, o *options, cfg loadConfig, streams []*stream, res result) error {
	if cfg.writers > len(streams) {
		return fmt.Errorf("%d writers per room, but the data has %d keystroke streams", cfg.writers, len(streams))
	}
	if cfg.writers < 1 || cfg.clients < cfg.writers || cfg.rooms < 1 {
		return fmt.Errorf("need rooms >= 1 and clients >= writers >= 1")
	}
	// streams per writer: one when paced, as many as the data has when unpaced
	perWriter := 1
	if cfg.window > 0 {
		perWriter = len(streams) / cfg.writers
	}
	nStreams := perWriter * cfg.writers
	maxPer := streams[0].updates.len()
	for _, s := range streams {
		maxPer = min(maxPer, s.updates.len())
	}
	if cfg.maxPer > 0 && cfg.maxPer < maxPer {
		maxPer = cfg.maxPer
	}
	if cfg.window == 0 {
		if want := int(cfg.rate*cfg.duration.Seconds()) + 1; want > maxPer {
			fmt.Fprintf(os.Stderr, "note: %.0f updates/s for %v needs %d updates per writer; the streams have %d: writers stop early\n", cfg.rate, cfg.duration, want, maxPer)
		}
	}
	rooms := make([]*loadRoom, cfg.rooms)
	var peers []*loadPeer
	for r := range rooms {
		name := fmt.Sprintf("%s-%d", o.roomPrefix, r)
		lr := &loadRoom{name: name, f: newFramer(o.proto, name), writers: cfg.writers, streamOf: map[uint64]int{}, multi: len(o.urls) > 1}
		for i := 0; i < nStreams; i++ {
			// different rooms start at different streams, so that clientIDs vary
			s := streams[(r*nStreams+i)%len(streams)]
			if _, dup := lr.streamOf[s.client]; dup {
				return fmt.Errorf("room %d: stream reused", r)
			}
			lr.streamOf[s.client] = i
			lr.streams = append(lr.streams, s)
		}
		lr.sendAt = make([][]atomic.Int64, nStreams)
		for i := range lr.sendAt {
			lr.sendAt[i] = make([]atomic.Int64, maxPer)
		}
		lr.sent = make([]atomic.Int64, nStreams)
		lr.acked = make([]atomic.Int64, nStreams)
		lr.wake = make([]chan struct{}, cfg.writers)
		for w := range lr.wake {
			lr.wake[w] = make(chan struct{}, 1)
		}
		for c := 0; c < cfg.clients; c++ {
			// round-robin over the servers by the peer's number in the whole run
			p := &loadPeer{room: lr, self: -1, server: len(peers) % len(o.urls)}
			if c < cfg.writers {
				p.self = c
			}
			if c == cfg.writers && cfg.window > 0 {
				p.monitor = true
			}
			p.got = make([][]uint64, nStreams)
			for i := range p.got {
				p.got[i] = make([]uint64, (maxPer+63)/64)
			}
			lr.peers = append(lr.peers, p)
			peers = append(peers, p)
		}
		rooms[r] = lr
	}
	if cfg.window > 0 && cfg.clients <= cfg.writers {
		return fmt.Errorf("window mode needs a receiver that does not write")
	}

	t0 := time.Now()
	cls, err := dialMany(ctx, len(peers), o.dialConc, func(i int) (string, string, *framer) {
		p := peers[i]
		return o.urls[p.server], p.room.name, p.room.f
	}, func(i int) msgHandler { return peers[i] }, o.connectTimeout)
	if err != nil {
		return err
	}
	defer closeAll(cls)
	res["connect_s"] = round3(time.Since(t0).Seconds())
	fmt.Fprintf(os.Stderr, "  %d clients in %d rooms connected and synced in %.1f s\n", len(cls), cfg.rooms, time.Since(t0).Seconds())

	// the clients of peers, by room and index
	clientOf := map[*loadPeer]*client{}
	for i, p := range peers {
		clientOf[p] = cls[i]
	}

	roomNames := make([]string, len(rooms))
	for i, lr := range rooms {
		roomNames[i] = lr.name
	}
	probe := startProbe(o, roomNames)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var writeErr error
	var maxLagNS atomic.Int64
	var stalls atomic.Int64
	totalWriters := cfg.rooms * cfg.writers
	start := nanotime() + int64(50*time.Millisecond)
	deadline := start + int64(cfg.duration)
	gi := 0
	for _, lr := range rooms {
		for w := 0; w < cfg.writers; w++ {
			cl := clientOf[lr.peers[w]]
			phase := int64(0)
			if cfg.window == 0 && cfg.rate > 0 {
				// spread the writers over one period, so that they do not all send at once
				phase = int64(float64(time.Second) / cfg.rate * float64(gi) / float64(totalWriters))
			}
			gi++
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				for i := w; i < len(lr.streams) && err == nil && nanotime() < deadline; i += cfg.writers {
					err = writeStream(ctx, cl, lr, w, i, cfg, maxPer, start+phase, deadline, &maxLagNS, &stalls)
				}
				if err != nil {
					errMu.Lock()
					if writeErr == nil {
						writeErr = fmt.Errorf("room %s writer %d: %w", lr.name, w, err)
					}
					errMu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	sendEnd := nanotime()

	// expected deliveries: every update to every other peer of its room
	var expected, sent int64
	for _, lr := range rooms {
		for w := range lr.sent {
			n := lr.sent[w].Load()
			sent += n
			expected += n * int64(len(lr.peers)-1)
		}
	}
	// drain: wait for what is still on its way, bounded
	drainEnd := time.Now().Add(cfg.drain)
	var delivered int64
	for {
		delivered = 0
		for _, p := range peers {
			delivered += p.delivered.Load()
		}
		if delivered >= expected || time.Now().After(drainEnd) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.merge(probe.finish())
	closeAll(cls)

	var h, hLocal, hCross hist
	var echoes, dups, unknown, bad int64
	var lastAt int64
	for _, p := range peers {
		h.merge(&p.h)
		hLocal.merge(&p.hLocal)
		hCross.merge(&p.hCross)
		echoes += p.echoes
		dups += p.dups
		unknown += p.unknown
		lastAt = max(lastAt, p.lastAt.Load())
	}
	for _, cl := range cls {
		bad += cl.bad.Load()
	}
	sendS := float64(sendEnd-start) / 1e9
	spanS := float64(max(lastAt, sendEnd)-start) / 1e9
	res["updates_sent"] = sent
	res["send_s"] = round3(sendS)
	res["updates_per_s"] = round3(float64(sent) / sendS)
	res["deliveries_expected"] = expected
	res["deliveries"] = delivered
	res["missing"] = expected - delivered
	res["complete"] = delivered == expected
	res["deliveries_per_s"] = round3(float64(delivered) / spanS)
	res["latency_ms"] = h.summary()
	if len(o.urls) > 1 {
		res["latency_cross_ms"] = hCross.summary()
		res["latency_local_ms"] = hLocal.summary()
		if h.n > 0 {
			res["cross_fraction"] = round3(float64(hCross.n) / float64(h.n))
		}
	}
	res["echoes"] = echoes
	res["duplicates"] = dups
	res["unknown_ranges"] = unknown
	res["unparsed_messages"] = bad
	if cfg.window == 0 {
		res["max_send_lag_ms"] = round3(float64(maxLagNS.Load()) / 1e6)
	} else {
		res["stalls"] = stalls.Load()
	}
	if cpu, ok := res["server_cpu_s"].(float64); ok && delivered > 0 {
		res["server_cpu_us_per_delivery"] = round3(cpu * 1e6 / float64(delivered))
		res["server_cpu_us_per_update"] = round3(cpu * 1e6 / float64(sent))
		res["server_cpu_util"] = round3(cpu / spanS)
	}
	if rcpu, ok := res["redis_cpu_s"].(float64); ok && delivered > 0 {
		res["redis_cpu_util"] = round3(rcpu / spanS)
		if cpu, ok := res["server_cpu_s"].(float64); ok {
			res["cluster_cpu_us_per_delivery"] = round3((cpu + rcpu) * 1e6 / float64(delivered))
			res["cluster_cpu_us_per_update"] = round3((cpu + rcpu) * 1e6 / float64(sent))
		}
	}
	perThousand(res, sent)
	if writeErr != nil {
		return writeErr
	}
	if delivered != expected {
		return fmt.Errorf("%d of %d deliveries missing after %v of drain", expected-delivered, expected, cfg.drain)
	}
	return nil
}

var errStalled = errors.New("stalled: the monitor saw nothing new")

// writeStream sends stream si on writer w's connection: paced at cfg.rate (from first), or,
// in window mode, as fast as the monitor receives, never more than cfg.window updates of
// the stream ahead of it.
func writeStream(ctx context.Context, cl *client, lr *loadRoom, w, si int, cfg loadConfig, n int, first, deadline int64, maxLag, stalls *atomic.Int64) error {
	s := lr.streams[si]
	buf := make([]byte, 0, 256)
	var period float64
	if cfg.window == 0 {
		period = float64(time.Second) / cfg.rate
	}
	var timer *time.Timer
	if cfg.window > 0 {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for seq := 0; seq < n; seq++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cfg.window == 0 {
			next := first + int64(period*float64(seq))
			if next >= deadline {
				return nil
			}
			if d := next - nanotime(); d > 0 {
				time.Sleep(time.Duration(d))
			}
			if lag := nanotime() - next; lag > maxLag.Load() {
				maxLag.Store(lag) // racy max across writers; good enough for a report
			}
		} else {
			if seq == 0 {
				if d := first - nanotime(); d > 0 {
					time.Sleep(time.Duration(d))
				}
			}
			if nanotime() >= deadline {
				return nil
			}
			for int64(seq)-lr.acked[si].Load() >= int64(cfg.window) {
				timer.Reset(cfg.stall)
				select {
				case <-lr.wake[w]:
				case <-timer.C:
					if int64(seq)-lr.acked[si].Load() >= int64(cfg.window) {
						stalls.Add(1)
						return fmt.Errorf("%w for %v (stream %d: sent %d, monitor has %d)", errStalled, cfg.stall, si, seq, lr.acked[si].Load())
					}
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		buf = lr.f.update(buf[:0], s.updates.at(seq))
		lr.sendAt[si][seq].Store(nanotime())
		if err := cl.send(buf); err != nil {
			return err
		}
		lr.sent[si].Add(1)
	}
	return nil
}
