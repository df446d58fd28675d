package wsframe

import "encoding/binary"

// AppendBinaryFrame appends msg as one unfragmented binary frame from a
// server (RFC 6455 §5.2: FIN set, opcode 2, not masked). Written to a
// connection that coder/websocket also writes to, such frames must not
// interleave with its frames (pings, pongs, close): internal/wstransport
// writes them under the same write lock as coder/websocket's frames.
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
