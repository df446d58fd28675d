package yproto

import "slices"

// defaultMaxDepth is the nesting limit for Any values and JSON text when Limits.MaxDepth is
// not set. Real documents rarely nest beyond a dozen levels; 128 leaves room for deep app
// state while keeping the validator's stack tiny.
const defaultMaxDepth = 128

// Limits bounds what ValidateUpdate accepts beyond the format itself. The zero value is
// ready to use.
type Limits struct {
	// MaxDepth bounds the nesting of arrays and objects in Any values (map and array
	// entries, subdocument options) and in JSON text (embeds, format attributes, legacy
	// JSON content). Zero or negative means 128.
	MaxDepth int
}

func (l Limits) maxDepth() int {
	if l.MaxDepth <= 0 {
		return defaultMaxDepth
	}
	return l.MaxDepth
}

// ClientRange is the span of clocks that one client section of an update covers: its structs
// hold the IDs (Client, Clock) up to but not including (Client, End). Skip structs (holes in
// a merged update) count toward End, as Yjs parseUpdateMeta counts them.
type ClientRange struct {
	Client, Clock, End uint64
}

// DeleteRange is one entry of an update's delete set: the IDs (Client, Clock) up to but not
// including (Client, Clock+Len) are deleted.
type DeleteRange struct {
	Client, Clock, Len uint64
}

// UpdateInfo is what ValidateUpdate learned while parsing an update.
type UpdateInfo struct {
	// Structs has one range per client section, in wire order. Client IDs are distinct.
	Structs []ClientRange
	// Deletes has one range per delete set entry, in wire order.
	Deletes []DeleteRange
	// HasSkips reports a Skip struct: the update was merged from updates with gaps between
	// them, so its ranges contain clocks it does not carry.
	HasSkips bool
}

// IsEmptyUpdate reports whether u is exactly the empty v1 update (0x00 0x00): no client
// sections and an empty delete set, as Yjs encodes a document with nothing in it.
func IsEmptyUpdate(u []byte) bool {
	return len(u) == 2 && u[0] == 0 && u[1] == 0
}

// Struct and content references: the low five bits of a struct's info byte (Yjs
// structs/Item.js contentRefs).
const (
	refGC      = 0
	refDeleted = 1
	refJSON    = 2
	refBinary  = 3
	refString  = 4
	refEmbed   = 5
	refFormat  = 6
	refType    = 7
	refAny     = 8
	refDoc     = 9
	refSkip    = 10
)

// The flag bits of an item's info byte.
const (
	infoRefMask      = 0x1f
	infoHasParentSub = 0x20 // a parentSub (map key) follows the parent, when the parent is written
	infoHasRight     = 0x40 // a right origin ID follows
	infoHasOrigin    = 0x80 // an origin ID follows
)

// Minimum encoded sizes, used to check counts against the bytes that remain.
const (
	minClientSectionSize = 5 // struct count, client, clock, and a struct of at least 2 bytes
	minStructSize        = 2 // info byte and at least one byte of length or content
	minDeleteClientSize  = 2 // client, delete count
	minDeleteSize        = 2 // clock, length
)

// updateParser holds the state of one ValidateUpdate call.
type updateParser struct {
	anyReader // and through it, reader
	info      UpdateInfo
}

// ValidateUpdate parses u as a Yjs v1 update, exactly as Yjs 13.6 reads one, and returns the
// clock ranges and deletes it carries. It fails, with an error wrapping ErrTruncated,
// ErrMalformed, ErrOutOfRange or ErrTooDeep, for anything Yjs would not write: see the package
// documentation. Only an update that passes may be handed to y-crdt.
func ValidateUpdate(u []byte, lim Limits) (UpdateInfo, error) {
	p := updateParser{anyReader: anyReader{reader: reader{buf: u}, maxDepth: lim.maxDepth()}}
	if err := p.readStructs(); err != nil {
		return UpdateInfo{}, err
	}
	if err := p.readDeleteSet(); err != nil {
		return UpdateInfo{}, err
	}
	if err := p.expectEnd("delete set"); err != nil {
		return UpdateInfo{}, err
	}
	return p.info, nil
}

// readStructs reads the structs section (Yjs readClientsStructRefs).
func (p *updateParser) readStructs() error {
	numClients, err := p.readCount("client count", minClientSectionSize)
	if err != nil {
		return err
	}
	if numClients > 0 {
		p.info.Structs = make([]ClientRange, 0, min(numClients, 64))
	}
	for range numClients {
		if err := p.readClientSection(); err != nil {
			return err
		}
	}
	return checkDistinctClients(p.info.Structs, p.pos)
}

// readClientSection reads one client's structs: count, client, first clock, structs.
func (p *updateParser) readClientSection() error {
	start := p.pos
	numStructs, err := p.readCount("struct count", minStructSize)
	if err != nil {
		return err
	}
	if numStructs == 0 {
		return errAt(ErrMalformed, start, "client section without structs")
	}
	client, err := p.readSafeUint("client")
	if err != nil {
		return err
	}
	first, err := p.readSafeUint("clock")
	if err != nil {
		return err
	}
	clock := first
	for range numStructs {
		structStart := p.pos
		length, err := p.readStruct()
		if err != nil {
			return err
		}
		// length < 2^53 and clock < 2^53, so the sum cannot overflow uint64.
		clock += length
		if clock > maxSafeInteger {
			return errAt(ErrOutOfRange, structStart, "struct of client %d ends at clock %d, not below 2^53", client, clock)
		}
	}
	p.info.Structs = append(p.info.Structs, ClientRange{Client: client, Clock: first, End: clock})
	return nil
}

