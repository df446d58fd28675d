package yproto

import (
	"encoding/binary"
	"math/bits"
)

// Type references of ContentType (Yjs structs/ContentType.js typeRefs).
const (
	typeArray       = 0
	typeMap         = 1
	typeText        = 2
	typeXmlElement  = 3 // followed by the element's node name
	typeXmlFragment = 4
	typeXmlHook     = 5 // followed by the hook's name
	typeXmlText     = 6
)

// jsonUndefined is how ContentJSON writes JavaScript's undefined, which JSON cannot express.
const jsonUndefined = "undefined"

// readContent reads an item's content (Yjs readItemContent) and returns the item's length in
// clock units, as the content's getLength() would.
func (p *updateParser) readContent(ref byte) (uint64, error) {
	start := p.pos
	switch ref {
	case refDeleted:
		return p.readLength("deleted length")
	case refJSON:
		return p.readJSONContent()
	case refBinary:
		_, err := p.readVarBytes("binary content")
		return 1, err
	case refString:
		return p.readStringContent()
	case refEmbed:
		return 1, p.readJSONString("embed")
	case refFormat:
		if _, err := p.readString("format key"); err != nil {
			return 0, err
		}
		return 1, p.readJSONString("format value")
	case refType:
		return 1, p.readTypeContent()
	case refAny:
		return p.readAnyContent()
	case refDoc:
		return 1, p.readDocContent()
	}
	return 0, errAt(ErrMalformed, start, "unknown content ref %d", ref) // readStruct rejects these first
}

// readStringContent reads ContentString. Its length is counted in UTF-16 code units, as
// JavaScript's string length, because that is how Yjs assigns clocks to characters.
func (p *updateParser) readStringContent() (uint64, error) {
	start := p.pos
	s, err := p.readString("string content")
	if err != nil {
		return 0, err
	}
	n := utf16Len(s)
	if n == 0 {
		return 0, errAt(ErrMalformed, start, "empty string content")
	}
	return n, nil
}

// utf16Len returns the number of UTF-16 code units of valid UTF-8 s: one per code point,
// two for code points above U+FFFF. A code point is a byte that is not a continuation byte
// (10xxxxxx); one above U+FFFF starts with 11110xxx. Both are counted eight bytes at a time:
// long strings are most of a text document's bytes.
func utf16Len(s []byte) uint64 {
	const high = 0x8080808080808080 // bit 7 of every byte
	n := uint64(len(s))
	for len(s) >= 8 {
		x := binary.LittleEndian.Uint64(s)
		// Shifting left by k moves bit 7-k of each byte to bit 7 of the same byte; what
		// crosses into the next byte lands below bit 7 and is masked off.
		continuation := x &^ (x << 1) & high
		fourByteLead := x & (x << 1) & (x << 2) & (x << 3) & high
		n -= uint64(bits.OnesCount64(continuation))
		n += uint64(bits.OnesCount64(fourByteLead))
		s = s[8:]
	}
	for _, c := range s {
		if c&0xc0 == 0x80 {
			n--
		}
		if c >= 0xf0 {
			n++
		}
	}
	return n
}

// readJSONContent reads legacy ContentJSON: a count, then one JSON text per element, where
// the literal "undefined" stands for JavaScript's undefined.
func (p *updateParser) readJSONContent() (uint64, error) {
	start := p.pos
	n, err := p.readCount("JSON content count", 1)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errAt(ErrMalformed, start, "empty JSON content")
	}
	for range n {
		elemStart := p.pos
		s, err := p.readVarBytes("JSON content element")
		if err != nil {
			return 0, err
		}
		if string(s) == jsonUndefined {
			continue
		}
		if err := checkJSON(s, p.maxDepth, elemStart, "JSON content element"); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// readJSONString reads a varString that Yjs passes to JSON.parse (embeds, format values).
func (p *updateParser) readJSONString(what string) error {
	start := p.pos
	s, err := p.readVarBytes(what)
	if err != nil {
		return err
	}
	return checkJSON(s, p.maxDepth, start, what)
}

// readTypeContent reads ContentType: a type ref, and a name for XML elements and hooks.
func (p *updateParser) readTypeContent() error {
	start := p.pos
	t, err := p.readVarUint("type ref")
	if err != nil {
		return err
	}
	switch t {
	case typeArray, typeMap, typeText, typeXmlFragment, typeXmlText:
		return nil
	case typeXmlElement:
		_, err = p.readString("XML element name")
	case typeXmlHook:
		_, err = p.readString("XML hook name")
	default:
		err = errAt(ErrMalformed, start, "unknown type ref %d", t)
	}
	return err
}

// readAnyContent reads ContentAny: a count of Any values.
func (p *updateParser) readAnyContent() (uint64, error) {
	start := p.pos
	n, err := p.readCount("any content count", 1)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errAt(ErrMalformed, start, "empty any content")
	}
	for range n {
		if err := p.readAny("any content"); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// readDocContent reads ContentDoc: a subdocument's guid and its options. Yjs always writes
// the options as an object, and spreads them into the new Doc's options when reading.
func (p *updateParser) readDocContent() error {
	if _, err := p.readString("subdocument guid"); err != nil {
		return err
	}
	if p.pos < len(p.buf) && p.buf[p.pos] != anyObject {
		return errAt(ErrMalformed, p.pos, "subdocument options are not an object (any tag %d)", p.buf[p.pos])
	}
	return p.readAny("subdocument options")
}
