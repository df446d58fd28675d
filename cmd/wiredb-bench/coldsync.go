package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// coldsync: put a big document into a room, then measure how long a new client takes from
// connect to a complete sync.
//
// Complete means: the state vector of what the client has received (the step2 and
// anything after it), computed by parsing the structs (yupdate.go), covers the
// document's state vector, as Yjs computed it when it generated the list (index file;
// the Go parser reproduces it on load). Every insert of every client has then arrived.
// (Deletes of existing content are not counted: a step2 carries the whole delete set in
// one piece, so a step2 with every struct but a missing delete set would be a broken
// server, not a slow one.) The result also says whether the step2 alone was complete
// (step2_complete), and its size.
//
// Loading: a writer sends the update list, as fast as a receiver (the monitor) gets it,
// at most -window updates ahead; done when the monitor's state vector covers the
// document's. Both stay connected during the joins, so servers that unload an empty
// room (Hocuspocus) keep it in memory. -join-only skips loading (the room must exist,
// e.g. on disk after a restart) and measures the joins only.

type joinSink struct {
	want     map[uint64]uint64
	sv       svSink
	t0       int64
	step2At  int64
	step2Len int
	step2OK  bool
	doneAt   atomic.Int64
	done     chan struct{}
	once     sync.Once
}

func (j *joinSink) onMessage(cl *client, m *message, _ []byte, now int64) {
	if m.typ != msgSync || (m.sub != syncStep2 && m.sub != syncUpdate) {
		return
	}
	if err := scanStructs(m.payload, &j.sv); err != nil {
		cl.bad.Add(1)
		return
	}
	if m.sub == syncStep2 && j.step2At == 0 {
		j.step2At = now
		j.step2Len = len(m.payload)
		j.step2OK = covers(j.sv.sv, j.want)
	}
	if covers(j.sv.sv, j.want) {
		j.once.Do(func() {
			j.doneAt.Store(now)
			close(j.done)
		})
	}
}

// monitorSink tracks the state vector a receiver has, for the load's window.
type monitorSink struct {
	mu   sync.Mutex
	sv   svSink
	wake chan struct{}
}

