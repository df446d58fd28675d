package wsframe

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Frames written straight to the hijacked connection reach a real
// coder/websocket client intact, at every length encoding, interleaved with
// coder's own pings.
func TestAppendBinaryFrameReachesClient(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 65535, 65536, 1 << 20}
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := NewGuard(1 << 20)
		ws, err := websocket.Accept(g.Wrap(w), r, nil)
		if err != nil {
			done <- err
			return
		}
		defer ws.CloseNow()
		raw := g.Conn()
		if raw == nil {
			done <- net.ErrClosed
			return
		}
		ctx := ws.CloseRead(context.Background()) // answers the client's pongs
		var batch []byte
		for i, n := range sizes {
			batch = AppendBinaryFrame(batch, bytes.Repeat([]byte{byte(i)}, n))
			if i%2 == 1 {
				if _, err := raw.Write(batch); err != nil {
					done <- err
					return
				}
				batch = batch[:0]
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := ws.Ping(pctx)
				cancel()
				if err != nil {
					done <- err
					return
				}
			}
		}
		if _, err := raw.Write(batch); err != nil {
			done <- err
			return
		}
		<-ctx.Done()
		done <- nil
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(2 << 20)
	for i, n := range sizes {
		typ, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(msg, bytes.Repeat([]byte{byte(i)}, n)) {
			t.Fatalf("message %d: got %d bytes of type %v, want %d bytes of %d", i, len(msg), typ, n, i)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
