package yproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeAwarenessUpdateYProtocolsVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t).Awareness {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeAwarenessUpdate(v.Hex, 0)
			if err != nil {
				t.Fatalf("DecodeAwarenessUpdate: %v", err)
			}
			if len(got) != len(v.Entries) {
				t.Fatalf("%d entries, y-protocols wrote %d", len(got), len(v.Entries))
			}
			for i, e := range got {
				w := v.Entries[i]
				if e.ClientID != w.ClientID || e.Clock != w.Clock || string(e.State) != w.State {
					t.Errorf("entry %d = %d/%d/%s, want %d/%d/%s", i, e.ClientID, e.Clock, e.State, w.ClientID, w.Clock, w.State)
				}
				if e.Removed() != (w.State == "null") {
					t.Errorf("entry %d: Removed() = %v for state %s", i, e.Removed(), e.State)
				}
			}
			if enc := AppendAwarenessUpdate(nil, got); !bytes.Equal(enc, v.Hex) {
				t.Errorf("re-encoded %x, y-protocols wrote %x", enc, []byte(v.Hex))
			}
		})
	}
}

func TestAppendAwarenessUpdateNilStateIsNull(t *testing.T) {
	t.Parallel()
	b := AppendAwarenessUpdate(nil, []AwarenessEntry{{ClientID: 7, Clock: 3}})
	got, err := DecodeAwarenessUpdate(b, 1)
	if err != nil || len(got) != 1 || string(got[0].State) != "null" || !got[0].Removed() {
		t.Fatalf("got %+v, %v; want one removed entry", got, err)
	}
}

func TestDecodeAwarenessUpdateAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		state   string
		removed bool
	}{
		{"empty object", "{}", false},
		{"object with whitespace", " \t{ \"a\" : [1, {\"b\": null}] }\n", false},
		{"null", "null", true},
		{"null with whitespace", " null ", true},
		{"object of depth 128", strings.Repeat(`{"a":`, 127) + "{}" + strings.Repeat("}", 127), false},
	} {
		b := enc{}.u(1, 5, 1).s(tc.state)
		got, err := DecodeAwarenessUpdate(b, 0)
		if err != nil || len(got) != 1 || got[0].Removed() != tc.removed {
			t.Errorf("%s: got %+v, %v", tc.name, got, err)
		}
	}
}

func TestDecodeAwarenessUpdateHostile(t *testing.T) {
	t.Parallel()
	state := func(s string) []byte { return enc{}.u(1, 5, 1).s(s) }
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty input", nil, 0, ErrTruncated},
		{"count 2^40", enc{}.u(1<<40, 1, 1).s("{}"), 0, ErrTruncated},
		{"count 2^62", enc{}.u(1<<62, 1, 1).s("{}"), 0, ErrTruncated},
		{"count above maxEntries", enc{}.u(2, 1, 1).s("{}").u(2, 1).s("{}"), 1, ErrTooManyEntries},
		{"state length 2^40", enc{}.u(1, 1, 1, 1<<40).b('{', '}'), 0, ErrTruncated},
		{"number state", state("42"), 0, ErrAwarenessState},
		{"string state", state(`"me"`), 0, ErrAwarenessState},
		{"array state", state("[1,2]"), 0, ErrAwarenessState},
		{"boolean state", state("true"), 0, ErrAwarenessState},
		{"invalid JSON", state("{"), 0, ErrMalformed},
		{"invalid JSON after object", state("{}x"), 0, ErrMalformed},
		{"empty state", state(""), 0, ErrMalformed},
		{"undefined state", state("undefined"), 0, ErrMalformed},
		{"invalid UTF-8 state", enc{}.u(1, 5, 1, 4).b('"', 0xff, '"', ' '), 0, ErrMalformed},
		{"state nested 10^6", state(strings.Repeat(`{"a":`, 1_000_000) + "1" + strings.Repeat("}", 1_000_000)), 0, ErrTooDeep},
		{"state nested 129", state(strings.Repeat(`{"a":`, 128) + "{}" + strings.Repeat("}", 128)), 0, ErrTooDeep},
		{"client 2^53", enc{}.u(1, 1<<53, 1).s("{}"), 0, ErrOutOfRange},
		{"client 2^63", enc{}.u(1, 1<<63, 1).s("{}"), 0, ErrOutOfRange},
		{"clock 2^53", enc{}.u(1, 1, 1<<53).s("{}"), 0, ErrOutOfRange},
		{"trailing byte", enc{}.u(1, 1, 1).s("{}").b(0), 0, ErrMalformed},
		{"fewer entries than counted", enc{}.u(2, 1, 1).s("{}").u(0), 0, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeAwarenessUpdate(tc.in, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Errorf("entries not nil on error: %+v", got)
			}
		})
	}
}
