package yproto

import "unicode/utf8"

// reader walks a byte slice front to back. Every method checks the bytes that remain before
// it reads or slices, returns an error instead of panicking, and never allocates on success.
// The what arguments name the field for error messages; they are constants, so passing them
// is free.
type reader struct {
	buf []byte
	pos int
}

func (r *reader) remaining() int { return len(r.buf) - r.pos }

// expectEnd fails if any bytes are left: every format here is read to its last byte, and
// trailing bytes mean the sender wrote something other than what it claims.
func (r *reader) expectEnd(after string) error {
	if n := r.remaining(); n != 0 {
		return errAt(ErrMalformed, r.pos, "%d trailing bytes after %s", n, after)
	}
	return nil
}

func (r *reader) readByte(what string) (byte, error) {
	if r.pos >= len(r.buf) {
		return 0, errAt(ErrTruncated, r.pos, "%s: input ends", what)
	}
	c := r.buf[r.pos]
	r.pos++
	return c, nil
}

// skip advances over n fixed-size bytes (the payload of a float or a bigint).
func (r *reader) skip(what string, n int) error {
	if r.remaining() < n {
		return errAt(ErrTruncated, r.pos, "%s needs %d bytes, %d left", what, n, r.remaining())
	}
	r.pos += n
	return nil
}

func (r *reader) readVarUint(what string) (uint64, error) {
	// Fast path: most varUints in an update are a single byte.
	if r.pos < len(r.buf) && r.buf[r.pos] < 0x80 {
		v := uint64(r.buf[r.pos])
		r.pos++
		return v, nil
	}
	v, n, kind := decodeVarUint(r.buf[r.pos:])
	if kind != nil {
		return 0, &Error{Kind: kind, Offset: r.pos, Detail: varUintDetail(kind) + ": " + what}
	}
	r.pos += n
	return v, nil
}

// readSafeUint reads a varUint that Yjs holds in a JS number: a client ID, clock or length.
func (r *reader) readSafeUint(what string) (uint64, error) {
	start := r.pos
	v, err := r.readVarUint(what)
	if err != nil {
		return 0, err
	}
	if v > maxSafeInteger {
		return 0, errAt(ErrOutOfRange, start, "%s %d is not below 2^53", what, v)
	}
	return v, nil
}

// readCount reads the number of elements that follow, each taking at least minSize bytes,
// and fails unless that many elements can fit in what is left. This is what turns a count
// of 2^40 into an immediate error instead of a loop.
func (r *reader) readCount(what string, minSize int) (uint64, error) {
	start := r.pos
	n, err := r.readVarUint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining()/minSize) {
		return 0, errAt(ErrTruncated, start, "%s %d exceeds the %d bytes left", what, n, r.remaining())
	}
	return n, nil
}

// readVarBytes reads a varUint length and returns that many bytes, aliasing the input.
func (r *reader) readVarBytes(what string) ([]byte, error) {
	start := r.pos
	n, err := r.readVarUint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(r.remaining()) {
		return nil, errAt(ErrTruncated, start, "%s length %d exceeds the %d bytes left", what, n, r.remaining())
	}
	p := r.buf[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return p, nil
}

// readString reads a lib0 varString and checks that it is valid UTF-8: JS TextEncoder, which
// lib0 writes with, cannot produce anything else (lone surrogates become U+FFFD).
func (r *reader) readString(what string) ([]byte, error) {
	start := r.pos
	s, err := r.readVarBytes(what)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(s) {
		return nil, errAt(ErrMalformed, start, "%s is not valid UTF-8", what)
	}
	return s, nil
}

// readID reads an ID (client, clock) as UpdateDecoderV1.readLeftID does.
func (r *reader) readID(whatClient, whatClock string) error {
	if _, err := r.readSafeUint(whatClient); err != nil {
		return err
	}
	_, err := r.readSafeUint(whatClock)
	return err
}
