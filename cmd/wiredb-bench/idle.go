package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// idle opens conns connections over rooms, each completing the handshake (it answers the
// server's step1 with an empty step2), holds them, and reports the server's RSS per
// connection. The tool does not reconnect when a server stays silent (y-websocket's
// provider would after 30 s without a message); for Hocuspocus, which closes a connection
// it has heard nothing from for 60 s, each connection sends a query-awareness every
// keepalive.
func runIdle(ctx context.Context, o *options, conns, rooms int, hold, keepalive time.Duration, res result) error {
	if conns < 1 || rooms < 1 {
		return fmt.Errorf("need conns >= 1 and rooms >= 1")
	}
	framers := make([]*framer, rooms)
	names := make([]string, rooms)
	for r := range framers {
		names[r] = fmt.Sprintf("%s-%d", o.roomPrefix, r)
		framers[r] = newFramer(o.proto, names[r])
	}
	probe := startProbe(o, nil)
	rss0 := probe.rssNow()
	cpu0 := probe.cpuNow()
	t0 := time.Now()
	cls, err := dialMany(ctx, conns, o.dialConc, func(i int) (string, string, *framer) {
		return o.urlFor(i), names[i%rooms], framers[i%rooms]
	}, nil, o.connectTimeout)
	if err != nil {
		probe.finish()
		return err
	}
	defer closeAll(cls)
	connectS := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "  %d connections over %d rooms open and synced in %.1f s; holding %v\n", conns, rooms, connectS, hold)
	cpuOpen := probe.cpuNow()
	time.Sleep(min(time.Second, hold))
	rssOpen := probe.rssNow()

	end := time.Now().Add(hold)
	nextKeep := time.Now().Add(keepalive)
	var buf []byte
	for time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(min(250*time.Millisecond, time.Until(end)))
		if keepalive > 0 && time.Now().After(nextKeep) {
			for i, cl := range cls {
				buf = framers[i%rooms].queryAwareness(buf[:0])
				_ = cl.send(buf)
			}
			nextKeep = time.Now().Add(keepalive)
		}
	}
	rssHeld := probe.rssNow()
	cpuHeld := probe.cpuNow()
	// how many are still open
	open := 0
	for _, cl := range cls {
		select {
		case <-cl.done:
		default:
			open++
		}
	}
	res.merge(probe.finish())
	res["conns"] = conns
	res["rooms"] = rooms
	res["connect_s"] = round3(connectS)
	res["conns_per_s"] = round3(float64(conns) / connectS)
	res["hold_s"] = hold.Seconds()
	res["open_at_end"] = open
	if len(o.pids) > 0 {
		res["rss_before_mb"] = mb(rss0)
		res["rss_open_mb"] = mb(rssOpen)
		res["rss_held_mb"] = mb(rssHeld)
		res["rss_per_conn_kb"] = round3(float64(int64(rssHeld)-int64(rss0)) / float64(conns) / 1024)
		res["connect_cpu_s"] = round3(cpuOpen - cpu0)
		res["hold_cpu_s"] = round3(cpuHeld - cpuOpen)
	}
	if open != conns {
		return fmt.Errorf("%d of %d connections were closed during the hold", conns-open, conns)
	}
	return nil
}