// readStruct reads one GC, Skip or Item struct and returns its length in clock units.
func (p *updateParser) readStruct() (uint64, error) {
	start := p.pos
	info, err := p.readByte("struct info")
	if err != nil {
		return 0, err
	}
	switch ref := info & infoRefMask; {
	case ref > refSkip:
		return 0, errAt(ErrMalformed, start, "unknown content ref %d", ref)
	case ref == refGC || ref == refSkip:
		if info != ref {
			return 0, errAt(ErrMalformed, start, "flag bits 0x%02x on a GC or Skip struct", info&^infoRefMask)
		}
		if ref == refSkip {
			p.info.HasSkips = true
		}
		return p.readLength("GC or Skip length")
	default:
		return p.readItem(info)
	}
}

// readLength reads the clock length of a GC, Skip or deleted struct.
func (p *updateParser) readLength(what string) (uint64, error) {
	start := p.pos
	n, err := p.readSafeUint(what)
	if err == nil && n == 0 {
		err = errAt(ErrMalformed, start, "zero %s", what)
	}
	return n, err
}

// readItem reads an Item after its info byte: origin, right origin, parent, parentSub (each
// only where the info byte says so) and the content.
func (p *updateParser) readItem(info byte) (uint64, error) {
	if info&infoHasOrigin != 0 {
		if err := p.readID("origin client", "origin clock"); err != nil {
			return 0, err
		}
	}
	if info&infoHasRight != 0 {
		if err := p.readID("right origin client", "right origin clock"); err != nil {
			return 0, err
		}
	}
	// Without origins the parent cannot be copied from a neighbour, so it is written.
	if info&(infoHasOrigin|infoHasRight) == 0 {
		if err := p.readParent(); err != nil {
			return 0, err
		}
		if info&infoHasParentSub != 0 {
			if _, err := p.readString("parent sub key"); err != nil {
				return 0, err
			}
		}
	}
	return p.readContent(info & infoRefMask)
}

// readParent reads the parent of an item: 1 and the key of a root type, or 0 and the ID of
// the item that holds the parent type. Yjs writes nothing else.
func (p *updateParser) readParent() error {
	start := p.pos
	kind, err := p.readVarUint("parent info")
	if err != nil {
		return err
	}
	switch kind {
	case 1:
		_, err = p.readString("parent key")
	case 0:
		err = p.readID("parent client", "parent clock")
	default:
		err = errAt(ErrMalformed, start, "parent info %d", kind)
	}
	return err
}

// readDeleteSet reads the delete set (Yjs readDeleteSet).
func (p *updateParser) readDeleteSet() error {
	numClients, err := p.readCount("delete set client count", minDeleteClientSize)
	if err != nil {
		return err
	}
	for range numClients {
		client, err := p.readSafeUint("delete set client")
		if err != nil {
			return err
		}
		numDeletes, err := p.readCount("delete count", minDeleteSize)
		if err != nil {
			return err
		}
		for range numDeletes {
			d, err := p.readDelete(client)
			if err != nil {
				return err
			}
			p.info.Deletes = append(p.info.Deletes, d)
		}
	}
	return nil
}

func (p *updateParser) readDelete(client uint64) (DeleteRange, error) {
	start := p.pos
	clock, err := p.readSafeUint("delete clock")
	if err != nil {
		return DeleteRange{}, err
	}
	length, err := p.readLength("delete length")
	if err != nil {
		return DeleteRange{}, err
	}
	if clock+length > maxSafeInteger {
		return DeleteRange{}, errAt(ErrOutOfRange, start, "delete of client %d ends at clock %d, not below 2^53", client, clock+length)
	}
	return DeleteRange{Client: client, Clock: clock, Len: length}, nil
}

// checkDistinctClients fails if two sections of one update belong to the same client. Yjs
// never writes that, and when reading keeps only the last section of a client, silently
// dropping the others.
func checkDistinctClients(ranges []ClientRange, offset int) error {
	const quadraticMax = 16 // below this, comparing all pairs is cheaper than sorting a copy
	if len(ranges) <= quadraticMax {
		for i := range ranges {
			for j := i + 1; j < len(ranges); j++ {
				if ranges[i].Client == ranges[j].Client {
					return errAt(ErrMalformed, offset, "two client sections of client %d", ranges[i].Client)
				}
			}
		}
		return nil
	}
	clients := make([]uint64, len(ranges))
	for i, r := range ranges {
		clients[i] = r.Client
	}
	slices.Sort(clients)
	for i := 1; i < len(clients); i++ {
		if clients[i] == clients[i-1] {
			return errAt(ErrMalformed, offset, "two client sections of client %d", clients[i])
		}
	}
	return nil
}
