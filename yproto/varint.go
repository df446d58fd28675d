package yproto

// maxVarUintLen is the longest varUint that can hold 64 bits: 9 × 7 bits plus one bit in
// the tenth byte.
const maxVarUintLen = 10

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER, 2^53-1. Yjs stores client IDs,
// clocks and lengths as JS numbers, so it can neither write nor exactly read anything larger.
const maxSafeInteger = 1<<53 - 1

// AppendVarUint appends v as an unsigned LEB128 varUint, the way lib0 writeVarUint does:
// 7 bits per byte, least significant first, high bit set on every byte but the last.
func AppendVarUint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// ReadVarUint reads a varUint from the start of b and returns it with the number of bytes it
// took. It fails with an *Error at offset 0, of kind ErrTruncated if b ends before the final
// byte and ErrOutOfRange if the value does not fit in 64 bits; it reads at most 10 bytes.
// Non-minimal encodings (such as 0x80 0x00 for 0) are accepted, as lib0 accepts them.
func ReadVarUint(b []byte) (v uint64, n int, err error) {
	v, n, kind := decodeVarUint(b)
	if kind != nil {
		return 0, 0, &Error{Kind: kind, Detail: varUintDetail(kind)}
	}
	return v, n, nil
}

// decodeVarUint is ReadVarUint without building an error: on failure it returns the kind
// (ErrTruncated or ErrOutOfRange), for the caller to say what was being read.
func decodeVarUint(b []byte) (v uint64, n int, kind error) {
	for i := 0; i < len(b) && i < maxVarUintLen; i++ {
		c := b[i]
		if i == maxVarUintLen-1 && c > 1 {
			return 0, 0, ErrOutOfRange
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, ErrTruncated
}

// varUintDetail is the Detail of a varUint that decodeVarUint rejected with kind.
func varUintDetail(kind error) string {
	if kind == ErrOutOfRange {
		return "varUint overflows 64 bits"
	}
	return "varUint has no final byte"
}

// AppendVarBytes appends p prefixed with its length as a varUint (lib0 writeVarUint8Array).
func AppendVarBytes(dst, p []byte) []byte {
	dst = AppendVarUint(dst, uint64(len(p)))
	return append(dst, p...)
}

// AppendVarString appends s as lib0 writeVarString does: its UTF-8 length as a varUint, then
// its bytes. It does not check that s is valid UTF-8.
func AppendVarString(dst []byte, s string) []byte {
	dst = AppendVarUint(dst, uint64(len(s)))
	return append(dst, s...)
}
