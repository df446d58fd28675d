package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// hijackRecorder is a ResponseWriter that hijacks to conn, with buffered
// already read into the returned bufio.Reader, as net/http does with bytes
// that arrived behind the request.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn     net.Conn
	buffered []byte
	err      error
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h.err != nil {
		return nil, nil, h.err
	}
	br := bufio.NewReader(bytes.NewReader(h.buffered))
	if _, err := br.Peek(len(h.buffered)); err != nil {
		return nil, nil, err
	}
	return h.conn, bufio.NewReadWriter(br, bufio.NewWriter(h.conn)), nil
}

// unwrapOnly is a middleware wrapper that, like Caddy's, reaches the
// Hijacker only through Unwrap.
type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// hijackGuarded wraps a hijackRecorder over one end of a net.Pipe in g and
// hijacks it; it returns the guarded connection, its reader and the peer.
func hijackGuarded(t *testing.T, g *Guard, buffered []byte) (net.Conn, *bufio.Reader, net.Conn) {
	t.Helper()
	server, peer := net.Pipe()
	t.Cleanup(func() {
		server.Close()
		peer.Close()
	})
	w := g.Wrap(unwrapOnly{&hijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: server, buffered: buffered}})
	hj, ok := w.(http.Hijacker)
	if !ok {
		t.Fatalf("Wrap returned %T, not an http.Hijacker", w)
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	if n := brw.Reader.Buffered(); n != 0 {
		t.Fatalf("hijacked reader has %d bytes buffered outside the guard", n)
	}
	return c, brw.Reader, peer
}

