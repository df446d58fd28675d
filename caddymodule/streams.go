package caddymodule

import (
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// A WebSocket on an HTTP/2 or HTTP/3 stream keeps its request's handler
// running, and Caddy, exiting, waits for every handler to return before it
// stops the modules (a hub closes its connections only then): with the
// default eternal grace period, one open stream would keep Caddy from ever
// exiting. So the handlers of stream WebSockets learn that Caddy is
// exiting from a poll of caddy.Exiting (Caddy offers no earlier signal),
// and close their WebSocket with 1001. The poll runs only while such a
// WebSocket is open. A reload is not an exit: the old server keeps serving
// its streams until they end.

var (
	exiting     = make(chan struct{}) // closed once Caddy is exiting
	exitingOnce sync.Once

	exitWatchMu      sync.Mutex
	exitWatchStreams int
	exitWatchStop    chan struct{}
)

// exitPollInterval is how soon a stream WebSocket hears that Caddy exits.
const exitPollInterval = 200 * time.Millisecond

// watchExit counts one open stream WebSocket for the exit poll; release
// uncounts it, and the last release ends the poll.
func watchExit() (release func()) {
	exitWatchMu.Lock()
	defer exitWatchMu.Unlock()
	exitWatchStreams++
	if exitWatchStreams == 1 {
		exitWatchStop = make(chan struct{})
		go pollExiting(exitWatchStop)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			exitWatchMu.Lock()
			defer exitWatchMu.Unlock()
			exitWatchStreams--
			if exitWatchStreams == 0 {
				close(exitWatchStop)
			}
		})
	}
}

func pollExiting(stop <-chan struct{}) {
	t := time.NewTicker(exitPollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if caddy.Exiting() {
				exitingOnce.Do(func() { close(exiting) })
				return
			}
		}
	}
}

var http2Note sync.Once

// noteHTTP2 says once per process, at the first wiredb route, when Go's
// HTTP/2 server will not offer WebSockets (extended CONNECT), and how to
// turn them on: browsers then open their WebSockets over HTTP/1.1.
func noteHTTP2(logger *zap.Logger) {
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return
	}
	http2Note.Do(func() {
		logger.Info("WebSockets over HTTP/2 are off: Go's HTTP/2 server offers extended CONNECT (RFC 8441) only " +
			"with GODEBUG=http2xconnect=1 in Caddy's environment; browsers open them over HTTP/1.1 meanwhile " +
			"(HTTP/1.1 and HTTP/3 WebSockets are served)")
	})
}