func (m *monitorSink) onMessage(cl *client, msg *message, _ []byte, _ int64) {
	if msg.typ != msgSync || (msg.sub != syncStep2 && msg.sub != syncUpdate) {
		return
	}
	m.mu.Lock()
	err := scanStructs(msg.payload, &m.sv)
	m.mu.Unlock()
	if err != nil {
		cl.bad.Add(1)
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *monitorSink) has(need [][2]uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range need {
		if m.sv.sv[n[0]] < n[1] {
			return false
		}
	}
	return true
}

func (m *monitorSink) covers(want map[uint64]uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return covers(m.sv.sv, want)
}

type coldConfig struct {
	room      string
	loadMode  string // list | merged
	joins     int
	joinOnly  bool
	window    int
	stall     time.Duration
	loadLimit time.Duration
	joinLimit time.Duration
}

func runColdSync(ctx context.Context, o *options, doc *document, cfg coldConfig, res result) error {
	f := newFramer(o.proto, cfg.room)
	// Several servers (a cluster): the document is loaded through the first; the joins go
	// round-robin to the others, so that the first join on each is on a server that never
	// had the room (it reads the shared checkpoint and log). With -join-only they go
	// round-robin to all of them.
	targets := o.urls
	if len(o.urls) > 1 && !cfg.joinOnly {
		targets = o.urls[1:]
	}
	res["doc"] = doc.name
	res["doc_updates"] = doc.updates.len()
	res["doc_list_bytes"] = doc.updates.prefix(doc.updates.len())
	res["doc_clients"] = len(doc.sv)
	res["room"] = cfg.room

	var keep []*client
	defer func() { closeAll(keep) }()
	if !cfg.joinOnly {
		probe := startProbe(o, []string{cfg.room})
		mon := &monitorSink{sv: svSink{sv: map[uint64]uint64{}}, wake: make(chan struct{}, 1)}
		cls, err := dialMany(ctx, 2, 2, func(int) (string, string, *framer) { return o.url, cfg.room, f },
			func(i int) msgHandler {
				if i == 1 {
					return mon
				}
				return nil
			}, o.connectTimeout)
		if err != nil {
			probe.finish()
			return err
		}
		keep = cls
		writer := cls[0]
		t0 := time.Now()
		if err := loadDoc(ctx, writer, f, doc, mon, cfg); err != nil {
			probe.finish()
			return fmt.Errorf("loading %s: %w", doc.name, err)
		}
		// wait until the monitor has everything
		limit := time.NewTimer(cfg.loadLimit)
		for !mon.covers(doc.sv) {
			select {
			case <-mon.wake:
			case <-limit.C:
				probe.finish()
				return fmt.Errorf("loading %s: the receiver does not have the whole document after %v", doc.name, cfg.loadLimit)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		limit.Stop()
		loadS := time.Since(t0).Seconds()
		p := probe.finish()
		res["load_mode"] = cfg.loadMode
		res["load_s"] = round3(loadS)
		res["load_updates_per_s"] = round3(float64(doc.updates.len()) / loadS)
		res["load_server_cpu_s"] = p["server_cpu_s"]
		res["rss_loaded_mb"] = p["rss_end_mb"]
		for _, k := range []string{"redis_cpu_s", "redis_used_memory_mb_end", "xlen_max", "xlen_end_max"} {
			if v, ok := p[k]; ok {
				res["load_"+k] = v
			}
		}
		fmt.Fprintf(os.Stderr, "  %s loaded (%s) in %.2f s\n", doc.name, cfg.loadMode, loadS)
	}

	probe := startProbe(o, []string{cfg.room})
	var joins []float64
	var joinServer []int
	var fresh []float64 // multi: the first join on each server
	var warm []float64  // the joins on a server that had the room (all of them with one URL, unless -join-only)
	seen := map[int]bool{}
	var firstStep2OK bool
	var step2Bytes int
	var connectMS []float64
	for i := 0; i < cfg.joins && ctx.Err() == nil; i++ {
		j := &joinSink{want: doc.sv, sv: svSink{sv: map[uint64]uint64{}}, done: make(chan struct{})}
		t0 := nanotime()
		ti := i % len(targets)
		dctx, cancel := context.WithTimeout(ctx, cfg.joinLimit)
		cl, err := dial(dctx, dialURL(f.proto, targets[ti], cfg.room), f, j)
		cancel()
		if err != nil {
			probe.finish()
			return fmt.Errorf("join %d: %w", i+1, err)
		}
		tConn := nanotime()
		if err := cl.start(); err != nil {
			cl.close()
			probe.finish()
			return fmt.Errorf("join %d: %w", i+1, err)
		}
		timer := time.NewTimer(cfg.joinLimit)
		why := ""
		select {
		case <-j.done:
		case <-cl.done:
			why = fmt.Sprintf("the connection ended (%v)", cl.readErr)
		case <-timer.C:
			why = fmt.Sprintf("not within %v", cfg.joinLimit)
		}
		timer.Stop()
		doneAt := j.doneAt.Load()
		cl.close()
		<-cl.done
		if doneAt == 0 {
			probe.finish()
			step2 := "no step2"
			if j.step2At != 0 {
				step2 = fmt.Sprintf("a step2 of %d bytes that does not cover the document", j.step2Len)
			}
			return fmt.Errorf("join %d: no complete sync: %s; got %s", i+1, why, step2)
		}
		ms := float64(doneAt-t0) / 1e6
		joins = append(joins, round3(ms))
		server := ti
		if len(targets) < len(o.urls) {
			server++ // targets are o.urls[1:]
		}
		joinServer = append(joinServer, server)
		if !seen[server] {
			seen[server] = true
			fresh = append(fresh, round3(ms))
			if len(o.urls) == 1 && !cfg.joinOnly {
				warm = append(warm, round3(ms))
			}
		} else {
			warm = append(warm, round3(ms))
		}
		connectMS = append(connectMS, round3(float64(tConn-t0)/1e6))
		if i == 0 {
			firstStep2OK = j.step2OK
			step2Bytes = j.step2Len
		}
		fmt.Fprintf(os.Stderr, "  join %d (server %d): complete sync in %.1f ms (connect %.1f ms, step2 %d bytes, step2 alone complete: %v)\n", i+1, server, ms, float64(tConn-t0)/1e6, j.step2Len, j.step2OK)
		time.Sleep(100 * time.Millisecond)
	}
	p := probe.finish()
	res["joins_ms"] = joins
	res["connect_ms"] = connectMS
	res["join_server_cpu_s"] = p["server_cpu_s"]
	for _, k := range []string{"redis_cpu_s", "redis_used_memory_mb_end", "xlen_end_max", "redis_commands", "server_cpu_s_each"} {
		if v, ok := p[k]; ok {
			res["join_"+k] = v
		}
	}
	if len(warm) > 0 {
		res["warm_joins_ms"] = warm
		res["warm_join_median_ms"] = medianOf(warm)
	}
	if len(o.urls) > 1 {
		res["join_servers"] = joinServer
		res["fresh_joins_ms"] = fresh // the first join on each server
		if len(fresh) > 0 {
			res["fresh_join_median_ms"] = medianOf(fresh)
		}
	}
	res["rss_end_mb"] = p["rss_end_mb"]
	res["rss_peak_mb"] = p["rss_peak_mb"]
	res["step2_bytes"] = step2Bytes
	res["step2_complete"] = firstStep2OK
	if len(joins) > 0 {
		res["first_join_ms"] = joins[0]
		best, sum := joins[0], 0.0
		for _, x := range joins {
			best = min(best, x)
			sum += x
		}
		res["best_join_ms"] = best
		res["mean_join_ms"] = round3(sum / float64(len(joins)))
		// the median of the joins
		s := append([]float64(nil), joins...)
		for a := 1; a < len(s); a++ {
			for b := a; b > 0 && s[b] < s[b-1]; b-- {
				s[b], s[b-1] = s[b-1], s[b]
			}
		}
		res["median_join_ms"] = s[len(s)/2]
	}
	if len(joins) < cfg.joins {
		return fmt.Errorf("%d of %d joins done", len(joins), cfg.joins)
	}
	return nil
}

// loadDoc sends the document: the whole list, windowed against the monitor, or the
// merged update as one update message.
func loadDoc(ctx context.Context, w *client, f *framer, doc *document, mon *monitorSink, cfg coldConfig) error {
	if cfg.loadMode == "merged" {
		if doc.merged == nil {
			return fmt.Errorf("%s has no merged update", doc.name)
		}
		return w.send(f.update(nil, doc.merged))
	}
	buf := make([]byte, 0, 4096)
	acked := 0 // updates the monitor has, contiguous from 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n := doc.updates.len()
	for i := 0; i < n; i++ {
		for i-acked >= cfg.window {
			for acked < i && mon.has(doc.needs(acked)) {
				acked++
			}
			if i-acked < cfg.window {
				break
			}
			timer.Reset(cfg.stall)
			select {
			case <-mon.wake:
			case <-timer.C:
				for acked < i && mon.has(doc.needs(acked)) {
					acked++
				}
				if i-acked >= cfg.window {
					return fmt.Errorf("%w for %v (sent %d of %d, the monitor has %d)", errStalled, cfg.stall, i, n, acked)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		buf = f.update(buf[:0], doc.updates.at(i))
		if err := w.send(buf); err != nil {
			return err
		}
	}
	return nil
}

// runColdSyncRepeat runs the whole coldsync (load, then joins; or the joins only) in n
// rooms, <room>-1 ... <room>-n, one after the other, and sums it up: a first join is one
// sample per room, too few in one room on a noisy machine. first_join_ms is the median
// of the rooms' first joins (first_joins_ms lists them), fresh_joins_ms every room's
// joins on servers that did not have the room, median_join_ms the median of every join;
// the rest (step2 size, ...) is the first room's.
func runColdSyncRepeat(ctx context.Context, o *options, doc *document, cfg coldConfig, n int, res result) error {
	var firsts, fresh, warm, all, loads []float64
	var firstErr error
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		c := cfg
		c.room = fmt.Sprintf("%s-%d", cfg.room, i)
		r := result{}
		err := runColdSync(ctx, o, doc, c, r)
		if i == 1 {
			res.merge(r)
		}
		if err != nil {
			firstErr = fmt.Errorf("room %s: %w", c.room, err)
			break
		}
		if v, ok := r["first_join_ms"].(float64); ok {
			firsts = append(firsts, v)
		}
		if v, ok := r["fresh_joins_ms"].([]float64); ok {
			fresh = append(fresh, v...)
		}
		if v, ok := r["warm_joins_ms"].([]float64); ok {
			warm = append(warm, v...)
		}
		if v, ok := r["joins_ms"].([]float64); ok {
			all = append(all, v...)
		}
		if v, ok := r["load_s"].(float64); ok {
			loads = append(loads, v)
		}
	}
	res["repeat"] = n
	res["room"] = cfg.room + "-*"
	res["first_joins_ms"] = firsts
	res["joins_ms"] = all
	if len(firsts) > 0 {
		res["first_join_ms"] = medianOf(firsts)
	}
	if len(all) > 0 {
		res["median_join_ms"] = medianOf(all)
	}
	if len(fresh) > 0 {
		res["fresh_joins_ms"] = fresh
		res["fresh_join_median_ms"] = medianOf(fresh)
	}
	if len(warm) > 0 {
		res["warm_joins_ms"] = warm
		res["warm_join_median_ms"] = medianOf(warm)
	}
	if len(loads) > 0 {
		res["load_s"] = medianOf(loads)
		res["load_s_each"] = loads
	}
	if firstErr == nil && len(firsts) < n {
		firstErr = fmt.Errorf("%d of %d rooms done", len(firsts), n)
	}
	return firstErr
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return round3((s[len(s)/2-1] + s[len(s)/2]) / 2)
}