// writeChunks writes data to w in random chunks, then closes w if close is
// set. It runs on its own goroutine; errors go to errc.
func writeChunks(w net.Conn, data []byte, seed uint64, close bool, errc chan<- error) {
	r := rand.New(rand.NewPCG(seed, 1))
	for len(data) > 0 {
		k := min(len(data), 1+r.IntN(3000))
		if _, err := w.Write(data[:k]); err != nil {
			errc <- err
			return
		}
		data = data[k:]
	}
	if close {
		errc <- w.Close()
		return
	}
	errc <- nil
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestWrapNotHijackable(t *testing.T) {
	t.Parallel()
	g := NewGuard(10)
	rec := httptest.NewRecorder()
	if got := g.Wrap(rec); got != http.ResponseWriter(rec) {
		t.Errorf("Wrap of a non-Hijacker returned %T, want the writer itself", got)
	}
	u := unwrapOnly{rec}
	if got := g.Wrap(u); got != http.ResponseWriter(u) {
		t.Errorf("Wrap of a wrapper of a non-Hijacker returned %T, want the writer itself", got)
	}
}

func TestWrapHijackError(t *testing.T) {
	t.Parallel()
	want := errors.New("no hijack today")
	w := NewGuard(10).Wrap(&hijackRecorder{ResponseRecorder: httptest.NewRecorder(), err: want})
	if _, _, err := w.(http.Hijacker).Hijack(); !errors.Is(err, want) {
		t.Errorf("Hijack error = %v, want %v", err, want)
	}
	if uw, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok || uw.Unwrap() == nil {
		t.Errorf("wrapped writer does not unwrap")
	}
}

// TestConnPassThrough checks that traffic within the limit reaches the reader
// byte for byte, whether it was buffered before the hijack or not.
func TestConnPassThrough(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	var stream []byte
	for _, part := range [][]byte{
		frame(true, opBinary, randomBytes(r, 10)),
		frame(false, opText, randomBytes(r, 300)),
		frame(true, 0x9, randomBytes(r, 125)),
		frame(false, opContinuation, randomBytes(r, 70000)),
		frame(true, 0xA, nil),
		frame(true, opContinuation, randomBytes(r, 29700)), // 100000 in all
		frame(true, opBinary, randomBytes(r, 100000)),
		frame(true, opBinary, nil),
		headerEnc(true, opBinary, false, 3, 64), {1, 2, 3},
	} {
		stream = append(stream, part...)
	}
	for _, buffered := range []int{0, 1, 9, 4096} {
		g := NewGuard(100000)
		c, br, peer := hijackGuarded(t, g, stream[:buffered])
		errc := make(chan error, 1)
		go writeChunks(peer, stream[buffered:], uint64(buffered), true, errc)
		got, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("buffered %d: ReadAll: %v", buffered, err)
		}
		if !bytes.Equal(got, stream) {
			t.Fatalf("buffered %d: read %d bytes that differ from the %d sent", buffered, len(got), len(stream))
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		select {
		case <-g.TooBig():
			t.Fatalf("buffered %d: guard tripped, announced %d", buffered, g.Announced())
		default:
		}
		c.Close()
	}
}

// TestConnTrip checks what the reader sees once a header announces too much:
// the bytes before the header's last length byte, then a read that blocks
// until the connection is closed, by this side or the peer, and fails with
// ErrTooBig.
func TestConnTrip(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	good := cat(frame(true, opText, []byte("hello")), frame(false, opBinary, make([]byte, limit-1)))
	huge := cat(headerEnc(true, opBinary, true, 1<<40, 64), make([]byte, 10))
	over := cat(headerEnc(true, opContinuation, true, 2, 7), []byte{1, 2})
	small := cat(frame(true, opText, []byte("hello")), frame(false, opBinary, make([]byte, 10)), over)
	tests := []struct {
		name      string
		limit     int64
		stream    []byte
		buffered  int   // bytes in the server's buffer at hijack time
		delivered int   // bytes the reader gets
		announced int64 // the announced total
		peerClose bool  // the peer closes rather than this side
		byteWise  bool  // the peer writes a byte at a time
	}{
		{"huge header from the network", limit, cat(good, huge), 0, len(good) + 9, 1 << 40, false, false},
		{"huge header, peer closes", limit, cat(good, huge), 0, len(good) + 9, 1 << 40, true, false},
		{"huge header a byte at a time", limit, cat(good[:11], huge), 0, 11 + 9, 1 << 40, false, true},
		{"huge header buffered before the hijack", limit, huge, len(huge), 9, 1 << 40, false, false},
		{"huge header split by the hijack", limit, huge, 4, 9, 1 << 40, true, false},
		{"fragment over the limit", limit, cat(good, over), 0, len(good) + 1, limit + 1, false, false},
		{"fragment over the limit, buffered", 11, small, 30, 11 + 16 + 1, 12, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewGuard(tt.limit)
			c, br, peer := hijackGuarded(t, g, tt.stream[:tt.buffered])
			type result struct {
				data []byte
				err  error
			}
			readc := make(chan result, 1)
			go func() {
				data, err := io.ReadAll(br)
				readc <- result{data, err}
			}()
			writec := make(chan error, 1)
			go func() {
				rest := tt.stream[tt.buffered:]
				if !tt.byteWise {
					writeChunks(peer, rest, 1, false, writec)
					return
				}
				for i := range rest {
					if _, err := peer.Write(rest[i : i+1]); err != nil {
						writec <- err
						return
					}
				}
				writec <- nil
			}()

			select {
			case <-g.TooBig():
			case <-time.After(5 * time.Second):
				t.Fatal("guard did not trip")
			}
			if got := g.Announced(); got != tt.announced {
				t.Errorf("Announced() = %d, want %d", got, tt.announced)
			}
			// The reader drains what the peer still sends, so the writer
			// finishes, but it stays blocked until the connection closes.
			if err := <-writec; err != nil {
				t.Fatalf("peer write: %v", err)
			}
			select {
			case res := <-readc:
				t.Fatalf("read returned before the connection closed: %d bytes, %v", len(res.data), res.err)
			case <-time.After(50 * time.Millisecond):
			}
			if tt.peerClose {
				peer.Close()
			} else {
				c.Close()
			}
			var res result
			select {
			case res = <-readc:
			case <-time.After(5 * time.Second):
				t.Fatal("read still blocked after the connection closed")
			}
			if !errors.Is(res.err, ErrTooBig) || !errors.Is(res.err, net.ErrClosed) {
				t.Errorf("read error = %v, want ErrTooBig wrapping net.ErrClosed", res.err)
			}
			if !bytes.Equal(res.data, tt.stream[:tt.delivered]) {
				t.Errorf("reader got %d bytes, want the first %d of the stream", len(res.data), tt.delivered)
			}
			// Later reads keep failing.
			if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrTooBig) {
				t.Errorf("read after close = %v, want ErrTooBig", err)
			}
			if _, err := c.Read(nil); !errors.Is(err, ErrTooBig) {
				t.Errorf("empty read after close = %v, want ErrTooBig", err)
			}
		})
	}
}

func BenchmarkConnRead(b *testing.B) {
	var stream []byte
	for range 256 {
		stream = append(stream, frame(true, opBinary, make([]byte, 4000))...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	buf := make([]byte, 4096)
	for b.Loop() {
		c := &conn{Conn: &readerConn{Reader: bytes.NewReader(stream)}, g: NewGuard(1 << 20), p: newParser(1 << 20)}
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	}
}

// readerConn is a net.Conn that reads from a Reader; for benchmarks.
type readerConn struct {
	net.Conn
	io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }
