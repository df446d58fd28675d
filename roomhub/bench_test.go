package roomhub

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// typingUpdate is one keystroke as Yjs encodes it: client types ch at
// clock, right after its own previous character (its origin), in the root
// text "t". Updates of one client with clocks 0, 1, 2, ... type a string.
func typingUpdate(client, clock uint64, ch byte) []byte {
	u := []byte{1, 1}
	u = yproto.AppendVarUint(u, client)
	u = yproto.AppendVarUint(u, clock)
	if clock == 0 {
		u = append(u, 4, 1) // ContentString, parent is the root type...
		u = yproto.AppendVarString(u, "t")
	} else {
		u = append(u, 4|0x80) // ...or, with an origin, implied by it
		u = yproto.AppendVarUint(u, client)
		u = yproto.AppendVarUint(u, clock-1)
	}
	u = yproto.AppendVarString(u, string([]byte{ch}))
	return append(u, 0) // no deletes
}

func benchHub(b *testing.B, opts Options) *Hub {
	b.Helper()
	hub := New(openTestStore(b, b.TempDir()), opts)
	b.Cleanup(func() { hub.Close() })
	return hub
}

// BenchmarkAppend measures updates/s stored (and, with no connections,
// relayed to nobody) by one room under each fsync policy, with one writer
// and with 16 concurrent writers. Under "always" an update counts once it
// is fsynced: group commit makes one fsync cover every update that arrived
// during the previous one. Compaction is out of the picture (bounds too
// high) so this is the append path alone.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncInterval, FsyncAlways} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("fsync=%s/writers=%d", mode, writers), func(b *testing.B) {
				hub := benchHub(b, Options{Fsync: FsyncPolicy{Mode: mode}, CompactRecords: 1 << 30, CompactBytes: 1 << 40})
				r, err := hub.acquire("bench")
				if err != nil {
					b.Fatal(err)
				}
				defer hub.release(r)
				fsyncs0 := testStoreOf(hub).fsyncs.Load()
				var clients atomic.Uint64
				write := func(next func() bool) {
					client := clients.Add(1)
					for clock := uint64(0); next(); clock++ {
						if err := r.applyUpdate(nil, typingUpdate(client, clock, 'a'), yproto.UpdateInfo{}, nil, false); err != nil {
							b.Error(err)
							return
						}
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if writers == 1 {
					i := 0
					write(func() bool { i++; return i <= b.N })
				} else {
					b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) { write(pb.Next) })
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
				b.ReportMetric(float64(testStoreOf(hub).fsyncs.Load()-fsyncs0)/float64(b.N), "fsyncs/update")
			})
		}
	}
}

// BenchmarkLoadRoom measures loading a room of 100k keystrokes from its
// file, to the point where a client can be greeted (state vector ready):
// as 100k records, and after compaction as one.
func BenchmarkLoadRoom(b *testing.B) {
	const records = 100_000
	for _, compacted := range []bool{false, true} {
		name := "records=100000"
		if compacted {
			name = "compacted"
		}
		b.Run(name, func(b *testing.B) {
			hub := benchHub(b, Options{})
			opened, err := hub.store.Open("doc")
			if err != nil {
				b.Fatal(err)
			}
			log := opened.Log
			var all [][]byte
			for i := range records {
				// Four writers taking turns, as in a shared document.
				u := typingUpdate(uint64(1+i%4), uint64(i/4), byte('a'+i%26))
				all = append(all, u)
				if _, err := log.Append(u); err != nil {
					b.Fatal(err)
				}
			}
			if compacted {
				merged, err := mergeState(all)
				if err != nil {
					b.Fatal(err)
				}
				if err := log.Checkpoint(merged, log.End()); err != nil {
					b.Fatal(err)
				}
			}
			size := log.Stats().Bytes
			log.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r := newRoom(hub, "doc")
				if err := r.load(); err != nil {
					b.Fatal(err)
				}
				if _, err := r.stateVectorLocked(); err != nil {
					b.Fatal(err)
				}
				r.log.Close()
			}
			b.ReportMetric(float64(size), "file-bytes")
		})
	}
}

// BenchmarkRelay measures one room relaying keystrokes from one writer to
// receivers over in-memory connections (the clients run in this process
// too, so CPU is shared with them). fsync never: the relay
// path alone, plus the append.
func BenchmarkRelay(b *testing.B) {
	for _, receivers := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("receivers=%d", receivers), func(b *testing.B) {
			hub := benchHub(b, Options{Fsync: FsyncPolicy{Mode: FsyncNever}, CompactRecords: 1 << 30, CompactBytes: 1 << 40})
			url := testServer(b, hub) + "/bench"
			ctx := context.Background()
			var got sync.WaitGroup
			var conns []*memClient
			for range receivers {
				ws, err := connect(url)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, ws)
				// The greeting comes once the server has joined the
				// connection to the room: only then is it sure to get
				// every update.
				if _, msg, err := ws.Read(ctx); err != nil || YWebsocket.Kind(msg) != KindSyncStep1 {
					b.Fatalf("no greeting: %x %v", msg, err)
				}
				got.Add(1)
				go func() {
					defer got.Done()
					updates := 0
					for updates < b.N {
						_, msg, err := ws.Read(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						if YWebsocket.Kind(msg) == KindSyncUpdate {
							updates++
						}
					}
				}()
			}
			writer, err := connect(url)
			if err != nil {
				b.Fatal(err)
			}
			frames := make([][]byte, b.N)
			for i := range frames {
				frames[i] = yproto.AppendSyncUpdate(nil, typingUpdate(99, uint64(i), 'x'))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, f := range frames {
				if err := writer.Write(ctx, MessageBinary, f); err != nil {
					b.Fatal(err)
				}
			}
			got.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*receivers)/b.Elapsed().Seconds(), "deliveries/s")
			writer.CloseNow()
			for _, c := range conns {
				c.CloseNow()
			}
		})
	}
}

// BenchmarkBackendWrite measures a backend's write (the HTTP API's POST
// without HTTP): validation, joining the room as a conn, storing, waiting
// for the acknowledgement, the state vector, leaving. One keystroke each,
// under each fsync policy.
func BenchmarkBackendWrite(b *testing.B) {
	for _, mode := range []FsyncMode{FsyncInterval, FsyncAlways} {
		b.Run(mode.String(), func(b *testing.B) {
			hub := benchHub(b, Options{Fsync: FsyncPolicy{Mode: mode}})
			ctx := context.Background()
			b.ReportAllocs()
			for i := range b.N {
				if _, err := hub.WriteRoom(ctx, "bench", typingUpdate(1, uint64(i), 'a')); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
