package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/coder/websocket"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// TestMain runs the package's tests with GODEBUG=http2xconnect=1: Go's
// HTTP/2 server offers extended CONNECT (RFC 8441) only with it, and reads
// it once, at start.
func TestMain(m *testing.M) {
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",http2xconnect=1", ","))
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				os.Exit(exit.ExitCode())
			}
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// h2Stream is a WebSocket over one HTTP/2 extended CONNECT stream, as a
// browser opens it: masked frames out on the request body, the server's
// frames in on the response body.
type h2Stream struct {
	out  *io.PipeWriter
	in   *bufio.Reader
	resp *http.Response
}

// dialStream opens a WebSocket by an extended CONNECT over HTTP/2 (x/net's
// client takes :protocol as a header) or HTTP/3 (quic-go's takes it as
// Proto).
func dialStream(t testing.TB, rt http.RoundTripper, url string) *h2Stream {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodConnect, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	major := 2
	if _, ok := rt.(*http3.Transport); ok {
		major = 3
		req.Proto = "websocket"
	} else {
		req.Header.Set(":protocol", "websocket")
	}
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", "https://127.0.0.1:9443")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != major {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("extended CONNECT %s: %s %s %q", url, resp.Proto, resp.Status, body)
	}
	s := &h2Stream{out: pw, in: bufio.NewReader(resp.Body), resp: resp}
	t.Cleanup(func() { pw.Close(); resp.Body.Close() })
	return s
}

// send writes one masked binary frame (opcode 2), or a frame of another
// opcode announcing length (for the oversize test) with payload.
func (s *h2Stream) frame(t testing.TB, opcode byte, length uint64, payload []byte) {
	t.Helper()
	b := []byte{0x80 | opcode}
	switch {
	case length < 126:
		b = append(b, 0x80|byte(length))
	case length < 1<<16:
		b = append(b, 0x80|126, byte(length>>8), byte(length))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, length)
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	if _, err := s.out.Write(b); err != nil {
		t.Fatalf("writing a frame: %v", err)
	}
}

func (s *h2Stream) send(t testing.TB, msg []byte) { s.frame(t, 2, uint64(len(msg)), msg) }

