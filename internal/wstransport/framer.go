package wstransport

import (
	"errors"
	"fmt"
)

// errNotFrame is returned by a write to the socket of bytes that do not
// continue a well-formed stream of server frames. Nothing of such a write
// reaches the socket, and no write after it does.
var errNotFrame = errors.New("wstransport: bytes written to the socket are not a server frame")

// framerState is where a framer stands within a frame.
type framerState uint8

const (
	framerFirst   framerState = iota // expecting byte 0: FIN, RSV1-3, opcode
	framerSecond                     // expecting byte 1: MASK, 7-bit length
	framerLength                     // reading a 16-bit or 64-bit extended length
	framerPayload                    // skipping payload bytes
)

// framer follows a stream of frames written by a server (RFC 6455 §5.2) to
// find where each one ends. It accepts only what this server sends: no
// mask, no RSV bit (compression is never negotiated), a defined opcode,
// control frames final and of at most 125 bytes, a 64-bit length with its
// top bit clear. Headers may be split anywhere across chunks; payload is
// skipped by counting.
//
// The zero value is between frames. A framer is not safe for concurrent
// use.
type framer struct {
	state     framerState
	op        byte   // opcode of the frame being read
	need      uint8  // extended length bytes still to read
	remaining uint64 // payload bytes still to skip; the length being assembled in framerLength
}

// between reports whether the stream so far ends at a frame boundary.
func (f *framer) between() bool { return f.state == framerFirst }

// feed follows p. On an error the framer's state is undefined; the stream
// must not be used any more.
func (f *framer) feed(p []byte) error {
	for i := 0; i < len(p); {
		switch f.state {
		case framerFirst:
			b := p[i]
			i++
			if b&0x70 != 0 {
				return fmt.Errorf("%w: RSV bits set in byte 0x%02x", errNotFrame, b)
			}
			f.op = b & 0x0f
			switch f.op {
			case 0x0, 0x1, 0x2:
			case 0x8, 0x9, 0xA:
				if b&0x80 == 0 {
					return fmt.Errorf("%w: fragmented control frame (opcode %d)", errNotFrame, f.op)
				}
			default:
				return fmt.Errorf("%w: reserved opcode %d", errNotFrame, f.op)
			}
			f.state = framerSecond
		case framerSecond:
			b := p[i]
			i++
			if b&0x80 != 0 {
				return fmt.Errorf("%w: masked", errNotFrame)
			}
			n := uint64(b & 0x7f)
			if f.op >= 0x8 && n > 125 {
				return fmt.Errorf("%w: control frame (opcode %d) with a length code of %d", errNotFrame, f.op, n)
			}
			switch n {
			case 126:
				f.need, f.remaining, f.state = 2, 0, framerLength
			case 127:
				f.need, f.remaining, f.state = 8, 0, framerLength
			default:
				f.startPayload(n)
			}
		case framerLength:
			f.remaining = f.remaining<<8 | uint64(p[i])
			i++
			f.need--
			if f.need == 0 {
				if f.remaining>>63 != 0 {
					return fmt.Errorf("%w: 64-bit length with its top bit set", errNotFrame)
				}
				f.startPayload(f.remaining)
			}
		case framerPayload:
			k := uint64(len(p) - i)
			if k >= f.remaining {
				i += int(f.remaining)
				f.remaining, f.state = 0, framerFirst
			} else {
				i = len(p)
				f.remaining -= k
			}
		}
	}
	return nil
}

func (f *framer) startPayload(n uint64) {
	f.remaining = n
	if n == 0 {
		f.state = framerFirst
		return
	}
	f.state = framerPayload
}
