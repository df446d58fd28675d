package caddymodule_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/coder/websocket"
	"golang.org/x/net/http2"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// Issue 18's benchmark: one client's rooms over one HTTP/2 connection (one
// extended CONNECT stream each) against one HTTP/1.1 connection per room.
// The server is the in-process Caddy of caddytest, over TLS with a
// certificate of its local CA, as in TestWebSocketOverHTTP2AndHTTP3; the
// clients run in the same process (BenchmarkRooms50) or in a child process
// (BenchmarkIdleWebSockets, so that the server's memory is measured alone).
//
//	go test -run XXX -bench 'Rooms50|IdleWebSockets' -benchtime 3x ./caddymodule

const (
	benchRooms     = 50  // rooms opened at once by one client
	benchKeystroke = 800 // updates its writer sends to each room in the relay phase (under compact_records' 1,000: no compaction)
	idleSockets    = 500 // WebSockets held by the idle benchmark
	idleRooms      = 25  // rooms they spread over (20 each, as bench/run.sh's 2,000 over 100)
	h2StreamsMax   = 250 // Go's HTTP/2 server's default MAX_CONCURRENT_STREAMS (Caddy keeps it)
)

// benchServer loads a site serving rooms over TLS on 127.0.0.1:9443 into
// the in-process Caddy, and returns its local CA's root certificate. Rooms
// unload (and compact: fsyncs) idle after their last client leaves.
func benchServer(b testing.TB, idle time.Duration) (*x509.CertPool, string) {
	tester := caddytest.NewTester(b)
	tester.InitServer(fmt.Sprintf(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
		default_sni 127.0.0.1
	}
	https://127.0.0.1:9443 {
		tls internal
		wiredb /rooms/* {
			data_dir %s
			room_idle_timeout %s
		}
		respond "next handler" 200
	}`, b.TempDir(), idle), "caddyfile")
	if b.Failed() {
		b.FailNow()
	}
	return localRoots(b)
}

// benchClient is one client's WebSockets: over HTTP/1.1 (coder/websocket,
// one connection each) or over HTTP/2 (x/net's Transport, which opens one
// connection for up to the server's stream limit). Both resume TLS sessions
// from cache, as a browser does.
type benchClient struct {
	proto string
	h1    *http.Client
	h2    *http2.Transport

	mu    sync.Mutex
	conns []net.Conn // every connection dialed, closed by close
}

func newBenchClient(proto string, roots *x509.CertPool, cache tls.ClientSessionCache) *benchClient {
	c := &benchClient{proto: proto}
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", ClientSessionCache: cache}
	switch proto {
	case "h1":
		cfg.NextProtos = []string{"http/1.1"}
		c.h1 = &http.Client{Transport: &http.Transport{
			TLSClientConfig: cfg,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				return c.keep(conn, err)
			},
		}}
	case "h2":
		c.h2 = &http2.Transport{
			TLSClientConfig: cfg,
			DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
				conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
				return c.keep(conn, err)
			},
		}
	default:
		panic(proto)
	}
	return c
}

func (c *benchClient) keep(conn net.Conn, err error) (net.Conn, error) {
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

// dials is how many connections the client has opened.
func (c *benchClient) dials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// close closes every connection: whatever still waits on one ends.
func (c *benchClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// roomConn is a joined room's WebSocket.
type roomConn struct {
	ws *websocket.Conn // over HTTP/1.1
	st *h2Stream       // over HTTP/2
}

// join opens a WebSocket to room, sends sync step 1 and waits for the
// server's sync step 2: the join latency is from the dial (or CONNECT) to
// there.
func (c *benchClient) join(tb testing.TB, ctx context.Context, room string) (*roomConn, time.Duration, error) {
	start := time.Now()
	step1 := yproto.AppendSyncStep1(nil, []byte{0})
	isStep2 := func(m yproto.Message) bool { return m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2 }
	if c.h2 != nil {
		st := dialStream(tb, c.h2, "https://127.0.0.1:9443/rooms/"+room)
		st.send(tb, step1)
		if _, ce := st.nextMessage(tb, isStep2); ce != nil {
			return nil, 0, fmt.Errorf("room %s closed at its join: %v", room, ce)
		}
		return &roomConn{st: st}, time.Since(start), nil
	}
	ws, _, err := websocket.Dial(ctx, "wss://127.0.0.1:9443/rooms/"+room, &websocket.DialOptions{HTTPClient: c.h1})
	if err != nil {
		return nil, 0, err
	}
	rc := &roomConn{ws: ws}
	if err := ws.Write(ctx, websocket.MessageBinary, step1); err != nil {
		ws.CloseNow()
		return nil, 0, err
	}
	for {
		b, err := rc.read()
		if err != nil {
			ws.CloseNow()
			return nil, 0, err
		}
		if m, err := yproto.DecodeMessage(b); err == nil && isStep2(m) {
			return rc, time.Since(start), nil
		}
	}
}

// send and read carry no deadline of their own (a context per message is
// client work that only one of the two sides would do); a stuck one ends
// when its client's connections are closed.
func (rc *roomConn) send(tb testing.TB, msg []byte) error {
	if rc.st != nil {
		rc.st.send(tb, msg)
		return nil
	}
	return rc.ws.Write(context.Background(), websocket.MessageBinary, msg)
}

// read returns the next binary message.
func (rc *roomConn) read() ([]byte, error) {
	if rc.ws != nil {
		_, b, err := rc.ws.Read(context.Background())
		return b, err
	}
	for {
		op, p, err := rc.st.next()
		switch {
		case err != nil:
			return nil, err
		case op == 8:
			return nil, fmt.Errorf("closed by the server: % x", p)
		case op == 2:
			return p, nil
		}
	}
}

func (rc *roomConn) close() {
	if rc.ws != nil {
		rc.ws.CloseNow()
		return
	}
	rc.st.out.Close()
	rc.st.resp.Body.Close()
}

// keystroke is one typed character as Yjs encodes it (roomhub's
// typingUpdate): client types ch at clock, after its own previous one, in
// the root text "t".
func keystroke(client, clock uint64, ch byte) []byte {
	u := []byte{1, 1}
	u = yproto.AppendVarUint(u, client)
	u = yproto.AppendVarUint(u, clock)
	if clock == 0 {
		u = append(u, 4, 1)
		u = yproto.AppendVarString(u, "t")
	} else {
		u = append(u, 4|0x80)
		u = yproto.AppendVarUint(u, client)
		u = yproto.AppendVarUint(u, clock-1)
	}
	u = yproto.AppendVarString(u, string([]byte{ch}))
	return append(u, 0)
}

// keystrokeRange is the client, first clock and number of structs of a
// one-client update.
func keystrokeRange(u []byte) (client, clock, n uint64, err error) {
	var v [4]uint64
	for i := range v {
		x, k := binary.Uvarint(u)
		if k <= 0 {
			return 0, 0, 0, fmt.Errorf("not an update: % x", u)
		}
		v[i], u = x, u[k:]
	}
	if v[0] != 1 {
		return 0, 0, 0, fmt.Errorf("an update of %d clients", v[0])
	}
	return v[2], v[3], v[1], nil
}

// tbFatal is a Fatal of goTB.
type tbFatal struct{ msg string }

// goTB lets helpers that call Fatal (dialStream, send, nextMessage) run on
// goroutines of their own: its Fatal panics, and each recovers it as that
// call's error.
type goTB struct{ testing.TB }

func (g goTB) Fatal(args ...any)                 { panic(tbFatal{fmt.Sprint(args...)}) }
func (g goTB) Fatalf(format string, args ...any) { panic(tbFatal{fmt.Sprintf(format, args...)}) }
func (g goTB) FailNow()                          { panic(tbFatal{"FailNow"}) }

// each runs f(0) ... f(n-1) at once and returns the first failure.
func each(tb testing.TB, n int, f func(tb testing.TB, i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for i := range n {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					f, ok := r.(tbFatal)
					if !ok {
						panic(r)
					}
					fail(errors.New(f.msg))
				}
			}()
			if err := f(goTB{tb}, i); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return first
}

var benchRun atomic.Int64 // tells apart the rooms of every iteration

// roomsRound is one iteration of BenchmarkRooms50: a writer client opens
// benchRooms new rooms at once (newJoins: each loads a new room, whose file
// is created and fsynced with its directory), a reader client then joins
// them (loadedJoins: rooms in memory), then in every room the writer types
// benchKeystroke characters as fast as it can and the reader receives them
// (the relay time: from the start to the last reader's last update). The
// writer speaks wproto, the reader rproto; dials is the connections the
// writer opened.
func roomsRound(tb testing.TB, wproto, rproto string, roots *x509.CertPool, cache tls.ClientSessionCache) (newJoins, loadedJoins []time.Duration, relay time.Duration, dials int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writers := newBenchClient(wproto, roots, cache)
	readers := newBenchClient(rproto, roots, cache)
	stop := context.AfterFunc(ctx, func() { writers.close(); readers.close() })
	defer stop()
	defer func() { writers.close(); readers.close() }()
	prefix := fmt.Sprintf("bench-%s-%s-%d", wproto, rproto, benchRun.Add(1))

	w := make([]*roomConn, benchRooms)
	newJoins = make([]time.Duration, benchRooms)
	defer func() {
		for _, rc := range w {
			if rc != nil {
				rc.close()
			}
		}
	}()
	if err := each(tb, benchRooms, func(tb testing.TB, i int) (err error) {
		w[i], newJoins[i], err = writers.join(tb, ctx, fmt.Sprintf("%s-%d", prefix, i))
		return err
	}); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("writers' joins: %w", err)
	}
	dials = writers.dials()
	r := make([]*roomConn, benchRooms)
	loadedJoins = make([]time.Duration, benchRooms)
	defer func() {
		for _, rc := range r {
			if rc != nil {
				rc.close()
			}
		}
	}()
	if err := each(tb, benchRooms, func(tb testing.TB, i int) (err error) {
		r[i], loadedJoins[i], err = readers.join(tb, ctx, fmt.Sprintf("%s-%d", prefix, i))
		return err
	}); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("readers' joins: %w", err)
	}
	// Whatever the server sends the writers is read and dropped (over
	// HTTP/2, unread data would stop the stream at its flow-control window).
	for _, rc := range w {
		go func() {
			for {
				if _, err := rc.read(); err != nil {
					return
				}
			}
		}()
	}

	start := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- each(tb, 2*benchRooms, func(tb testing.TB, j int) error {
			<-start
			room := j % benchRooms
			client := uint64(1000 + room)
			if j < benchRooms {
				var buf []byte
				for k := range uint64(benchKeystroke) {
					buf = yproto.AppendSyncUpdate(buf[:0], keystroke(client, k, byte('a'+k%26)))
					if err := w[room].send(tb, buf); err != nil {
						return fmt.Errorf("room %d, update %d: %w", room, k, err)
					}
				}
				return nil
			}
			var next uint64
			for next < benchKeystroke {
				b, err := r[room].read()
				if err != nil {
					return fmt.Errorf("room %d's reader after %d updates: %w", room, next, err)
				}
				m, err := yproto.DecodeMessage(b)
				if err != nil || m.Type != yproto.MessageSync || m.Sync != yproto.SyncUpdate {
					continue
				}
				c, clock, n, err := keystrokeRange(m.Payload)
				if err != nil {
					return fmt.Errorf("room %d: %w", room, err)
				}
				if c != client || clock != next {
					return fmt.Errorf("room %d: got client %d clock %d, want client %d clock %d", room, c, clock, client, next)
				}
				next += n
			}
			return nil
		})
	}()
	t0 := time.Now()
	close(start)
	if err := <-done; err != nil {
		return nil, nil, 0, 0, fmt.Errorf("relay: %w", err)
	}
	return newJoins, loadedJoins, time.Since(t0), dials, nil
}

// BenchmarkRooms50 opens 50 rooms from one client, at once, over 50
// HTTP/1.1 connections (h1) or over 50 streams of one HTTP/2 connection
// (h2), then the same 50 from a second client of the same protocol, and
// relays 800 keystrokes in each room from the first to the second. It
// reports the join latency from the dial (or CONNECT) to the server's sync
// step 2, of new rooms (new-*) and of rooms in memory (loaded-*): p50 and
// p99 over every room of the run, and the median over iterations of the
// slowest (all50: until all 50 are open); the relay rate; and the
// connections the first client opened per iteration. The last two tell
// the directions apart: writers over h2 and readers over h1, and the
// reverse.
func BenchmarkRooms50(b *testing.B) {
	roots, _ := benchServer(b, time.Minute) // no room unloads (compacts) during the run
	for _, tc := range []struct{ name, w, r string }{
		{"h1", "h1", "h1"}, {"h2", "h2", "h2"},
		{"h2-writers-h1-readers", "h2", "h1"}, {"h1-writers-h2-readers", "h1", "h2"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// A first round, not counted, fills the TLS session cache
			// (every connection after it resumes a session) and warms
			// up both sides.
			cache := tls.NewLRUClientSessionCache(64)
			if _, _, _, _, err := roomsRound(b, tc.w, tc.r, roots, cache); err != nil {
				b.Fatal(err)
			}
			var (
				newJoins, loadedJoins     []time.Duration
				newSlowest, loadedSlowest []time.Duration
				relayed, dials            int
				relay                     time.Duration
			)
			for b.Loop() {
				nj, lj, r, d, err := roomsRound(b, tc.w, tc.r, roots, cache)
				if err != nil {
					b.Fatal(err)
				}
				newJoins, loadedJoins = append(newJoins, nj...), append(loadedJoins, lj...)
				newSlowest, loadedSlowest = append(newSlowest, slices.Max(nj)), append(loadedSlowest, slices.Max(lj))
				relay += r
				relayed += benchRooms * benchKeystroke
				dials += d
			}
			slices.Sort(newJoins)
			slices.Sort(loadedJoins)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(percentile(newJoins, 50)), "new-p50-ms")
			b.ReportMetric(ms(percentile(newJoins, 99)), "new-p99-ms")
			b.ReportMetric(ms(median(newSlowest)), "new-all50-ms")
			b.ReportMetric(ms(percentile(loadedJoins, 50)), "loaded-p50-ms")
			b.ReportMetric(ms(percentile(loadedJoins, 99)), "loaded-p99-ms")
			b.ReportMetric(ms(median(loadedSlowest)), "loaded-all50-ms")
			b.ReportMetric(float64(relayed)/relay.Seconds(), "updates/s")
			b.ReportMetric(float64(dials)/float64(len(newSlowest)), "conns/op")
		})
	}
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// memUse is the process's resident set and Go's heap and stacks in use,
// after a collection that also returns free pages to the OS (so that the
// RSS is what is held, not what the heap has kept to grow into).
type memUse struct{ rss, heap, stack, goroutines int64 }

func measureMem() (memUse, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memUse{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine())}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			m.rss = kb << 10
			return m, err
		}
	}
	return m, errors.New("no VmRSS in /proc/self/status")
}

func (m memUse) sub(o memUse) memUse {
	return memUse{m.rss - o.rss, m.heap - o.heap, m.stack - o.stack, m.goroutines - o.goroutines}
}

// BenchmarkIdleWebSockets measures the server's memory per idle WebSocket:
// 500 of them (over 25 rooms, each joined: sync step 1 sent, step 2
// received) held by a client in a child process, over 500 HTTP/1.1
// connections (h1) or 250 streams on each of 2 HTTP/2 connections (h2: the
// server allows 250 streams per connection). Each iteration measures this
// process, where only Caddy runs, before the child opens them and while it
// holds them; the child measures itself the same way. Reported: the
// medians of the iterations' differences per WebSocket.
func BenchmarkIdleWebSockets(b *testing.B) {
	_, caPEM := benchServer(b, time.Second) // a round's rooms are gone before the next
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, proto := range []string{"h1", "h2"} {
		b.Run(proto, func(b *testing.B) {
			g0 := runtime.NumGoroutine()
			var server, client []memUse
			for b.Loop() {
				// What the previous round left must be gone: its
				// connections' goroutines, and its rooms (1 s idle).
				for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > g0+10 && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(1500 * time.Millisecond)
				before, err := measureMem()
				if err != nil {
					b.Fatal(err)
				}
				c, err := idleClient(exe, proto, caPEM, fmt.Sprintf("idle-%s-%d", proto, benchRun.Add(1)))
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond)
				held, err := measureMem()
				c.stop()
				if err != nil {
					b.Fatal(err)
				}
				server = append(server, held.sub(before))
				client = append(client, c.used)
			}
			per := func(us []memUse, f func(memUse) int64) float64 {
				xs := make([]float64, len(us))
				for i, u := range us {
					xs[i] = float64(f(u)) / idleSockets
				}
				return median(xs)
			}
			b.ReportMetric(per(server, func(m memUse) int64 { return m.rss }), "server-rss-B/ws")
			b.ReportMetric(per(server, func(m memUse) int64 { return m.heap }), "server-heap-B/ws")
			b.ReportMetric(per(server, func(m memUse) int64 { return m.stack }), "server-stack-B/ws")
			b.ReportMetric(per(server, func(m memUse) int64 { return m.goroutines }), "server-goroutines/ws")
			b.ReportMetric(per(client, func(m memUse) int64 { return m.rss }), "client-rss-B/ws")
			b.ReportMetric(per(client, func(m memUse) int64 { return m.heap }), "client-heap-B/ws")
			b.ReportMetric(per(client, func(m memUse) int64 { return m.stack }), "client-stack-B/ws")
		})
	}
}

// idleChild is the client process of BenchmarkIdleWebSockets, holding its
// WebSockets until stop.
type idleChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	used  memUse // the child's own growth
	err   bytes.Buffer
}

// idleClient starts the child (this test binary, running
// TestIdleClientProcess) and waits until it holds its WebSockets.
func idleClient(exe, proto, caPEM, prefix string) (*idleChild, error) {
	c := &idleChild{cmd: exec.Command(exe, "-test.run=^TestIdleClientProcess$", "-test.count=1", "-test.timeout=2m")}
	c.cmd.Env = append(os.Environ(), "WIREDB_IDLE_CLIENT="+proto, "WIREDB_IDLE_PREFIX="+prefix, "WIREDB_IDLE_CA="+caPEM)
	c.cmd.Stderr = &c.err
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				_, err := fmt.Sscan(rest, &c.used.rss, &c.used.heap, &c.used.stack, &c.used.goroutines)
				ready <- err
				io.Copy(io.Discard, stdout)
				return
			}
			fmt.Fprintln(&out, sc.Text())
		}
		ready <- errors.New("the client exited before it was ready")
	}()
	select {
	case err = <-ready:
	case <-time.After(60 * time.Second):
		err = errors.New("the client was not ready within 60 s")
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s client: %v\n%s%s", proto, err, out.String(), c.err.String())
	}
	return c, nil
}

// stop lets the child close its WebSockets and exit (or kills it after
// 30 s).
func (c *idleChild) stop() {
	c.stdin.Close()
	exited := make(chan struct{})
	go func() { c.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-exited
	}
}

// TestIdleClientProcess is BenchmarkIdleWebSockets' client, run by it in a
// child process (skipped otherwise): it opens idleSockets WebSockets over
// WIREDB_IDLE_CLIENT (h1 or h2), prints READY and its own memory growth,
// and holds them until its stdin closes.
func TestIdleClientProcess(t *testing.T) {
	proto := os.Getenv("WIREDB_IDLE_CLIENT")
	if proto == "" {
		t.Skip("the client process of BenchmarkIdleWebSockets")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(os.Getenv("WIREDB_IDLE_CA"))) {
		t.Fatal("no CA in WIREDB_IDLE_CA")
	}
	prefix := os.Getenv("WIREDB_IDLE_PREFIX")
	cache := tls.NewLRUClientSessionCache(64)
	clients := []*benchClient{newBenchClient(proto, roots, cache)}
	if proto == "h2" {
		// Each Transport opens its own connection: 250 streams on each.
		clients = nil
		for range (idleSockets + h2StreamsMax - 1) / h2StreamsMax {
			clients = append(clients, newBenchClient(proto, roots, cache))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		for _, c := range clients {
			c.close()
		}
	})
	defer stop()

	before, err := measureMem()
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*roomConn, 0, idleSockets)
	for i := range idleSockets {
		c := clients[i/h2StreamsMax%len(clients)]
		rc, _, err := c.join(t, ctx, fmt.Sprintf("%s-%d", prefix, i%idleRooms))
		if err != nil {
			t.Fatalf("WebSocket %d: %v", i, err)
		}
		conns = append(conns, rc)
	}
	dials := 0
	for _, c := range clients {
		dials += c.dials()
	}
	if want := map[string]int{"h1": idleSockets, "h2": len(clients)}[proto]; dials != want {
		t.Fatalf("%d connections for %d WebSockets over %s, want %d", dials, idleSockets, proto, want)
	}
	held, err := measureMem()
	if err != nil {
		t.Fatal(err)
	}
	u := held.sub(before)
	fmt.Printf("READY %d %d %d %d\n", u.rss, u.heap, u.stack, u.goroutines)
	io.Copy(io.Discard, os.Stdin)
	for _, rc := range conns {
		rc.close()
	}
	for _, c := range clients {
		c.close()
	}
}