// next reads the server's next frame: its opcode and payload (frames from
// a server are not masked; these tests use no fragmentation).
func (s *h2Stream) next() (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(s.in, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(s.in, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(s.in, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(s.in, p)
	return h[0] & 0x0f, p, err
}

// nextMessage returns the next y-websocket message matching keep, or the
// close frame's code and reason if the server closes first.
func (s *h2Stream) nextMessage(t testing.TB, keep func(yproto.Message) bool) (yproto.Message, *websocket.CloseError) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		op, p, err := s.next()
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		switch op {
		case 8:
			ce := &websocket.CloseError{}
			if len(p) >= 2 {
				ce.Code, ce.Reason = websocket.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			return yproto.Message{}, ce
		case 2:
			m, err := yproto.DecodeMessage(p)
			if err != nil {
				t.Fatalf("server sent % x: %v", p, err)
			}
			if keep(m) {
				return m, nil
			}
		}
	}
	t.Fatal("no such message within 10 s")
	return yproto.Message{}, nil
}

func isUpdate(m yproto.Message) bool {
	return m.Type == yproto.MessageSync && (m.Sync == yproto.SyncUpdate || m.Sync == yproto.SyncStep2 && len(m.Payload) > 2)
}

// TestWebSocketOverHTTP2AndHTTP3 serves rooms over HTTP/2 extended CONNECT streams
// of one connection beside an HTTP/1.1 client of the same room, on a real
// Caddy over TLS with a certificate of its local CA.
func TestWebSocketOverHTTP2AndHTTP3(t *testing.T) {
	dir := t.TempDir()
	tester := caddytest.NewTester(t)
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
			max_message_size 1KiB
		}
		respond "next handler" 200
	}`, dir), "caddyfile")

	roots, _ := localRoots(t)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}}}
	// x/net's HTTP/2 client, which sends :protocol (net/http's refuses it),
	// and quic-go's HTTP/3 client.
	h2 := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	defer h2.CloseIdleConnections()
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	defer h3.Close()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"HTTP/2", h2}, {"HTTP/3", h3}} {
		t.Run(tc.name, func(t *testing.T) { testStreams(t, h1, tc.rt, "streams-"+tc.name[5:]) })
	}
}

// testStreams runs WebSockets over streams of one connection of rt beside
// an HTTP/1.1 client of the same room.
func testStreams(t *testing.T, h1 *http.Client, h2 http.RoundTripper, room string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "https://127.0.0.1:9443/rooms/" + room

	// An HTTP/1.1 client of the room, and one over HTTP/2.
	ws, _, err := websocket.Dial(ctx, "wss://127.0.0.1:9443/rooms/"+room, &websocket.DialOptions{HTTPClient: h1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{0})); err != nil {
		t.Fatal(err)
	}
	s := dialStream(t, h2, url)
	s.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	s.nextMessage(t, func(m yproto.Message) bool { return m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2 })

	// HTTP/2 to HTTP/1.1, and back.
	hi := []byte{1, 1, 1, 0, 4, 1, 1, 't', 2, 'h', 'i', 0}
	s.send(t, yproto.AppendSyncUpdate(nil, hi))
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := yproto.DecodeMessage(b); m.Type == yproto.MessageSync && m.Sync == yproto.SyncUpdate {
			if string(m.Payload) != string(hi) {
				t.Fatalf("the HTTP/1.1 client got % x", m.Payload)
			}
			break
		}
	}
	there := []byte{1, 1, 2, 0, 4, 1, 1, 'u', 1, 'x', 0}
	if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncUpdate(nil, there)); err != nil {
		t.Fatal(err)
	}
	if m, ce := s.nextMessage(t, isUpdate); ce != nil || string(m.Payload) != string(there) {
		t.Fatalf("the HTTP/2 client got % x (close %v)", m.Payload, ce)
	}
	// Awareness crosses too.
	aw := yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{{ClientID: 5, Clock: 1, State: []byte(`{"user":"h2"}`)}})
	s.send(t, yproto.AppendAwareness(nil, aw))
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := yproto.DecodeMessage(b); m.Type == yproto.MessageAwareness {
			break
		}
	}

	// More streams on the same connection: a malformed frame closes only
	// its stream, an oversize one gets 1009 at its header, and the first
	// stream goes on.
	bad := dialStream(t, h2, url)
	bad.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	bad.send(t, []byte{0, 2, 5, 0xff, 0xff})
	if _, ce := bad.nextMessage(t, func(yproto.Message) bool { return false }); ce == nil || ce.Code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("a malformed message on its stream: %v, want 1007", ce)
	}
	big := dialStream(t, h2, url)
	big.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	big.frame(t, 2, 1<<40, []byte{0, 2})
	if _, ce := big.nextMessage(t, func(yproto.Message) bool { return false }); ce == nil || ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("a frame announcing 1 TiB: %v, want 1009", ce)
	}
	s.send(t, yproto.AppendSyncStep1(nil, []byte{1, 1, 2}))
	if _, ce := s.nextMessage(t, func(m yproto.Message) bool { return m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2 }); ce != nil {
		t.Fatalf("the first stream was closed with the others: %v", ce)
	}

	// Another CONNECT is refused with a reason, not passed on.
	req, _ := http.NewRequest(http.MethodConnect, url, nil)
	if _, ok := h2.(*http3.Transport); ok {
		req.Proto = "webtransport"
	} else {
		req.Header.Set(":protocol", "webtransport")
	}
	if resp, err := h2.RoundTrip(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "only opens a WebSocket") {
			t.Fatalf("CONNECT :protocol webtransport: %d %q", resp.StatusCode, body)
		}
	}

	// 50 rooms over 50 streams of the same connection, each with an
	// HTTP/1.1 client: every room converges on its own update.
	const rooms = 50
	streams := make([]*h2Stream, rooms)
	peers := make([]*websocket.Conn, rooms)
	for i := range rooms {
		key := fmt.Sprintf("%s-many-%d", room, i)
		peer, _, err := websocket.Dial(ctx, "wss://127.0.0.1:9443/rooms/"+key, &websocket.DialOptions{HTTPClient: h1})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.CloseNow()
		if err := peer.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{0})); err != nil {
			t.Fatal(err)
		}
		peers[i] = peer
		streams[i] = dialStream(t, h2, "https://127.0.0.1:9443/rooms/"+key)
		streams[i].send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	}
	for i, st := range streams {
		st.send(t, yproto.AppendSyncUpdate(nil, []byte{1, 1, byte(10 + i), 0, 4, 1, 1, 't', 1, byte('a' + i%26), 0}))
	}
	for i, peer := range peers {
		for {
			_, b, err := peer.Read(ctx)
			if err != nil {
				t.Fatalf("room %d: %v", i, err)
			}
			if m, _ := yproto.DecodeMessage(b); m.Type == yproto.MessageSync && m.Sync == yproto.SyncUpdate {
				if m.Payload[2] != byte(10+i) {
					t.Fatalf("room %d got client %d's update: streams crossed", i, m.Payload[2])
				}
				break
			}
		}
	}
}

// TestStreamsAcrossReload: WebSockets over HTTP/1.1, HTTP/2 and HTTP/3
// streams opened before a `caddy reload` (a config load through the admin
// API) still relay after it.
func TestStreamsAcrossReload(t *testing.T) {
	dir := t.TempDir()
	config := func(body string) string {
		return fmt.Sprintf(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		default_sni 127.0.0.1
	}
	https://127.0.0.1:9443 {
		tls internal
		wiredb /rooms/* {
			data_dir %s
		}
		respond %q 200
	}`, dir, body)
	}
	tester := caddytest.NewTester(t)
	tester.InitServer(config("before"), "caddyfile")
	roots, _ := localRoots(t)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}}}
	h2 := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	defer h2.CloseIdleConnections()
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	defer h3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://127.0.0.1:9443/rooms/reload", &websocket.DialOptions{HTTPClient: h1})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{0})); err != nil {
		t.Fatal(err)
	}
	s2 := dialStream(t, h2, "https://127.0.0.1:9443/rooms/reload")
	s2.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	s3 := dialStream(t, h3, "https://127.0.0.1:9443/rooms/reload")
	s3.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	for _, s := range []*h2Stream{s2, s3} {
		s.nextMessage(t, func(m yproto.Message) bool { return m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2 })
	}

	tester.InitServer(config("after"), "caddyfile") // a reload
	if _, body := get(t, "http://localhost:2999/config/"); !strings.Contains(body, "after") {
		t.Fatal("the reload did not take")
	}

	hi := []byte{1, 1, 1, 0, 4, 1, 1, 't', 2, 'h', 'i', 0}
	if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncUpdate(nil, hi)); err != nil {
		t.Fatalf("HTTP/1.1 after the reload: %v", err)
	}
	for name, s := range map[string]*h2Stream{"HTTP/2": s2, "HTTP/3": s3} {
		if m, ce := s.nextMessage(t, isUpdate); ce != nil || string(m.Payload) != string(hi) {
			t.Fatalf("%s after the reload: % x, close %v", name, m.Payload, ce)
		}
	}
}

// localRoots waits for the site's certificate and returns Caddy's local CA
// (from its admin API), as a pool and as PEM.
func localRoots(tb testing.TB) (*x509.CertPool, string) {
	tb.Helper()
	resp, err := http.Get("http://localhost:2999/pki/ca/local")
	if err != nil {
		tb.Fatal(err)
	}
	var ca struct {
		Root string `json:"root_certificate"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ca)
	resp.Body.Close()
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ca.Root)) {
		tb.Fatal("no root certificate from /pki/ca/local")
	}
	// The local CA issues the site's certificate in the background.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		c, err := tls.Dial("tcp", "127.0.0.1:9443", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
			return roots, ca.Root
		}
		if time.Since(start) > 15*time.Second {
			tb.Fatalf("no TLS handshake with the site within 15 s: %v", err)
		}
	}
}
