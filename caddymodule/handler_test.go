package caddymodule_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/coder/websocket"

	_ "github.com/caddy-wiredb/wiredb/caddyfile"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestEndToEnd runs the module inside a real Caddy (caddytest starts it in
// this process with its admin API on localhost:2999) from a Caddyfile.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
		skip_install_trust
		admin localhost:2999
		http_port 9080
		https_port 9443
		grace_period 1ns
	}
	http://127.0.0.1:9080 {
		wiredb /rooms/* {
			data_dir %s
			max_room_key_length 64
		}
		respond "not a websocket" 200
	}`, dir), "caddyfile")

	t.Run("plain requests pass on", func(t *testing.T) {
		tester.AssertGetResponse("http://127.0.0.1:9080/rooms/a", 200, "not a websocket")
	})

	t.Run("invalid room keys get 400 with the reason", func(t *testing.T) {
		for _, tc := range []struct{ path, reason string }{
			{"/rooms/" + strings.Repeat("k", 65), "longer than 64 bytes"},
			{"/rooms/a/%00/b", "NUL"},
			{"/rooms/a/../b", "'..' segment"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws, resp, err := websocket.Dial(ctx, "ws://127.0.0.1:9080"+tc.path, nil)
			cancel()
			if err == nil {
				ws.CloseNow()
				t.Fatalf("%s: upgrade succeeded", tc.path)
			}
			if resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s: response %v, want 400", tc.path, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), tc.reason) {
				t.Fatalf("%s: body %q does not say %q", tc.path, body, tc.reason)
			}
		}
	})

	t.Run("a y-websocket client naming no room is closed once it speaks", func(t *testing.T) {
		// The route serves Hocuspocus too, whose providers connect to
		// /rooms/ and name their documents in their messages.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:9080/rooms/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{0})); err != nil {
			t.Fatal(err)
		}
		_, _, err = ws.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "no room in the URL") {
			t.Fatalf("read %v, want a 1008 close saying there is no room in the URL", err)
		}
	})

	t.Run("a room is served and stored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:9080/rooms/notes/42", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		// The server speaks once the client's first message has told its
		// protocol: a y-websocket client's step 1.
		if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{0})); err != nil {
			t.Fatal(err)
		}
		_, greeting, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := yproto.DecodeMessage(greeting); err != nil || m.Type != yproto.MessageSync || m.Sync != yproto.SyncStep1 {
			t.Fatalf("greeting %x is not a sync step 1 (%v)", greeting, err)
		}
		// A Yjs update: client 1 inserts "hi" into the root text "t".
		update := []byte{1, 1, 1, 0, 4, 1, 1, 't', 2, 'h', 'i', 0}
		if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncUpdate(nil, update)); err != nil {
			t.Fatal(err)
		}
		// The step 2 answering a second step 1 proves the update was handled.
		if err := ws.Write(ctx, websocket.MessageBinary, yproto.AppendSyncStep1(nil, []byte{1, 1, 2})); err != nil {
			t.Fatal(err)
		}
		steps := 0
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m, _ := yproto.DecodeMessage(b); m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2 {
				if steps++; steps == 2 {
					break
				}
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, "notes%2F42.y"))
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(storage.Header), byte(len(update)))
		want = append(want, update...)
		if !bytes.Equal(data, want) {
			t.Fatalf("file holds %x, want %x", data, want)
		}

		// The admin API and the metrics see the room while it is open.
		resp, body := get(t, "http://localhost:2999/wiredb/rooms")
		if resp.StatusCode != 200 || !strings.Contains(body, `"key":"notes/42"`) || !strings.Contains(body, `"connections":1`) {
			t.Fatalf("GET /wiredb/rooms: %d %s", resp.StatusCode, body)
		}
		resp, body = get(t, "http://localhost:2999/wiredb/rooms/notes%2F42/update")
		if resp.StatusCode != 200 || body != string(update) {
			t.Fatalf("GET /wiredb/rooms/notes%%2F42/update: %d %x, want %x", resp.StatusCode, body, update)
		}
		resp, body = get(t, "http://localhost:2999/wiredb/rooms/notes%2F42")
		if resp.StatusCode != 200 || !strings.Contains(body, `"t":{"type":"Text","value":"hi"}`) {
			t.Fatalf("GET /wiredb/rooms/notes%%2F42: %d %s", resp.StatusCode, body)
		}
		resp, body = get(t, "http://localhost:2999/wiredb/rooms/nothing-here/update")
		if resp.StatusCode != 404 || !strings.Contains(body, "no such room") {
			t.Fatalf("GET of a room that does not exist: %d %s", resp.StatusCode, body)
		}
		if _, err := os.Stat(filepath.Join(dir, "nothing-here.y")); !os.IsNotExist(err) {
			t.Fatalf("looking at a missing room created its file (%v)", err)
		}
		resp, body = get(t, "http://localhost:2999/metrics")
		for _, want := range []string{
			"caddy_wiredb_connections_open 1",
			"caddy_wiredb_rooms_loaded 1",
			`caddy_wiredb_messages_total{direction="in",protocol="y-websocket",type="sync_update"} 1`,
			`caddy_wiredb_messages_total{direction="out",protocol="y-websocket",type="sync_step2"} 2`,
			"caddy_wiredb_append_seconds_count 1",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		req, _ := http.NewRequest(http.MethodPost, "http://localhost:2999/wiredb/rooms/notes%2F42/close", nil)
		req.Header.Set("Origin", "http://localhost:2999")
		cresp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cbody, _ := io.ReadAll(cresp.Body)
		cresp.Body.Close()
		if cresp.StatusCode != 200 || !strings.Contains(string(cbody), `"closed":1`) {
			t.Fatalf("POST close: %d %s", cresp.StatusCode, cbody)
		}
		if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusServiceRestart {
			t.Fatalf("after POST close the client read %v, want a 1012 close", err)
		}
	})
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}
