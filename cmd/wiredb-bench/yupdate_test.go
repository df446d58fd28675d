package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// testdata/yupdates.json is written by bench/gen/fixtures.mjs: updates of every struct
// and content kind, with the ranges and state vector Yjs 13.6.33 decodes from them.
type fixture struct {
	Name        string            `json:"name"`
	Update      string            `json:"update"`
	Ranges      [][3]uint64       `json:"ranges"`
	StateVector map[string]uint64 `json:"stateVector"`
}

type rangeList struct{ got [][3]uint64 }

func (r *rangeList) addRange(client, start, end uint64) {
	r.got = append(r.got, [3]uint64{client, start, end})
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/yupdates.json")
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(b, &fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestScanStructsAgainstYjs(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			u, err := hex.DecodeString(f.Update)
			if err != nil {
				t.Fatal(err)
			}
			var r rangeList
			if err := scanStructs(u, &r); err != nil {
				t.Fatalf("scanStructs: %v", err)
			}
			if len(r.got) != len(f.Ranges) {
				t.Fatalf("ranges %v, Yjs says %v", r.got, f.Ranges)
			}
			for i := range r.got {
				if r.got[i] != f.Ranges[i] {
					t.Fatalf("ranges %v, Yjs says %v", r.got, f.Ranges)
				}
			}
			sv := svSink{sv: map[uint64]uint64{}}
			if err := scanStructs(u, &sv); err != nil {
				t.Fatal(err)
			}
			want := map[uint64]uint64{}
			for k, v := range f.StateVector {
				c, _ := strconv.ParseUint(k, 10, 64)
				want[c] = v
			}
			if len(sv.sv) != len(want) || !covers(sv.sv, want) || !covers(want, sv.sv) {
				t.Fatalf("state vector %v, Yjs says %v", sv.sv, want)
			}
		})
	}
}

// Every prefix of a valid update is rejected or scanned without panicking.
func TestScanStructsTruncated(t *testing.T) {
	for _, f := range loadFixtures(t) {
		u, _ := hex.DecodeString(f.Update)
		for n := 0; n < len(u); n++ {
			var r rangeList
			_ = scanStructs(u[:n], &r)
		}
	}
}

func FuzzScanStructs(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		u, _ := hex.DecodeString(fx.Update)
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u []byte) {
		var r rangeList
		_ = scanStructs(u, &r)
	})
}

func TestFramerRoundTrip(t *testing.T) {
	for _, p := range []protocol{protoYWebsocket, protoHocuspocus} {
		f := newFramer(p, "notes/42")
		m, err := f.parse(f.update(nil, []byte{1, 2, 3}))
		if err != nil || m.typ != msgSync || m.sub != syncUpdate || string(m.payload) != "\x01\x02\x03" {
			t.Fatalf("%v: update parsed as %+v, %v", p, m, err)
		}
		m, err = f.parse(f.step1(nil, emptyStateVector))
		if err != nil || m.typ != msgSync || m.sub != syncStep1 || len(m.payload) != 1 {
			t.Fatalf("%v: step1 parsed as %+v, %v", p, m, err)
		}
	}
	// Hocuspocus' answer to a token: [name] 2 Auth, 2 Authenticated, "read-write"
	f := newFramer(protoHocuspocus, "d")
	msg := append(appendVarString(nil, "d"), msgAuth, authAuthenticated)
	msg = appendVarString(msg, "read-write")
	m, err := f.parse(msg)
	if err != nil || m.typ != msgAuth || m.sub != authAuthenticated || string(m.payload) != "read-write" {
		t.Fatalf("authenticated parsed as %+v, %v", m, err)
	}
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(int64(i) * 1000) // 1..1000 µs
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.5}, {0.9, 0.9}, {0.99, 0.99}} {
		got := h.quantile(c.q)
		if got < c.want*0.98 || got > c.want*1.02 {
			t.Errorf("quantile(%v) = %v ms, want ~%v", c.q, got, c.want)
		}
	}
	if h.max != 1000 {
		t.Errorf("max %d µs", h.max)
	}
	for v := uint64(0); v < 1<<20; v = v*5/4 + 1 {
		i := histIndex(v)
		if lo := histValue(i); lo < float64(v)*0.98-1 || lo > float64(v)*1.02+1 {
			t.Fatalf("value %d: bucket %d reads %v", v, i, lo)
		}
	}
}
