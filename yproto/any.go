package yproto

// The tags of lib0's readAny (lib0/decoding.js readAnyLookupTable), counted down from 127.
const (
	anyUndefined  = 127
	anyNull       = 126
	anyVarInt     = 125 // lib0 signed varInt
	anyFloat32    = 124 // 4 bytes, big endian
	anyFloat64    = 123 // 8 bytes, big endian
	anyBigInt64   = 122 // 8 bytes, big endian
	anyFalse      = 121
	anyTrue       = 120
	anyString     = 119 // varString
	anyObject     = 118 // varUint count, count × (varString key, any)
	anyArray      = 117 // varUint count, count × any
	anyUint8Array = 116 // varUint8Array
)

// maxVarIntLen is the longest lib0 varInt that holds a safe integer: 6 bits in the first byte
// and 7 in each of the next seven make 55 bits.
const maxVarIntLen = 8

// anyFrame is one open object or array while reading nested Any values.
type anyFrame struct {
	left   uint64 // values still to read in this container
	object bool   // every value is preceded by a varString key
}

// anyReader reads lib0 Any values without recursion: open containers live on an explicit
// stack that never grows past maxDepth, so nesting costs memory in proportion to the limit,
// not to the input, and the Go stack stays flat however deep the input claims to go. The
// stack is reused across values, so a whole update allocates it at most once or twice.
type anyReader struct {
	reader
	maxDepth int
	stack    []anyFrame
}

// readAny reads one complete Any value, including everything nested in it.
func (a *anyReader) readAny(what string) error {
	a.stack = a.stack[:0]
	for {
		if n := len(a.stack); n > 0 && a.stack[n-1].object {
			if _, err := a.readString("object key"); err != nil {
				return err
			}
		}
		opened, err := a.readAnyValue(what)
		if err != nil {
			return err
		}
		if opened {
			continue // the next value belongs to the container just opened
		}
		if a.closeFinished() {
			return nil
		}
	}
}

// readAnyValue reads one tag and its scalar payload. For a non-empty object or array it
// only pushes a frame and reports opened; the caller then reads the elements.
func (a *anyReader) readAnyValue(what string) (opened bool, err error) {
	start := a.pos
	tag, err := a.readByte(what)
	if err != nil {
		return false, err
	}
	switch tag {
	case anyUndefined, anyNull, anyFalse, anyTrue:
		return false, nil
	case anyVarInt:
		return false, a.readVarInt()
	case anyFloat32:
		return false, a.skip("float32", 4)
	case anyFloat64:
		return false, a.skip("float64", 8)
	case anyBigInt64:
		return false, a.skip("bigint64", 8)
	case anyString:
		_, err := a.readString("any string")
		return false, err
	case anyUint8Array:
		_, err := a.readVarBytes("any Uint8Array")
		return false, err
	case anyObject, anyArray:
		return a.openContainer(tag == anyObject, start)
	}
	return false, errAt(ErrMalformed, start, "unknown any tag %d in %s", tag, what)
}

func (a *anyReader) openContainer(object bool, start int) (opened bool, err error) {
	if len(a.stack) >= a.maxDepth {
		return false, errAt(ErrTooDeep, start, "any value nests deeper than %d", a.maxDepth)
	}
	minSize := 1 // an array element is at least a tag
	if object {
		minSize = 2 // an object entry is at least a key length and a tag
	}
	n, err := a.readCount("any container count", minSize)
	if err != nil || n == 0 {
		return false, err
	}
	a.stack = append(a.stack, anyFrame{left: n, object: object})
	return true, nil
}

// closeFinished accounts for one finished value: it pops every container that this value
// completed and reports whether the outermost value is complete.
func (a *anyReader) closeFinished() (done bool) {
	for n := len(a.stack); n > 0; n = len(a.stack) {
		top := &a.stack[n-1]
		top.left--
		if top.left > 0 {
			return false
		}
		a.stack = a.stack[:n-1]
	}
	return true
}

// readVarInt reads a lib0 signed varInt: the first byte holds a continuation bit (0x80), the
// sign (0x40) and 6 bits of magnitude; every further byte a continuation bit and 7 bits.
// lib0 throws once the magnitude exceeds 2^53-1, and so does this.
func (a *anyReader) readVarInt() error {
	start := a.pos
	var magnitude uint64
	shift := uint(0)
	for i := 0; i < maxVarIntLen; i++ {
		c, err := a.readByte("any varInt")
		if err != nil {
			return err
		}
		bits, more := uint64(c&0x7f), c >= 0x80
		if i == 0 {
			bits = uint64(c & 0x3f)
		}
		magnitude |= bits << shift
		if magnitude > maxSafeInteger {
			break
		}
		if !more {
			return nil
		}
		if i == 0 {
			shift = 6
		} else {
			shift += 7
		}
	}
	return errAt(ErrOutOfRange, start, "any varInt is not a safe integer")
}
