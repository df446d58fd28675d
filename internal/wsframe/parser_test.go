package wsframe

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"testing"
)

// header encodes a client frame header with the shortest length encoding.
func header(fin bool, op byte, masked bool, n uint64) []byte {
	switch {
	case n < 126:
		return headerEnc(fin, op, masked, n, 7)
	case n <= math.MaxUint16:
		return headerEnc(fin, op, masked, n, 16)
	default:
		return headerEnc(fin, op, masked, n, 64)
	}
}

// headerEnc encodes a frame header with the given length encoding (7, 16 or
// 64 bits), masking key 0x01020304 if masked.
func headerEnc(fin bool, op byte, masked bool, n uint64, bits int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if masked {
		m = 0x80
	}
	h := []byte{b0}
	switch bits {
	case 7:
		h = append(h, m|byte(n))
	case 16:
		h = append(h, m|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, m|127)
		h = binary.BigEndian.AppendUint64(h, n)
	}
	if masked {
		h = append(h, 1, 2, 3, 4)
	}
	return h
}

// frame encodes a whole masked client frame; the payload is not actually
// masked, which the parser does not look at.
func frame(fin bool, op byte, payload []byte) []byte {
	return append(header(fin, op, true, uint64(len(payload))), payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// feedChunks feeds stream to a fresh parser in chunks of the given sizes,
// then the rest in chunks of rest bytes (all at once if rest is 0), and
// returns the stream offset of the tripping byte, or -1, and the parser.
func feedChunks(t testing.TB, stream []byte, limit int64, sizes []int, rest int) (int, parser) {
	t.Helper()
	p := newParser(limit)
	off := 0
	at := -1
	feed := func(chunk []byte) {
		n, tripped := p.feed(chunk)
		if n < 0 || n > len(chunk) {
			t.Fatalf("feed of %d bytes returned n = %d", len(chunk), n)
		}
		switch {
		case at >= 0:
			if n != 0 || !tripped {
				t.Fatalf("feed after tripping returned %d, %v; want 0, true", n, tripped)
			}
		case tripped:
			at = off + n
		case n != len(chunk):
			t.Fatalf("feed of %d bytes returned n = %d without tripping", len(chunk), n)
		}
		off += len(chunk)
	}
	for _, s := range sizes {
		if s > len(stream) {
			s = len(stream)
		}
		feed(stream[:s])
		stream = stream[s:]
	}
	for rest > 0 && len(stream) > rest {
		feed(stream[:rest])
		stream = stream[rest:]
	}
	feed(stream)
	return at, p
}

func TestParser(t *testing.T) {
	t.Parallel()
	const tib = 1 << 40
	big := make([]byte, 70000)
	// Payload that looks like a huge header must be skipped, not parsed.
	decoy := headerEnc(true, opBinary, true, tib, 64)
	tests := []struct {
		name          string
		stream        []byte
		limit         int64
		wantAt        int // index of the tripping byte, -1 for none
		wantAnnounced int64
	}{
		{"empty", nil, 10, -1, 0},
		{"small binary", frame(true, opBinary, []byte("hello")), 10, -1, 0},
		{"empty message with limit 0", frame(true, opBinary, nil), 0, -1, 0},
		{"one byte over limit 0", frame(true, opBinary, []byte("x")), 0, 1, 1},
		{"exactly limit, 7-bit", frame(true, opText, make([]byte, 125)), 125, -1, 0},
		{"limit+1, 7-bit", frame(true, opText, make([]byte, 125)), 124, 1, 125},
		{"exactly limit, 16-bit", frame(true, opBinary, make([]byte, 300)), 300, -1, 0},
		{"limit+1, 16-bit", frame(true, opBinary, make([]byte, 300)), 299, 3, 300},
		{"exactly limit, 64-bit", frame(true, opBinary, big), 70000, -1, 0},
		{"limit+1, 64-bit", frame(true, opBinary, big), 69999, 9, 70000},
		{"non-minimal 64-bit encoding", headerEnc(true, opBinary, true, 5, 64), 4, 9, 5},
		{"1 TiB announced, masked", cat(headerEnc(true, opBinary, true, tib, 64), make([]byte, 10)), 1 << 20, 9, tib},
		{"1 TiB announced, unmasked", headerEnc(true, opBinary, false, tib, 64), 1 << 20, 9, tib},
		{"1 TiB after a small message", cat(frame(true, opText, []byte("hi")), headerEnc(true, opBinary, true, tib, 64)), 1 << 20, 8 + 9, tib},
		{"no limit", headerEnc(true, opBinary, true, tib, 64), -1, -1, 0},
		{"top bit set", headerEnc(true, opBinary, true, 1<<63, 64), 1 << 20, 9, math.MaxInt64},
		{"top bit set, no limit", headerEnc(true, opBinary, true, math.MaxUint64, 64), -1, 9, math.MaxInt64},
		{"top bit set on a control frame", headerEnc(true, 0x9, true, 1<<63, 64), 1 << 20, 9, math.MaxInt64},
		{"fragments within limit", cat(
			frame(false, opText, make([]byte, 60)),
			frame(false, opContinuation, make([]byte, 60)),
			frame(true, opContinuation, make([]byte, 60)),
		), 180, -1, 0},
		{"fragments over limit", cat(
			frame(false, opText, make([]byte, 60)),
			frame(false, opContinuation, make([]byte, 60)),
			frame(true, opContinuation, make([]byte, 61)),
		), 180, 66 + 66 + 1, 181},
		{"control frames do not count", cat(
			frame(false, opBinary, make([]byte, 100)),
			frame(true, 0x9, make([]byte, 100)),
			frame(true, 0xA, make([]byte, 100)),
			frame(true, 0x8, make([]byte, 2)),
			frame(true, opContinuation, make([]byte, 100)),
		), 200, -1, 0},
		{"huge control frame does not count", headerEnc(true, 0x9, true, tib, 64), 10, -1, 0},
		{"reserved opcode does not count", headerEnc(true, 0x3, true, tib, 64), 10, -1, 0},
		{"FIN ends the message", cat(
			frame(true, opBinary, make([]byte, 150)),
			frame(true, opBinary, make([]byte, 150)),
		), 200, -1, 0},
		{"new data frame restarts the count", cat(
			frame(false, opText, make([]byte, 150)),
			frame(true, opText, make([]byte, 150)),
		), 200, -1, 0},
		{"continuation after FIN counts from zero", cat(
			frame(true, opBinary, make([]byte, 150)),
			frame(true, opContinuation, make([]byte, 150)),
		), 200, -1, 0},
		{"payload that looks like a header", cat(frame(true, opBinary, decoy), frame(true, opBinary, decoy)), 100, -1, 0},
		{"header split before the payload", headerEnc(true, opBinary, true, 10, 7), 100, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			splits := map[string]struct {
				sizes []int
				rest  int
			}{
				"one shot":       {nil, 0},
				"byte at a time": {nil, 1},
				"empty chunks":   {[]int{0, 1, 0, 2, 0, 3, 0, 5}, 0},
				"7-byte chunks":  {nil, 7},
			}
			for how, split := range splits {
				at, p := feedChunks(t, tt.stream, tt.limit, split.sizes, split.rest)
				if at != tt.wantAt {
					t.Errorf("%s: tripped at %d, want %d", how, at, tt.wantAt)
				}
				if at >= 0 && p.announced != tt.wantAnnounced {
					t.Errorf("%s: announced %d, want %d", how, p.announced, tt.wantAnnounced)
				}
			}
		})
	}
}

// TestParserStateAfterFrames checks that the parser is back between frames
// after whole frames and inside a message after a non-final fragment.
func TestParserStateAfterFrames(t *testing.T) {
	t.Parallel()
	p := newParser(1000)
	stream := cat(frame(false, opBinary, make([]byte, 300)), frame(true, 0x9, []byte("ping")))
	if n, tripped := p.feed(stream); n != len(stream) || tripped {
		t.Fatalf("feed = %d, %v", n, tripped)
	}
	if p.state != stateFirst || p.total != 300 {
		t.Fatalf("state %d total %d, want %d 300", p.state, p.total, stateFirst)
	}
	stream = frame(true, opContinuation, make([]byte, 700))
	if n, tripped := p.feed(stream); n != len(stream) || tripped {
		t.Fatalf("feed = %d, %v", n, tripped)
	}
	if p.state != stateFirst || p.total != 0 {
		t.Fatalf("state %d total %d, want %d 0", p.state, p.total, stateFirst)
	}
}

// TestParserSaturates checks that a message total past math.MaxInt64 is
// reported as math.MaxInt64 rather than wrapping around.
func TestParserSaturates(t *testing.T) {
	t.Parallel()
	for _, limit := range []int64{-1, math.MaxInt64 - 1} {
		p := newParser(limit)
		p.total = math.MaxInt64 - 1 // as after a non-final fragment that long
		n, tripped := p.feed(headerEnc(true, opContinuation, true, 5, 7))
		if limit < 0 {
			if tripped || p.total != 0 {
				t.Errorf("limit %d: tripped %v at %d, total %d", limit, tripped, n, p.total)
			}
			continue
		}
		if !tripped || n != 1 || p.announced != math.MaxInt64 {
			t.Errorf("limit %d: feed = %d, %v; announced %d", limit, n, tripped, p.announced)
		}
	}
	if got := addSat(math.MaxInt64, math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("addSat(max, max) = %d", got)
	}
}

// refTrip is an independent one-shot decoder of a whole stream: it returns
// the index of the byte that completes the first too-big header, or -1, and
// the announced total, summed without overflow.
func refTrip(data []byte, limit int64) (at int, announced int64) {
	total := new(big.Int)
	maxInt := new(big.Int).SetInt64(math.MaxInt64)
	lim := big.NewInt(limit)
	i := 0
	for {
		if len(data)-i < 2 {
			return -1, 0
		}
		b0, b1 := data[i], data[i+1]
		i += 2
		n := uint64(b1 & 0x7f)
		switch n {
		case 126:
			if len(data)-i < 2 {
				return -1, 0
			}
			n = uint64(binary.BigEndian.Uint16(data[i:]))
			i += 2
		case 127:
			if len(data)-i < 8 {
				return -1, 0
			}
			n = binary.BigEndian.Uint64(data[i:])
			i += 8
		}
		last := i - 1
		if n > math.MaxInt64 {
			return last, math.MaxInt64
		}
		if op := b0 & 0x0f; op <= 2 {
			if op != 0 {
				total.SetInt64(0)
			}
			total.Add(total, new(big.Int).SetUint64(n))
			if limit >= 0 && total.Cmp(lim) > 0 {
				if total.Cmp(maxInt) > 0 {
					return last, math.MaxInt64
				}
				return last, total.Int64()
			}
			if b0&0x80 != 0 {
				total.SetInt64(0)
			}
		}
		if b1&0x80 != 0 {
			i += 4
		}
		if i > len(data) || uint64(len(data)-i) < n {
			return -1, 0
		}
		i += int(n)
	}
}

func FuzzParser(f *testing.F) {
	const tib = 1 << 40
	f.Add(cat(headerEnc(true, opBinary, true, tib, 64), make([]byte, 10)), []byte{3, 1, 1, 1}, int64(1<<20))
	f.Add(cat(frame(false, opText, make([]byte, 200)), frame(true, 0x9, []byte("p")), headerEnc(true, opContinuation, true, 70000, 64), make([]byte, 20)), []byte{1, 7, 13}, int64(70100))
	f.Add(headerEnc(true, opBinary, true, math.MaxUint64, 64), []byte{}, int64(-1))
	f.Add(frame(true, opBinary, headerEnc(true, opBinary, false, tib, 64)), []byte{0, 0, 5}, int64(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, limit int64) {
		sizes := make([]int, len(cuts))
		for i, c := range cuts {
			sizes[i] = int(c) % 18 // 0-17 bytes, empty chunks included
		}
		at1, p1 := feedChunks(t, data, limit, nil, 0)
		at2, p2 := feedChunks(t, data, limit, sizes, 0)
		at3, p3 := feedChunks(t, data, limit, nil, 1)
		if at1 != at2 || p1 != p2 {
			t.Fatalf("split %v: tripped at %d, state %+v; one shot: %d, %+v", sizes, at2, p2, at1, p1)
		}
		if at1 != at3 || p1 != p3 {
			t.Fatalf("byte at a time: tripped at %d, state %+v; one shot: %d, %+v", at3, p3, at1, p1)
		}
		wantAt, wantAnnounced := refTrip(data, limit)
		if at1 != wantAt {
			t.Fatalf("tripped at %d, reference decoder at %d", at1, wantAt)
		}
		if at1 >= 0 && p1.announced != wantAnnounced {
			t.Fatalf("announced %d, reference decoder %d", p1.announced, wantAnnounced)
		}
	})
}

func BenchmarkParser(b *testing.B) {
	var stream []byte
	for range 64 {
		stream = append(stream, frame(true, opBinary, make([]byte, 1000))...)
		stream = append(stream, frame(true, 0x9, []byte("ping"))...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		p := newParser(1 << 20)
		for s := stream; len(s) > 0; {
			k := min(len(s), 4096)
			p.feed(s[:k])
			s = s[k:]
		}
	}
}
