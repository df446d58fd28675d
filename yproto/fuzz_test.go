package yproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Seeds come from the real Yjs, y-protocols and pycrdt vectors. The same seeds are kept in
// testdata/fuzz/<FuzzName>/ in Go's corpus format (so `go test` replays them even without
// the vectors' loader); rewrite them with
//
//	go test ./yproto -run TestWriteFuzzCorpus -write-fuzz-corpus
var writeFuzzCorpus = flag.Bool("write-fuzz-corpus", false, "rewrite testdata/fuzz seed files from the vectors")

// sentinels are the kinds of Error; checkError (errors_test.go) checks every error against them.
var sentinels = []error{ErrTruncated, ErrMalformed, ErrOutOfRange, ErrTooDeep, ErrTooManyEntries, ErrUnknownMessageType, ErrAwarenessState}

func updateSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, v := range smallUpdates(tb) {
		seeds = append(seeds, v.Hex)
	}
	return seeds
}

func stateVectorSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, v := range loadVectors(tb).StateVectors {
		seeds = append(seeds, v.Hex)
	}
	return seeds
}

func messageSeeds(tb testing.TB) [][]byte {
	vf := loadVectors(tb)
	var seeds [][]byte
	for _, v := range append(append([]messageVector{}, vf.Messages...), vf.PycrdtMessages...) {
		if len(v.Hex) < 4096 { // the 70 kB step 2 would only slow the mutator down
			seeds = append(seeds, v.Hex)
		}
	}
	return seeds
}

func awarenessSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, v := range loadVectors(tb).Awareness {
		seeds = append(seeds, v.Hex)
	}
	return seeds
}

func varUintSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{{0}, {0x7f}, {0x80, 0x01}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}}
	seeds = append(seeds, AppendVarUint(nil, ^uint64(0)), bytes.Repeat([]byte{0x80}, 11))
	return seeds
}

var fuzzSeeds = map[string]func(testing.TB) [][]byte{
	"FuzzValidateUpdate":        updateSeeds,
	"FuzzValidateStateVector":   stateVectorSeeds,
	"FuzzDecodeMessage":         messageSeeds,
	"FuzzDecodeAwarenessUpdate": awarenessSeeds,
	"FuzzReadVarUint":           varUintSeeds,
}

func addSeeds(f *testing.F, name string) {
	for _, s := range fuzzSeeds[name](f) {
		f.Add(s)
	}
}

