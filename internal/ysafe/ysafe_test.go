package ysafe

import (
	"bytes"
	"testing"
)

func TestStateVectorOfEmptyUpdate(t *testing.T) {
	sv, err := StateVector([]byte{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sv, []byte{0}) {
		t.Fatalf("state vector of empty doc = %x, want 00", sv)
	}
}
