package wstransport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/wsframe"
)

// serverFrame encodes an unmasked frame with the given byte 0.
func serverFrame(b0 byte, payload []byte) []byte {
	var b []byte
	switch n := len(payload); {
	case n < 126:
		b = []byte{b0, byte(n)}
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16([]byte{b0, 126}, uint16(n))
	default:
		b = binary.BigEndian.AppendUint64([]byte{b0, 127}, uint64(n))
	}
	return append(b, payload...)
}

// feedChunks feeds stream to a fresh framer in chunks of size (all at once
// if 0) and returns the framer, the stream offsets at which it stood
// between frames after a chunk, and the error.
func feedChunks(stream []byte, size int) (framer, []int, error) {
	var f framer
	var between []int
	if size == 0 {
		size = max(len(stream), 1)
	}
	for off := 0; off < len(stream); off += size {
		end := min(off+size, len(stream))
		if err := f.feed(stream[off:end]); err != nil {
			return f, between, err
		}
		if f.between() {
			between = append(between, end)
		}
	}
	return f, between, nil
}

func TestFramer(t *testing.T) {
	t.Parallel()
	var stream []byte
	var ends []int
	for _, fr := range [][]byte{
		wsframe.AppendBinaryFrame(nil, nil),
		wsframe.AppendBinaryFrame(nil, []byte("hello")),
		serverFrame(0x89, []byte("1")),
		wsframe.AppendBinaryFrame(nil, make([]byte, 126)),
		serverFrame(0x8A, bytes.Repeat([]byte("p"), 125)),
		wsframe.AppendBinaryFrame(nil, make([]byte, 65536)),
		serverFrame(0x01, []byte("frag")), // text, not final
		serverFrame(0x89, nil),
		serverFrame(0x80, []byte("ment")), // final continuation
		serverFrame(0x88, append([]byte{0x03, 0xe8}, "bye"...)),
	} {
		stream = append(stream, fr...)
		ends = append(ends, len(stream))
	}
	for _, size := range []int{1, 2, 3, 7, 100} {
		f, between, err := feedChunks(stream, size)
		if err != nil || !f.between() {
			t.Fatalf("chunks of %d: %v, between %v", size, err, f.between())
		}
		// Every offset at a chunk end where the framer stood between frames
		// is a frame end, and with 1-byte chunks every frame end is seen.
		for _, off := range between {
			if !contains(ends, off) {
				t.Fatalf("chunks of %d: between frames at %d, not a frame end", size, off)
			}
		}
		if size == 1 && len(between) != len(ends) {
			t.Fatalf("byte at a time: between frames at %v, frame ends %v", between, ends)
		}
	}

	for _, tt := range []struct {
		name   string
		stream []byte
	}{
		{"the 101 response", []byte("HTTP/1.1 101 Switching Protocols\r\n")},
		{"masked", []byte{0x82, 0x81, 1, 2, 3, 4, 'x'}},
		{"RSV1 (compression)", serverFrame(0xC2, []byte("x"))},
		{"reserved opcode", serverFrame(0x83, nil)},
		{"reserved control opcode", serverFrame(0x8B, nil)},
		{"fragmented ping", serverFrame(0x09, nil)},
		{"ping of 126 bytes", serverFrame(0x89, make([]byte, 126))},
		{"64-bit length with its top bit set", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}},
		{"garbage after a frame", append(serverFrame(0x89, nil), 0x7f)},
	} {
		for _, size := range []int{0, 1} {
			if _, _, err := feedChunks(tt.stream, size); !errors.Is(err, errNotFrame) {
				t.Errorf("%s, chunks of %d: %v, want errNotFrame", tt.name, size, err)
			}
		}
	}
}

func contains(s []int, x int) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// FuzzFramer checks that the framer's verdict and state do not depend on
// how the stream is split.
func FuzzFramer(f *testing.F) {
	f.Add(append(wsframe.AppendBinaryFrame(nil, []byte("hi")), serverFrame(0x89, []byte("1"))...), []byte{1, 2, 3})
	f.Add(wsframe.AppendBinaryFrame(nil, make([]byte, 70000)), []byte{9, 0, 1})
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\n"), []byte{})
	f.Add([]byte{0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, []byte{5})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole, _, errWhole := feedChunks(data, 0)
		bytewise, _, errBytewise := feedChunks(data, 1)
		var split framer
		var errSplit error
		rest := data
		for _, c := range cuts {
			k := min(int(c)%20, len(rest))
			if errSplit = split.feed(rest[:k]); errSplit != nil {
				break
			}
			rest = rest[k:]
		}
		if errSplit == nil {
			errSplit = split.feed(rest)
		}
		if (errWhole == nil) != (errBytewise == nil) || (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("errors: whole %v, byte at a time %v, split %v", errWhole, errBytewise, errSplit)
		}
		if errWhole == nil && (whole != bytewise || whole != split) {
			t.Fatalf("states: whole %+v, byte at a time %+v, split %+v", whole, bytewise, split)
		}
	})
}
