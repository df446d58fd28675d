package main

import (
	"errors"
	"fmt"
)

// A Yjs v1 update starts with its structs, grouped by client:
//
//	varUint(groups) { varUint(structs) varUint(client) varUint(clock) struct* }*
//
// then the delete set. Every struct covers a clock range [clock, clock+length) of its
// client: GC (info 0) and Skip (info 10) carry the length, an Item's length is its
// content's (yjs src/utils/encoding.js readClientsStructRefs, src/structs/Item.js
// readItemContent). Skips are gaps (merged updates use them), not content.
//
// scanStructs walks the structs and reports each client's covered ranges to sink, merging
// adjacent ones, without allocating. It stops at the delete set, which it does not need.
// A received update is identified by these ranges: a server may re-encode or merge what a
// client sent, but the (client, clock) of every struct stays the same.

type rangeSink interface {
	// addRange reports that the update carries client's structs [start, end).
	addRange(client, start, end uint64)
}

var errUpdate = errors.New("malformed Yjs update")

const (
	bit6  = 0x20 // parentSub present
	bit7  = 0x40 // right origin present
	bit8  = 0x80 // origin present
	bits5 = 0x1f // content ref
)

type ydec struct {
	b   []byte
	err error
}

func (d *ydec) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := readVarUint(d.b)
	if n <= 0 {
		d.err = errUpdate
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *ydec) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errUpdate
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *ydec) bytes() []byte {
	if d.err != nil {
		return nil
	}
	p, rest, err := readVarBytes(d.b)
	if err != nil {
		d.err = errUpdate
		return nil
	}
	d.b = rest
	return p
}

func (d *ydec) skip(n int) {
	if d.err != nil {
		return
	}
	if n > len(d.b) {
		d.err = errUpdate
		return
	}
	d.b = d.b[n:]
}

// any skips one lib0 "any" value (lib0 decoding.js readAny), depth-bounded.
func (d *ydec) any(depth int) {
	if depth > 64 {
		d.err = fmt.Errorf("%w: lib0 any nested too deep", errUpdate)
		return
	}
	switch t := d.byte(); t {
	case 127, 126, 121, 120: // undefined, null, false, true
	case 125: // varInt: same continuation bits as varUint
		d.uint()
	case 124: // float32
		d.skip(4)
	case 123, 122: // float64, bigint64
		d.skip(8)
	case 119, 116: // string, Uint8Array
		d.bytes()
	case 118: // object
		n := d.uint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			d.bytes()
			d.any(depth + 1)
		}
	case 117: // array
		n := d.uint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			d.any(depth + 1)
		}
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: lib0 any type %d", errUpdate, t)
		}
	}
}

// utf16Len is the length JavaScript gives the UTF-8 string s (Yjs counts Y.Text positions
// in UTF-16 code units): one per character, two for those outside the BMP.
func utf16Len(s []byte) uint64 {
	var n uint64
	for _, c := range s {
		if c&0xc0 != 0x80 {
			n++
		}
		if c >= 0xf0 {
			n++
		}
	}
	return n
}

// content skips an Item's content and returns its length.
func (d *ydec) content(ref byte) uint64 {
	switch ref {
	case 1: // ContentDeleted
		return d.uint()
	case 2: // ContentJSON: count × string
		n := d.uint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			d.bytes()
		}
		return n
	case 3: // ContentBinary
		d.bytes()
		return 1
	case 4: // ContentString
		return utf16Len(d.bytes())
	case 5: // ContentEmbed (JSON string)
		d.bytes()
		return 1
	case 6: // ContentFormat: key, JSON value
		d.bytes()
		d.bytes()
		return 1
	case 7: // ContentType: type ref, and a name for XmlElement (3) and XmlHook (5)
		if t := d.uint(); t == 3 || t == 5 {
			d.bytes()
		}
		return 1
	case 8: // ContentAny: count × any
		n := d.uint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			d.any(0)
		}
		return n
	case 9: // ContentDoc: guid, options (any)
		d.bytes()
		d.any(0)
		return 1
	}
	if d.err == nil {
		d.err = fmt.Errorf("%w: content ref %d", errUpdate, ref)
	}
	return 0
}

// scanStructs reports the clock ranges of u's structs to sink (see above).
func scanStructs(u []byte, sink rangeSink) error {
	d := ydec{b: u}
	groups := d.uint()
	for g := uint64(0); g < groups && d.err == nil; g++ {
		structs := d.uint()
		client := d.uint()
		clock := d.uint()
		start := clock // of the run of covered ranges being built
		for s := uint64(0); s < structs && d.err == nil; s++ {
			info := d.byte()
			var l uint64
			switch info & bits5 {
			case 0: // GC
				l = d.uint()
			case 10: // Skip: a gap
				l = d.uint()
				if clock > start {
					sink.addRange(client, start, clock)
				}
				clock += l
				start = clock
				continue
			default:
				if info&bit8 != 0 { // origin
					d.uint()
					d.uint()
				}
				if info&bit7 != 0 { // right origin
					d.uint()
					d.uint()
				}
				if info&(bit7|bit8) == 0 { // parent: a root type's name, or an ID
					if d.uint() == 1 {
						d.bytes()
					} else {
						d.uint()
						d.uint()
					}
					if info&bit6 != 0 { // parentSub
						d.bytes()
					}
				}
				l = d.content(info & bits5)
			}
			clock += l
		}
		if d.err == nil && clock > start {
			sink.addRange(client, start, clock)
		}
	}
	return d.err
}

// svSink collects a state vector: the end of each client's covered clock range that is
// contiguous from 0 (what "the receiver has everything up to" means).
type svSink struct {
	sv map[uint64]uint64
}

func (s *svSink) addRange(client, start, end uint64) {
	if cur := s.sv[client]; start <= cur && end > cur {
		s.sv[client] = end
	}
}

// maxSink collects the highest end per client, contiguous or not.
type maxSink struct {
	max map[uint64]uint64
}

func (s *maxSink) addRange(client, _, end uint64) {
	if end > s.max[client] {
		s.max[client] = end
	}
}

// covers reports whether sv has everything of want.
func covers(sv, want map[uint64]uint64) bool {
	for c, clock := range want {
		if sv[c] < clock {
			return false
		}
	}
	return true
}
