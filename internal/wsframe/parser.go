package wsframe

import "math"

// parseState is where the parser stands within a frame.
type parseState uint8

const (
	stateFirst   parseState = iota // expecting byte 0: FIN, RSV1-3, opcode
	stateSecond                    // expecting byte 1: MASK, 7-bit length
	stateLength                    // reading a 16-bit or 64-bit extended length
	stateMask                      // reading the 4-byte masking key
	statePayload                   // skipping payload bytes
	stateTripped                   // a message was too big; nothing more is parsed
)

// Opcodes that carry a data message (RFC 6455 §5.2). Control frames
// (opcode 8 and up) may interleave with a fragmented message and do not count
// towards its size; reserved opcodes 3-7 do not count either (coder/websocket
// rejects them with 1002 once it reads their header).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
)

// parser follows a stream of WebSocket frames a chunk at a time and sums the
// announced payload lengths of each data message. It reads headers byte by
// byte, so they may be split anywhere across chunks, and skips payload by
// counting it.
//
// It checks only what the limit needs; everything else (RSV bits, unmasked
// client frames, control frame sizes, unknown opcodes, non-minimal length
// encodings) is left to coder/websocket.
//
// The zero value has limit 0; use newParser. A parser is a plain value with
// no pointers, so two parsers can be compared with ==. It is not safe for
// concurrent use.
type parser struct {
	limit int64 // largest allowed data message; < 0 for no limit

	state     parseState
	b0        byte   // byte 0 of the frame being read
	masked    bool   // MASK bit of the frame being read
	need      uint8  // bytes still to read in stateLength or stateMask
	length    uint64 // announced payload length, assembled in stateLength
	remaining uint64 // payload bytes still to skip in statePayload
	total     int64  // announced bytes of the unfinished data message so far
	announced int64  // the announced total that tripped the parser
}

func newParser(limit int64) parser {
	return parser{limit: limit}
}

// tripped reports whether a message was too big.
func (ps *parser) tripped() bool { return ps.state == stateTripped }

// feed parses p. It returns len(p), false if p holds no too-big header. If it
// does, it returns the index within p of the byte that completed that
// header's length (all bytes before it belong to earlier frames or to the
// start of the offending header) and true; from then on the parser is
// tripped, announced holds the offending total, and every later call returns
// 0, true.
func (ps *parser) feed(p []byte) (n int, tripped bool) {
	if ps.state == stateTripped {
		return 0, true
	}
	i := 0
	for i < len(p) {
		switch ps.state {
		case stateFirst:
			ps.b0 = p[i]
			ps.state = stateSecond
			i++
		case stateSecond:
			b := p[i]
			ps.masked = b&0x80 != 0
			switch l := b & 0x7f; l {
			case 126:
				ps.length, ps.need, ps.state = 0, 2, stateLength
			case 127:
				ps.length, ps.need, ps.state = 0, 8, stateLength
			default:
				ps.length = uint64(l)
				if ps.endLength() {
					return i, true
				}
			}
			i++
		case stateLength:
			ps.length = ps.length<<8 | uint64(p[i])
			ps.need--
			if ps.need == 0 && ps.endLength() {
				return i, true
			}
			i++
		case stateMask:
			ps.need--
			if ps.need == 0 {
				ps.startPayload()
			}
			i++
		case statePayload:
			k := uint64(len(p) - i)
			if k > ps.remaining {
				k = ps.remaining
			}
			// k <= len(p)-i, so it fits in an int.
			i += int(k)
			ps.remaining -= k
			if ps.remaining == 0 {
				ps.state = stateFirst
			}
		}
	}
	return len(p), false
}

// endLength is called once the frame's payload length is known. It trips the
// parser if the frame makes its data message too big, and otherwise moves on
// to the masking key or the payload.
func (ps *parser) endLength() (tripped bool) {
	if ps.length > math.MaxInt64 {
		// The most significant bit must be 0 (RFC 6455 §5.2): a protocol
		// error, treated as the largest possible message.
		ps.trip(math.MaxInt64)
		return true
	}
	n := int64(ps.length)
	if op := ps.b0 & 0x0f; op <= opBinary {
		total := n
		if op == opContinuation {
			// A continuation with no message open is a protocol error that
			// coder/websocket reports; counting it on top of whatever came
			// before is the cautious choice.
			total = addSat(ps.total, n)
		}
		if ps.limit >= 0 && total > ps.limit {
			ps.trip(total)
			return true
		}
		if ps.b0&0x80 != 0 { // FIN: the message is complete
			total = 0
		}
		ps.total = total
	}
	ps.remaining = ps.length
	if ps.masked {
		ps.need, ps.state = 4, stateMask
		return false
	}
	ps.startPayload()
	return false
}

func (ps *parser) startPayload() {
	if ps.remaining == 0 {
		ps.state = stateFirst
		return
	}
	ps.state = statePayload
}

func (ps *parser) trip(announced int64) {
	ps.state = stateTripped
	ps.announced = announced
}

// addSat returns a+b for non-negative a and b, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
