package yproto

import (
	"errors"
	"maps"
	"testing"
)

func TestValidateStateVectorYjsVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t).StateVectors {
		got, err := ValidateStateVector(v.Hex)
		if err != nil {
			t.Errorf("%s: %v", v.Name, err)
			continue
		}
		want := map[uint64]uint64{}
		for _, e := range v.Entries {
			want[e.Client] = e.Clock
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: got %v, Yjs decodeStateVector says %v", v.Name, got, want)
		}
	}
}

// TestValidateStateVectorOfUpdates checks that the state vector payloads in the y-protocols
// and pycrdt sync step 1 messages validate too.
func TestValidateStateVectorOfMessages(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	for _, v := range append(append([]messageVector{}, vf.Messages...), vf.PycrdtMessages...) {
		m, err := DecodeMessage(v.Hex)
		if err != nil || m.Type != MessageSync || m.Sync != SyncStep1 {
			continue
		}
		if _, err := ValidateStateVector(m.Payload); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

func TestValidateStateVectorHostile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty input", nil, ErrTruncated},
		{"2^40 entries", enc{}.u(1<<40, 1, 1), ErrTruncated},
		{"2^62 entries", enc{}.u(1<<62, 1, 1, 2, 2), ErrTruncated},
		{"count larger than entries", enc{}.u(3, 1, 1, 2, 2), ErrTruncated},
		{"truncated clock", enc{}.u(1, 1).b(0x80), ErrTruncated},
		{"client 2^63", enc{}.u(1, 1<<63, 1), ErrOutOfRange},
		{"client 2^53", enc{}.u(1, 1<<53, 1), ErrOutOfRange},
		{"clock 2^53", enc{}.u(1, 1, 1<<53), ErrOutOfRange},
		{"duplicate client", enc{}.u(2, 5, 1, 5, 2), ErrMalformed},
		{"trailing byte", enc{}.u(1, 5, 1, 0), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ValidateStateVector(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if m != nil {
				t.Errorf("map not nil on error: %v", m)
			}
		})
	}
}

func TestValidateStateVectorAccepts(t *testing.T) {
	t.Parallel()
	got, err := ValidateStateVector(enc{}.u(3, 1<<53-1, 1<<53-1, 0, 0, 7, 300))
	want := map[uint64]uint64{1<<53 - 1: 1<<53 - 1, 0: 0, 7: 300}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
}