// TestWriteFuzzCorpus writes the seeds as files in Go's fuzz corpus format.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeFuzzCorpus {
		t.Skip("run with -write-fuzz-corpus to rewrite testdata/fuzz")
	}
	for name, seeds := range fuzzSeeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds(t) {
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			file := filepath.Join(dir, fmt.Sprintf("seed-%03d", i))
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzValidateUpdate: never panics; every error is an *Error of a sentinel kind (so are the
// other decoders' errors, below); on success the ranges are consistent, and the update is
// prefix-free (every shorter prefix fails as truncated, a longer input fails as malformed),
// which shows that the parser reads each byte exactly once and depends on nothing but the
// bytes it has read.
func FuzzValidateUpdate(f *testing.F) {
	addSeeds(f, "FuzzValidateUpdate")
	f.Fuzz(func(t *testing.T, u []byte) {
		info, err := ValidateUpdate(u, Limits{})
		if err != nil {
			checkError(t, err, len(u))
			return
		}
		checkUpdateInfo(t, info)
		for _, k := range []int{0, len(u) / 2, len(u) - 1} {
			if _, err := ValidateUpdate(u[:k], Limits{}); !errors.Is(err, ErrTruncated) {
				t.Fatalf("valid update, but its prefix of %d bytes gives %v", k, err)
			}
		}
		if _, err := ValidateUpdate(append(u[:len(u):len(u)], 0), Limits{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("valid update plus a byte gives %v", err)
		}
		if IsEmptyUpdate(u) && (len(info.Structs) > 0 || len(info.Deletes) > 0) {
			t.Fatal("IsEmptyUpdate but UpdateInfo is not empty")
		}
	})
}

func checkUpdateInfo(t *testing.T, info UpdateInfo) {
	t.Helper()
	seen := map[uint64]bool{}
	for _, r := range info.Structs {
		if r.End <= r.Clock || r.End > maxSafeInteger || r.Client > maxSafeInteger {
			t.Fatalf("bad range %+v", r)
		}
		if seen[r.Client] {
			t.Fatalf("client %d twice", r.Client)
		}
		seen[r.Client] = true
	}
	for _, d := range info.Deletes {
		if d.Len == 0 || d.Clock+d.Len > maxSafeInteger || d.Client > maxSafeInteger {
			t.Fatalf("bad delete %+v", d)
		}
	}
}

// FuzzValidateStateVector: never panics; on success every entry is a safe integer and a
// re-encoding in any order validates to the same map.
func FuzzValidateStateVector(f *testing.F) {
	addSeeds(f, "FuzzValidateStateVector")
	f.Fuzz(func(t *testing.T, sv []byte) {
		m, err := ValidateStateVector(sv)
		if err != nil {
			checkError(t, err, len(sv))
			return
		}
		b := AppendVarUint(nil, uint64(len(m)))
		for client, clock := range m {
			if client > maxSafeInteger || clock > maxSafeInteger {
				t.Fatalf("unsafe entry %d: %d", client, clock)
			}
			b = AppendVarUint(AppendVarUint(b, client), clock)
		}
		m2, err := ValidateStateVector(b)
		if err != nil || len(m2) != len(m) {
			t.Fatalf("re-encoded state vector: %v, %d entries of %d", err, len(m2), len(m))
		}
		for c, k := range m {
			if m2[c] != k {
				t.Fatalf("client %d: %d after re-encoding, %d before", c, m2[c], k)
			}
		}
	})
}

// FuzzDecodeMessage: never panics; a decoded message re-encodes to a frame that decodes to
// the same message; and any input used as a payload round-trips through every encoder.
func FuzzDecodeMessage(f *testing.F) {
	addSeeds(f, "FuzzDecodeMessage")
	f.Fuzz(func(t *testing.T, frame []byte) {
		if m, err := DecodeMessage(frame); err != nil {
			checkError(t, err, len(frame))
		} else {
			checkMessageRoundTrip(t, m)
		}
		payload := frame
		for _, m := range []Message{
			{Type: MessageSync, Sync: SyncStep1, Payload: payload},
			{Type: MessageSync, Sync: SyncStep2, Payload: payload},
			{Type: MessageSync, Sync: SyncUpdate, Payload: payload},
			{Type: MessageAwareness, Payload: payload},
			{Type: MessageAuth, Payload: payload},
		} {
			checkMessageRoundTrip(t, m)
		}
	})
}

func checkMessageRoundTrip(t *testing.T, m Message) {
	t.Helper()
	frame := appendMessage(t, nil, m, nil)
	got, err := DecodeMessage(frame)
	if err != nil {
		t.Fatalf("decoding re-encoded %v message: %v", m.Type, err)
	}
	if got.Type != m.Type || got.Sync != m.Sync || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("round trip changed %+v into %+v", m, got)
	}
}

// FuzzDecodeAwarenessUpdate: never panics; on success every state is an object or null, and
// re-encoding gives entries equal to the decoded ones.
func FuzzDecodeAwarenessUpdate(f *testing.F) {
	addSeeds(f, "FuzzDecodeAwarenessUpdate")
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeAwarenessUpdate(b, 64)
		if err != nil {
			checkError(t, err, len(b))
			return
		}
		if len(entries) > 64 {
			t.Fatalf("%d entries, limit 64", len(entries))
		}
		again, err := DecodeAwarenessUpdate(AppendAwarenessUpdate(nil, entries), 64)
		if err != nil || len(again) != len(entries) {
			t.Fatalf("re-encoded update: %v", err)
		}
		for i, e := range entries {
			if c := firstNonSpace(e.State); c != '{' && c != 'n' {
				t.Fatalf("entry %d has state %q", i, e.State)
			}
			a := again[i]
			if a.ClientID != e.ClientID || a.Clock != e.Clock || !bytes.Equal(a.State, e.State) {
				t.Fatalf("entry %d changed from %+v to %+v", i, e, a)
			}
		}
	})
}

// FuzzReadVarUint: never panics, never reads more than 10 bytes, agrees with AppendVarUint,
// and every uint64 round-trips.
func FuzzReadVarUint(f *testing.F) {
	addSeeds(f, "FuzzReadVarUint")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ReadVarUint(b)
		if err != nil {
			checkError(t, err, len(b))
			if v != 0 || n != 0 {
				t.Fatalf("error with v=%d n=%d", v, n)
			}
		} else {
			if n < 1 || n > maxVarUintLen || n > len(b) {
				t.Fatalf("n = %d for %d bytes", n, len(b))
			}
			minimal := AppendVarUint(nil, v)
			if len(minimal) > n || (len(minimal) == n && !bytes.Equal(minimal, b[:n])) {
				t.Fatalf("read %d from %x, but AppendVarUint writes %x", v, b[:n], minimal)
			}
		}
		var x uint64
		if len(b) >= 8 {
			x = binary.LittleEndian.Uint64(b)
		}
		enc := AppendVarUint(nil, x)
		if got, n, err := ReadVarUint(enc); err != nil || got != x || n != len(enc) {
			t.Fatalf("round trip of %d: %d, %d, %v", x, got, n, err)
		}
	})
}
