package ydoc

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/yproto"
)

func TestEmptyUpdate(t *testing.T) {
	got, err := ToJSON([]byte{0, 0})
	if err != nil || string(got) != "{}" {
		t.Fatalf("ToJSON(00 00) = %s, %v", got, err)
	}
}

// Bytes y-crdt would die on (docs/y-crdt.md, "What crashes or hangs it") never reach it:
// yproto rejects them.
func TestMalformedRejectedBeforeYcrdt(t *testing.T) {
	for _, c := range []struct {
		name string
		u    []byte
	}{
		{"nil", nil},
		{"empty slice (y-crdt panics)", []byte{}},
		{"single zero (y-crdt panics)", []byte{0}},
		{"2^40 clients (y-crdt hangs)", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0}},
		{"binary of 2^40 bytes (y-crdt: fatal out of memory)", []byte{1, 1, 1, 0, 3, 1, 1, 'b', 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0}},
		{"trailing garbage", []byte{0, 0, 0}},
		{"client id 2^63", []byte{1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 4, 1, 1, 't', 1, 'a', 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ToJSON(c.u)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "invalid update: ") {
				t.Fatalf("error %v, want a validation error", err)
			}
		})
	}
}

// A structurally valid update whose item names a parent that is not a type: Yjs throws on
// it; y-crdt drops the item (or panics, which must become an error), never more.
func TestParentNotAType(t *testing.T) {
	u := []byte{
		1,       // one client
		2, 1, 0, // two structs, client 1, clock 0
		4, 1, 1, 't', 1, 'a', // string "a" in root "t"
		4, 0, 1, 0, 1, 'b', // string "b" whose parent is item (1,0), a string
		0, // no deletes
	}
	if _, err := yproto.ValidateUpdate(u, yproto.Limits{}); err != nil {
		t.Fatalf("test update invalid: %v", err)
	}
	got, err := ToJSON(u)
	if err == nil && string(got) != `{"t":{"type":"Text","value":"a"}}` {
		t.Fatalf("ToJSON = %s", got)
	}
}

// An update that starts after clock 0 depends on structs it does not carry.
func TestIncomplete(t *testing.T) {
	u := []byte{1, 1, 1, 5, 4, 1, 1, 't', 1, 'a', 0} // client 1 from clock 5
	if _, err := ToJSON(u); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	d, err := Render(u)
	if err != nil || !d.Incomplete {
		t.Fatalf("Render = %+v, %v", d, err)
	}
}

// Mutated vectors (bit flips, truncations, splices) either render or fail with an error;
// nothing panics and nothing hangs.
func TestMutatedVectors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var seeds [][]byte
	for _, v := range loadVectors(t) {
		seeds = append(seeds, unhex(t, v.State), unhex(t, v.Merged))
	}
	n := 3000
	if testing.Short() {
		n = 300
	}
	valid, rendered := 0, 0
	for i := range n {
		u := mutate(rng, seeds[i%len(seeds)], seeds[rng.IntN(len(seeds))])
		if _, err := yproto.ValidateUpdate(u, yproto.Limits{}); err != nil {
			continue
		}
		valid++
		if _, err := Render(u); err == nil {
			rendered++
		} else if !errors.Is(err, ysafe.ErrPanic) && !strings.Contains(err.Error(), "ysafe") {
			t.Fatalf("unexpected error kind: %v", err)
		}
	}
	t.Logf("%d mutations: %d valid, %d rendered", n, valid, rendered)
}

func mutate(rng *rand.Rand, u, other []byte) []byte {
	u = append([]byte{}, u...)
	switch rng.IntN(4) {
	case 0: // flip a bit
		if len(u) > 0 {
			u[rng.IntN(len(u))] ^= 1 << rng.IntN(8)
		}
	case 1: // change a byte
		if len(u) > 0 {
			u[rng.IntN(len(u))] = byte(rng.IntN(256))
		}
	case 2: // truncate
		u = u[:rng.IntN(len(u)+1)]
	case 3: // splice in part of another update
		if len(u) > 0 && len(other) > 0 {
			at := rng.IntN(len(u))
			from := rng.IntN(len(other))
			u = append(u[:at:at], append(other[from:min(len(other), from+1+rng.IntN(16))], u[at:]...)...)
		}
	}
	return u
}

func FuzzToJSON(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.State))
		f.Add(unhex(f, v.Merged))
	}
	f.Fuzz(func(t *testing.T, u []byte) {
		j, err := ToJSON(u)
		if err == nil && len(j) == 0 {
			t.Fatal("no JSON and no error")
		}
	})
}

// A valid update whose item names as its parent an item of its own client that it does not
// carry (a later clock): Yjs throws; y-crdt dereferences nil. The panic becomes an error.
func TestYcrdtPanicBecomesError(t *testing.T) {
	u := []byte{
		1,       // one client
		1, 1, 0, // one struct, client 1, clock 0
		4, 0, 1, 5, 1, 'a', // string "a" whose parent is item (1,5)
		0, // no deletes
	}
	if _, err := yproto.ValidateUpdate(u, yproto.Limits{}); err != nil {
		t.Fatalf("test update invalid: %v", err)
	}
	_, err := ToJSON(u)
	if !errors.Is(err, ysafe.ErrPanic) {
		t.Fatalf("err = %v, want ysafe.ErrPanic", err)
	}
}
