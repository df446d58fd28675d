package wstransport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddy-wiredb/wiredb/roomhub"
)

// paths runs f on the batched path and on the fallback path.
func paths(t *testing.T, f func(t *testing.T, batched bool)) {
	for _, batched := range []bool{true, false} {
		name := "batched"
		if !batched {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, batched)
		})
	}
}

// TestRoundTrip echoes messages of every length encoding: client to server
// through ReadMessage, back through WriteMessages.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	paths(t, func(t *testing.T, batched bool) {
		done := make(chan error, 1)
		url := serve(t, Options{}, batched, func(c *Conn) {
			if (c.sock != nil) != batched {
				done <- fmt.Errorf("socket %v on the batched=%v path", c.sock != nil, batched)
				return
			}
			var cw *checkWriter
			if batched {
				cw = check(t, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for {
				typ, msg, err := c.ReadMessage(ctx)
				if err != nil {
					var ce *roomhub.CloseError
					if !errors.As(err, &ce) || ce.Code != roomhub.StatusNormalClosure {
						done <- fmt.Errorf("read: %v", err)
						return
					}
					break
				}
				if typ != roomhub.MessageBinary {
					msg = append([]byte("text:"), msg...)
				}
				if err := c.WriteMessages([][]byte{msg}, 5*time.Second); err != nil {
					done <- err
					return
				}
			}
			if cw != nil {
				if unlocked, frames, err := cw.report(); unlocked != 0 || err != nil || frames[2] != 8 {
					done <- fmt.Errorf("socket: %d unlocked writes, %d binary frames, %v", unlocked, frames[2], err)
					return
				}
			}
			done <- nil
		})
		ws := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
			msg := bytes.Repeat([]byte{byte(i + 1)}, n)
			if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
				t.Fatal(err)
			}
			typ, got, err := ws.Read(ctx)
			if err != nil || typ != websocket.MessageBinary || !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes: type %v, %d bytes, %v", n, typ, len(got), err)
			}
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.Read(ctx); err != nil || string(got) != "text:hi" {
			t.Fatalf("text echo: %q, %v", got, err)
		}
		if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// seqMessage is message i of a stream: its index, then filler of a length
