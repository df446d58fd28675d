package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestDialURL(t *testing.T) {
	for _, c := range []struct {
		p          protocol
		base, want string
	}{
		{protoYWebsocket, "ws://127.0.0.1:1/rooms", "ws://127.0.0.1:1/rooms/notes%2F42"},
		{protoYWebsocket, "ws://127.0.0.1:1/rooms/", "ws://127.0.0.1:1/rooms/notes%2F42"},
		// a provider dials the route's base, without a trailing slash by default; the
		// document name is in its messages
		{protoHocuspocus, "ws://127.0.0.1:1/rooms", "ws://127.0.0.1:1/rooms"},
		{protoHocuspocus, "ws://127.0.0.1:1/rooms/", "ws://127.0.0.1:1/rooms"},
	} {
		if got := dialURL(c.p, c.base, "notes/42"); got != c.want {
			t.Errorf("dialURL(%v, %q) = %q, want %q", c.p, c.base, got, c.want)
		}
	}
}

// A Hocuspocus client connects to the base URL and names its room in its messages; the
// server here answers like a Hocuspocus server (authenticated, then the step2).
func TestDialManyHocuspocusBaseURL(t *testing.T) {
	var mu sync.Mutex
	var paths, docs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			name, rest, err := readVarBytes(b)
			if err != nil || len(rest) < 2 {
				return
			}
			f := newFramer(protoHocuspocus, string(name))
			var out []byte
			switch {
			case rest[0] == msgAuth && rest[1] == authToken:
				mu.Lock()
				paths = append(paths, r.URL.Path)
				docs = append(docs, string(name))
				mu.Unlock()
				out = append(out, f.prefix...)
				out = append(out, msgAuth, authAuthenticated)
				out = appendVarString(out, "read-write")
			case rest[0] == msgSync && rest[1] == syncStep1:
				out = f.step2(nil, emptyUpdate)
			default:
				continue
			}
			if err := c.Write(ctx, websocket.MessageBinary, out); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	base := "ws" + strings.TrimPrefix(srv.URL, "http") + "/rooms/"
	rooms := []string{"a", "notes/42"}
	cls, err := dialMany(context.Background(), 2, 2, func(i int) (string, string, *framer) {
		return base, rooms[i], newFramer(protoHocuspocus, rooms[i])
	}, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(cls)
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 2 {
		t.Fatalf("%d auth messages, want 2", len(paths))
	}
	for i, p := range paths {
		if p != "/rooms" {
			t.Errorf("client for %q dialed %q, want /rooms", docs[i], p)
		}
	}
	if !(docs[0] == "a" && docs[1] == "notes/42" || docs[0] == "notes/42" && docs[1] == "a") {
		t.Errorf("document names %q, want a and notes/42", docs)
	}
}
