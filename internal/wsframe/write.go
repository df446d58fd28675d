package wsframe

import "encoding/binary"

// AppendBinaryFrame appends msg as one unfragmented binary frame from a
// server (RFC 6455 §5.2: FIN set, opcode 2, not masked). Frames built this
// way and written whole to the connection interleave safely with
// coder/websocket's own frames (pings, pongs, close), which it also writes
// whole: a net.Conn's Write is atomic with respect to other Writes.
func AppendBinaryFrame(dst, msg []byte) []byte {
	const finBinary = 0x80 | 0x2
	switch n := len(msg); {
	case n <= 125:
		dst = append(dst, finBinary, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, finBinary, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, finBinary, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, msg...)
}