// that depends on i.
func seqMessage(i, size int) []byte {
	b := make([]byte, 8+size)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

func checkSeqMessage(b []byte, want int) error {
	if len(b) < 8 {
		return fmt.Errorf("message %d: %d bytes", want, len(b))
	}
	if got := int(binary.BigEndian.Uint64(b)); got != want {
		return fmt.Errorf("message %d arrived as number %d", want, got)
	}
	for j := 8; j < len(b); j++ {
		if b[j] != byte(want+j) {
			return fmt.Errorf("message %d: byte %d is %d", want, j, b[j])
		}
	}
	return nil
}

// TestBatchWholeAndInOrder writes batches of many messages and checks that
// each arrives whole and in order.
func TestBatchWholeAndInOrder(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 30, 117, 118, 65527, 65528, 100000}
	const batches, perBatch = 20, 100
	paths(t, func(t *testing.T, batched bool) {
		done := make(chan error, 1)
		url := serve(t, Options{}, batched, func(c *Conn) {
			i := 0
			for range batches {
				batch := make([][]byte, perBatch)
				for j := range batch {
					batch[j] = seqMessage(i, sizes[i%len(sizes)])
					i++
				}
				if err := c.WriteMessages(batch, 10*time.Second); err != nil {
					done <- err
					return
				}
			}
			_, _, err := c.ReadMessage(context.Background()) // until the client closes
			done <- nil
			_ = err
		})
		ws := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range batches * perBatch {
			typ, msg, err := ws.Read(ctx)
			if err != nil || typ != websocket.MessageBinary {
				t.Fatalf("message %d: %v %v", i, typ, err)
			}
			if len(msg) != 8+sizes[i%len(sizes)] {
				t.Fatalf("message %d: %d bytes", i, len(msg))
			}
			if err := checkSeqMessage(msg, i); err != nil {
				t.Fatal(err)
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentWriters: several goroutines write batches to one socket at
// once, as the documents of a Hocuspocus socket do; every message arrives
// whole, and each writer's messages in its order.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 5, 117, 118, 4000, 65528, 70000}
	const writers, batches, perBatch = 4, 25, 20
	paths(t, func(t *testing.T, batched bool) {
		done := make(chan error, writers)
		url := serve(t, Options{}, batched, func(c *Conn) {
			for w := range writers {
				go func() {
					i := 0
					for range batches {
						batch := make([][]byte, perBatch)
						for j := range batch {
							batch[j] = seqMessage(w<<20|i, sizes[(i+w)%len(sizes)])
							i++
						}
						if err := c.WriteMessages(batch, 10*time.Second); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
			}
			_, _, _ = c.ReadMessage(context.Background()) // until the client closes
		})
		ws := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		next := make([]int, writers)
		for range writers * batches * perBatch {
			_, msg, err := ws.Read(ctx)
			if err != nil || len(msg) < 8 {
				t.Fatalf("read: %v (%d bytes)", err, len(msg))
			}
			n := int(binary.BigEndian.Uint64(msg))
			w, i := n>>20, n&(1<<20-1)
			if w >= writers || i != next[w] {
				t.Fatalf("writer %d's message %d arrived, want its %d", w, i, next[w])
			}
			if len(msg) != 8+sizes[(i+w)%len(sizes)] {
				t.Fatalf("writer %d's message %d: %d bytes", w, i, len(msg))
			}
			if err := checkSeqMessage(msg, n); err != nil {
				t.Fatal(err)
			}
			next[w]++
		}
		ws.Close(websocket.StatusNormalClosure, "")
		for range writers {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestStress streams big batches while the client pings, the server pings,
// and the server closes in the middle; the client must see whole messages
// in order, then the close code and reason, and no protocol error. Every
// write to the socket must have held the lock, and the control frames must
// have gone through the socket.
func TestStress(t *testing.T) {
	t.Parallel()
	const rounds, pingers = 8, 4
	reason := strings.Repeat("r", 100) // a close frame larger than coder/websocket's write buffer
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			type serverResult struct {
				unlocked int
				frames   [16]int
				err      error
			}
			result := make(chan serverResult, 1)
			url := serve(t, Options{}, true, func(c *Conn) {
				cw := check(t, c)
				var wg sync.WaitGroup
				stop := make(chan struct{})
				wg.Add(2 + pingers)
				go func() { // reader: answers the client's pings, reads the server's pongs
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					for {
						if _, _, err := c.ReadMessage(ctx); err != nil {
							return
						}
					}
				}()
				go func() { // writer
					defer wg.Done()
					i := 0
					for {
						batch := make([][]byte, 64)
						for j := range batch {
							batch[j] = seqMessage(i, 1000+(i*37)%3000)
							i++
						}
						if err := c.WriteMessages(batch, 10*time.Second); err != nil {
							return
						}
					}
				}()
				for range pingers {
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							case <-time.After(time.Millisecond):
							}
							ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
							err := c.Ping(ctx)
							cancel()
							if err != nil {
								return
							}
						}
					}()
				}
				// Close once pings and pongs have gone out, in the middle
				// of the stream.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if _, frames, _ := cw.report(); frames[0x9] > 0 && frames[0xA] > 0 {
						break
					}
				}
				time.Sleep(time.Duration(20+round*20) * time.Millisecond)
				err := c.Close(4000, reason)
				close(stop)
				wg.Wait()
				unlocked, frames, ferr := cw.report()
				result <- serverResult{unlocked, frames, errors.Join(err, ferr)}
			})
			ws := dial(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var pings atomic.Int64
			pingCtx, stopPings := context.WithCancel(ctx)
			defer stopPings()
			for range pingers {
				go func() {
					for pingCtx.Err() == nil {
						if ws.Ping(pingCtx) != nil {
							return
						}
						pings.Add(1)
					}
				}()
			}
			var readErr error
			n := 0
			for {
				_, msg, err := ws.Read(ctx)
				if err != nil {
					readErr = err
					break
				}
				if err := checkSeqMessage(msg, n); err != nil {
					t.Fatal(err)
				}
				n++
			}
			stopPings()
			var ce websocket.CloseError
			if !errors.As(readErr, &ce) || ce.Code != 4000 || ce.Reason != reason {
				t.Fatalf("client read %d messages, then %v; want close 4000", n, readErr)
			}
			res := <-result
			if res.err != nil {
				t.Errorf("server: %v", res.err)
			}
			if res.unlocked != 0 {
				t.Errorf("%d writes to the socket without the lock", res.unlocked)
			}
			if res.frames[0x8] != 1 || res.frames[0x9] == 0 || res.frames[0xA] == 0 || res.frames[0x2] != n {
				t.Errorf("frames through the socket: %d close, %d ping, %d pong, %d binary (client read %d messages)",
					res.frames[0x8], res.frames[0x9], res.frames[0xA], res.frames[0x2], n)
			}
			t.Logf("%d messages, %d client pings, frames %v", n, pings.Load(), res.frames)
		})
	}
}

// TestTooBig sends a header announcing 1 TiB: the server closes with 1009 at
// once, and ReadMessage reports it.
func TestTooBig(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	readErr := make(chan error, 1)
	url := serve(t, Options{MaxMessageSize: limit}, true, func(c *Conn) {
		_, _, err := c.ReadMessage(context.Background())
		readErr <- err
	})
	conn, br := rawDial(t, url, nil)
	start := time.Now()
	if _, err := conn.Write(clientHeader(0x2, 1<<40, make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	op, payload, err := readFrame(br)
	elapsed := time.Since(start)
	want := fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", int64(1<<40), limit)
	if err != nil || op != 0x8 || len(payload) < 2 {
		t.Fatalf("frame %d %q, %v; want a close frame", op, payload, err)
	}
	if code, reason := binary.BigEndian.Uint16(payload), string(payload[2:]); code != 1009 || reason != want {
		t.Fatalf("close %d %q, want 1009 %q", code, reason, want)
	}
	if elapsed > time.Second {
		t.Errorf("close frame after %v", elapsed)
	}
	conn.Close()
	select {
	case err := <-readErr:
		var ce *roomhub.CloseError
		if !errors.As(err, &ce) || ce.Code != roomhub.StatusMessageTooBig || ce.Reason != want || !ce.TooBig {
			t.Fatalf("ReadMessage: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadMessage did not return")
	}
}

// TestPeerClose checks that the peer's close code and reason reach
// ReadMessage's caller.
func TestPeerClose(t *testing.T) {
	t.Parallel()
	paths(t, func(t *testing.T, batched bool) {
		readErr := make(chan error, 1)
		url := serve(t, Options{}, batched, func(c *Conn) {
			_, _, err := c.ReadMessage(context.Background())
			readErr <- err
		})
		ws := dial(t, url)
		if err := ws.Close(4001, "bye"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-readErr:
			var ce *roomhub.CloseError
			if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" || ce.TooBig {
				t.Fatalf("ReadMessage: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ReadMessage did not return")
		}
	})
}

// TestStalledReader checks that Close cuts a client that stopped reading
// about closeDrainWait after it is called, and that the batch stuck on it
// fails.
func TestStalledReader(t *testing.T) {
	t.Parallel()
	paths(t, func(t *testing.T, batched bool) {
		type result struct {
			closeTook time.Duration
			closeErr  error
			writeErr  error
		}
		res := make(chan result, 1)
		url := serve(t, Options{}, batched, func(c *Conn) {
			var inWrite atomic.Int64 // start of the write in progress, in ns since start; 0 for none
			start := time.Now()
			writeErr := make(chan error, 1)
			go func() {
				batch := make([][]byte, 64)
				for i := range batch {
					batch[i] = make([]byte, 16<<10)
				}
				for {
					inWrite.Store(int64(time.Since(start)) + 1)
					err := c.WriteMessages(batch, time.Minute)
					inWrite.Store(0)
					if err != nil {
						writeErr <- err
						return
					}
				}
			}()
			// Wait until a write has been stuck for 300 ms.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if w := inWrite.Load(); w != 0 && time.Since(start)-time.Duration(w) > 300*time.Millisecond {
					break
				}
				if time.Now().After(deadline) {
					res <- result{closeErr: errors.New("no write got stuck")}
					return
				}
			}
			t0 := time.Now()
			err := c.Close(roomhub.StatusTryAgainLater, "client too slow")
			took := time.Since(t0)
			select {
			case werr := <-writeErr:
				res <- result{took, err, werr}
			case <-time.After(5 * time.Second):
				res <- result{took, err, errors.New("the stuck write did not end")}
			}
		})
		ws := dial(t, url) // and never read
		_ = ws
		select {
		case r := <-res:
			if r.closeTook < closeDrainWait-500*time.Millisecond || r.closeTook > closeDrainWait+2*time.Second {
				t.Errorf("Close took %v, want about %v", r.closeTook, closeDrainWait)
			}
			if r.writeErr == nil {
				t.Error("the stuck write succeeded")
			}
			t.Logf("Close took %v: %v; write: %v", r.closeTook, r.closeErr, r.writeErr)
		case <-time.After(30 * time.Second):
			t.Fatal("server did not finish")
		}
	})
}

// TestCloseRules checks WriteMessages after Close, idempotent Close and
// CloseNow, and concurrent calls.
func TestCloseRules(t *testing.T) {
	t.Parallel()
	paths(t, func(t *testing.T, batched bool) {
		done := make(chan error, 1)
		url := serve(t, Options{}, batched, func(c *Conn) {
			go c.ReadMessage(context.Background())
			var wg sync.WaitGroup
			errs := make([]error, 6)
			for i := range errs {
				wg.Go(func() {
					switch i % 3 {
					case 0:
						errs[i] = c.Close(roomhub.StatusGoingAway, "bye")
					case 1:
						errs[i] = c.WriteMessages([][]byte{[]byte("x")}, time.Second)
					default:
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						errs[i] = c.Ping(ctx)
						cancel()
					}
				})
			}
			wg.Wait()
			if err := c.WriteMessages([][]byte{[]byte("late")}, time.Second); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
				done <- fmt.Errorf("WriteMessages after Close: %v", err)
				return
			}
			if err := c.Close(roomhub.StatusNormalClosure, ""); !errors.Is(err, net.ErrClosed) {
				done <- fmt.Errorf("second Close: %v", err)
				return
			}
			if err := c.CloseNow(); err != nil {
				done <- fmt.Errorf("CloseNow after Close: %v", err)
				return
			}
			// Of the two concurrent Closes, one closed, the other found it
			// done.
			if (errs[0] == nil) == (errs[3] == nil) || !errors.Is(errors.Join(errs[0], errs[3]), net.ErrClosed) {
				done <- fmt.Errorf("concurrent Closes returned %v and %v", errs[0], errs[3])
				return
			}
			done <- nil
		})
		ws := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				if websocket.CloseStatus(err) != websocket.StatusGoingAway {
					t.Errorf("client: %v", err)
				}
				break
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCloseNowDuringClose checks that CloseNow ends a Close that waits for
// the peer's close frame.
func TestCloseNowDuringClose(t *testing.T) {
	t.Parallel()
	took := make(chan time.Duration, 1)
	url := serve(t, Options{}, true, func(c *Conn) {
		go c.ReadMessage(context.Background())
		start := time.Now()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			c.Close(roomhub.StatusNormalClosure, "")
		}()
		time.Sleep(100 * time.Millisecond)
		c.CloseNow()
		<-closed
		took <- time.Since(start)
	})
	conn, br := rawDial(t, url, nil) // reads the close frame but does not answer it
	if op, _, err := readFrame(br); err != nil || op != 0x8 {
		t.Fatalf("frame %d, %v", op, err)
	}
	if d := <-took; d > 2*time.Second {
		t.Errorf("Close ended %v after it began", d)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("connection not closed: %v", err)
	}
}
