package yproto

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// TestErrorFields runs every exported decoder on malformed input and checks that the error is
// an *Error whose Kind, Offset and Detail say what is wrong and where, that errors.Is finds
// the kind, and that Error() and Reason() are built from the fields.
func TestErrorFields(t *testing.T) {
	t.Parallel()
	const p53 = uint64(1) << 53
	validate := func(in []byte) error { _, err := ValidateUpdate(in, Limits{}); return err }
	stateVector := func(in []byte) error { _, err := ValidateStateVector(in); return err }
	message := func(in []byte) error { _, err := DecodeMessage(in); return err }
	awareness := func(in []byte) error { _, err := DecodeAwarenessUpdate(in, 2); return err }
	varUint := func(in []byte) error { _, _, err := ReadVarUint(in); return err }
	mergeAfterEmpty := func(in []byte) error { _, err := MergeUpdates([][]byte{{0, 0}, in}); return err }
	compact := func(in []byte) error { _, err := CompactUpdates([][]byte{in}); return err }
	diff := func(in []byte) error { _, err := DiffUpdate(in, []byte{0}); return err }
	diffSV := func(in []byte) error { _, err := DiffUpdate([]byte{0, 0}, in); return err }
	entry := func(client, clock uint64, state string) enc { return enc{}.u(client, clock).s(state) }

	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
		kind   error
		offset int
		detail string
	}{
		// item(ref) takes 8 bytes: counts, client, clock, info, parent info and key "t".
		{"update: string longer than the input", validate, item(refString).u(9).b('a', 'b'), ErrTruncated, 8, "string content length 9 exceeds the 2 bytes left"},
		{"update: unknown any tag", validate, item(refAny).u(1).b(115).end(), ErrMalformed, 9, "unknown any tag 115 in any content"},
		{"update: client 2^53", validate, enc{}.u(1, 1, p53, 0).b(refGC).u(1).end(), ErrOutOfRange, 2, "client 9007199254740992 is not below 2^53"},
		{"update: any nested 129 deep", validate, item(refAny).u(1).b(nested([]byte{anyArray, 1}, 200, []byte{anyNull})...).end(), ErrTooDeep, 9 + 128*2, "any value nests deeper than 128"},
		{"update: varUint without final byte", validate, enc{}.b(0x80), ErrTruncated, 0, "varUint has no final byte: client count"},
		{"update: varUint of 65 bits", validate, enc{}.u(0, 1).b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), ErrOutOfRange, 2, "varUint overflows 64 bits: delete set client"},
		{"update: zero delete length", validate, enc{}.u(0, 1, 1, 1, 5, 0), ErrMalformed, 5, "zero delete length"},
		{"update: embed not JSON", validate, item(refEmbed).s("{").end(), ErrMalformed, 8, "embed is not valid JSON"},
		{"update: two sections of a client", validate, enc{}.u(2, 1, 5, 0).b(refGC).u(1).u(1, 5, 1).b(refGC).u(1).end(), ErrMalformed, 11, "two client sections of client 5"},
		{"update: trailing byte", validate, enc{}.u(0, 0, 0), ErrMalformed, 2, "1 trailing bytes after delete set"},

		{"state vector: count 2^40", stateVector, enc{}.u(1 << 40), ErrTruncated, 0, "state vector count 1099511627776 exceeds the 0 bytes left"},
		{"state vector: clock 2^53", stateVector, enc{}.u(1, 7, p53), ErrOutOfRange, 2, "state vector clock 9007199254740992 is not below 2^53"},
		{"state vector: client twice", stateVector, enc{}.u(2, 7, 1, 7, 2), ErrMalformed, 3, "client 7 twice in state vector"},
		{"state vector: trailing byte", stateVector, enc{}.u(1, 7, 1, 0), ErrMalformed, 3, "1 trailing bytes after state vector"},

		{"message: empty", message, nil, ErrTruncated, 0, "varUint has no final byte: message type"},
		{"message: type 7", message, enc{}.u(7), ErrUnknownMessageType, 0, "message type 7"},
		{"message: sync type 3", message, enc{}.u(0, 3, 0), ErrUnknownMessageType, 1, "sync message type 3"},
		{"message: auth type 1", message, enc{}.u(2, 1).s("x"), ErrUnknownMessageType, 1, "auth message type 1"},
		{"message: payload longer than the frame", message, enc{}.u(0, 2, 5).b(1, 2), ErrTruncated, 2, "update length 5 exceeds the 2 bytes left"},
		{"message: trailing byte", message, enc{}.u(3, 0), ErrMalformed, 1, "1 trailing bytes after message"},

		{"awareness: too many entries", awareness, append(append(enc{}.u(3), entry(1, 1, "{}")...), append(entry(2, 1, "{}"), entry(3, 1, "{}")...)...), ErrTooManyEntries, 0, "3 awareness entries, at most 2 allowed"},
		{"awareness: clock 2^53", awareness, append(enc{}.u(1), entry(5, p53, "{}")...), ErrOutOfRange, 2, "awareness clock 9007199254740992 is not below 2^53"},
		{"awareness: state not JSON", awareness, append(enc{}.u(1), entry(5, 1, "{")...), ErrMalformed, 3, "awareness state is not valid JSON"},
		{"awareness: state an array", awareness, append(enc{}.u(1), entry(5, 1, "[]")...), ErrAwarenessState, 3, "awareness state of client 5 starts with '['"},

		{"varUint: empty", varUint, nil, ErrTruncated, 0, "varUint has no final byte"},
		{"varUint: 11 bytes", varUint, bytes.Repeat([]byte{0x80}, 11), ErrOutOfRange, 0, "varUint overflows 64 bits"},

		{"merge: trailing byte in the second update", mergeAfterEmpty, enc{}.u(0, 0, 0), ErrMalformed, 2, "1 trailing bytes after delete set"},
		{"merge: string longer than the input", mergeAfterEmpty, item(refString).u(9).b('a', 'b'), ErrTruncated, 8, "string content length 9 exceeds the 2 bytes left"},
		{"compact: delete set cut off", compact, enc{}.u(0, 1), ErrTruncated, 1, "delete set client count 1 exceeds the 0 bytes left"},
		{"diff: unknown any tag", diff, item(refAny).u(1).b(115).end(), ErrMalformed, 9, "unknown any tag 115 in any content"},
		{"diff: state vector count 1", diffSV, enc{}.u(1), ErrTruncated, 0, "state vector count 1 exceeds the 0 bytes left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.decode(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want an *Error", err, err)
			}
			if e.Kind != tc.kind || e.Offset != tc.offset || e.Detail != tc.detail {
				t.Fatalf("Error{%v, %d, %q}, want {%v, %d, %q}", e.Kind, e.Offset, e.Detail, tc.kind, tc.offset, tc.detail)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.kind)
			}
			if want := tc.detail + " at byte " + strconv.Itoa(tc.offset); e.Reason() != want {
				t.Errorf("Reason() = %q, want %q", e.Reason(), want)
			}
			if want := tc.kind.Error() + ": " + e.Reason(); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

// checkError asserts what every decoder error must be: an *Error whose Kind is one of the
// sentinels itself, at an offset within the input, with a detail. The fuzz targets call it
// on every error.
func checkError(t *testing.T, err error, inputLen int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error is not an *Error: %v (%T)", err, err)
	}
	known := false
	for _, s := range sentinels {
		known = known || e.Kind == s
	}
	if !known {
		t.Fatalf("Kind %v is not a sentinel: %v", e.Kind, err)
	}
	if e.Offset < 0 || e.Offset > inputLen || e.Detail == "" {
		t.Fatalf("offset %d of %d bytes, detail %q: %v", e.Offset, inputLen, e.Detail, err)
	}
}
