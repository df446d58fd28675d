package ysafe

import (
	"bytes"
	"errors"
	"testing"
)

func TestEmptyUpdateRoundTrip(t *testing.T) {
	empty := []byte{0, 0}
	m, err := Merge([][]byte{empty, empty})
	if err != nil {
		t.Fatal(err)
	}
	sv, err := StateVector(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sv, []byte{0}) {
		t.Fatalf("state vector of empty doc = %x, want 00", sv)
	}
	if _, err := Diff(m, sv); err != nil {
		t.Fatal(err)
	}
}

// y-crdt panics on an empty byte slice (YCRDT-NOTES.md bug 4); the guard must
// turn that into an error instead of taking the process down.
func TestPanicBecomesError(t *testing.T) {
	_, err := Merge([][]byte{{}, {0, 0}})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("Merge of an empty slice: err = %v, want ErrPanic", err)
	}
	var pe *PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 {
		t.Fatalf("no stack in %v", err)
	}
}
