package wstransport

import (
	"io"
	"testing"
	"time"
)

// BenchmarkWriteMessages writes batches of 64 messages of 30 bytes (a
// keystroke's update) to a client that reads and discards them over
// loopback: batched, as frames in one write(2), against the fallback, one
// coder/websocket Write (and write(2)) per message.
func BenchmarkWriteMessages(b *testing.B) {
	const perBatch, size = 64, 30
	for _, bb := range []struct {
		name    string
		batched bool
	}{{"batched", true}, {"coder-write", false}} {
		b.Run(bb.name, func(b *testing.B) {
			conns := make(chan *Conn, 1)
			release := make(chan struct{})
			url := serve(b, Options{}, bb.batched, func(c *Conn) {
				conns <- c
				<-release
			})
			conn, br := rawDial(b, url, nil)
			conn.SetDeadline(time.Time{})
			go io.Copy(io.Discard, br)
			c := <-conns
			defer close(release)
			batch := make([][]byte, perBatch)
			for i := range batch {
				batch[i] = make([]byte, size)
			}
			b.SetBytes(perBatch * size)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessages(batch, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
