package yproto

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"sync"
	"unicode/utf8"
)

// MergeUpdates merges v1 updates into one v1 update that carries every struct and every
// delete of every input, as Yjs's mergeUpdates does, without building a document:
//
//   - every client's structs are written once, in one section per client, higher clients
//     first, in clock order; a struct that another input carries already is dropped, one
//     that overlaps what is written is written from its first new clock (an item then gets
//     the clock before as its origin, as Yjs's sliceStruct gives it), and a gap between
//     clocks becomes a Skip;
//   - adjacent GC structs, and adjacent Skips, become one; items are never joined (Yjs
//     joins them only when integrated into a document);
//   - the delete sets are united: per client sorted by clock, overlapping and touching
//     ranges joined, clients written in descending order.
//
// Unlike a tree of y-crdt merges (which re-sorts its inputs for every struct it writes and
// allocates several objects per struct), this sorts the structs once and copies the bytes
// of every struct it keeps unchanged. The updates must have passed ValidateUpdate; anything
// else returns an error, never a panic.
//
// Where Yjs's result depends on the order of its inputs (two inputs with a struct at the same
// clock), this keeps the longer one, then the earlier input's: the result holds the same
// content either way. One input is returned as it is.
func MergeUpdates(updates [][]byte) ([]byte, error) {
	if len(updates) == 1 {
		return updates[0], nil
	}
	return mergeUpdates(updates, false)
}

// CompactUpdates merges as MergeUpdates does, and writes the result as a Yjs document with
// gc on would encode it:
//
//   - every item that the merged delete set deletes whole, and that holds text, values, an
//     embed or a format, is written with ContentDeleted of its length instead of its
//     content. Items holding a shared type or a subdocument keep their content, because
//     other items name them as their parent;
//   - an item that continues the one before (same client, the next clock, the previous
//     item's last clock as its origin, the same right origin, text after text, values
//     after values, deleted after deleted) joins it, as Yjs joins such items when it
//     integrates them. Yjs splits a joined item wherever a later item names a clock inside
//     it, and gives the right part exactly the origins the joined item had, so it places
//     every item as before.
//
// The result carries the same clocks, deletes and visible document as MergeUpdates's; what
// is gone is deleted content that no client shows, and the per-item overhead of one item
// per keystroke. One input is compacted too.
func CompactUpdates(updates [][]byte) ([]byte, error) {
	return mergeUpdates(updates, true)
}

func mergeUpdates(updates [][]byte, compact bool) ([]byte, error) {
	if len(updates) == 0 {
		return []byte{0, 0}, nil
	}
	m := mergerPool.Get().(*merger)
	defer m.release()
	m.dropDeleted = compact
	for i, u := range updates {
		if err := m.scan(i, u); err != nil {
			return nil, err
		}
	}
	return m.write(updates)
}

// mergeStruct is one struct of one input, located by its bytes there.
type mergeStruct struct {
	client, clock, length uint64
	src                   int32 // index of the input
	start, end            int32 // the struct's bytes, info byte included
	right, content        int32 // item: where its right origin (if any) and its content start
	rightEnd              int32 // item: where its right origin ends
	info                  byte  // the info byte; its low five bits are refGC, refSkip or the content ref
}

func (s *mergeStruct) kind() byte    { return s.info & infoRefMask }
func (s *mergeStruct) end64() uint64 { return s.clock + s.length }

// merger holds the scratch space of one merge or diff; pooled, because a room's
// compactions, folds and step 1 answers merge and diff again and again.
type merger struct {
	p       updateParser
	structs []mergeStruct
	deletes []DeleteRange
	body    []byte // client sections, without their struct counts
	section []mergeSection
	sec     mergeSection // the section being written; start < 0 before its first struct

	spare        []mergeStruct // sortStructs's other buffer
	spareDeletes []DeleteRange // sortMostlySorted's, for the deletes
	groups       []clientGroup
	groupOf      map[uint64]int

	dropDeleted bool // CompactUpdates: drop deleted content and join items
	deleteAt    int  // the first delete range that may hold the struct written next
	open        openItem
	openContent []byte // the open item's content so far: string bytes or encoded values
	scratch     []byte
}

// openItem is an item CompactUpdates has written the header of, whose content is kept
// open for the items that continue it.
type openItem struct {
	active bool
	ref    byte // refString, refAny, refJSON or refDeleted
	client uint64
	end    uint64 // the next clock after it
	right  []byte // its right origin as encoded, or nil
	count  uint64 // values (Any, JSON) or clocks (deleted) so far
}

type mergeSection struct {
	structs    uint64
	start, end int
}

var mergerPool = sync.Pool{New: func() any { return &merger{sec: mergeSection{start: -1}} }}

// maxPooledStructs keeps a big merge (64k structs take 4 MiB, twice) from pinning its
// scratch space for good: a room of 256k keystrokes compacts every few seconds under load.
const maxPooledStructs = 1 << 16

func (m *merger) release() {
	if cap(m.structs) > maxPooledStructs || cap(m.spare) > maxPooledStructs || cap(m.body) > 64*maxPooledStructs {
		*m = merger{}
	}
	m.structs, m.deletes, m.body, m.section = m.structs[:0], m.deletes[:0], m.body[:0], m.section[:0]
	m.sec = mergeSection{start: -1}
	m.spare, m.spareDeletes, m.groups = m.spare[:0], m.spareDeletes[:0], m.groups[:0]
	clear(m.groupOf)
	m.dropDeleted, m.deleteAt = false, 0
	m.open, m.openContent = openItem{}, m.openContent[:0]
	m.p = updateParser{anyReader: anyReader{stack: m.p.stack[:0]}, info: UpdateInfo{Deletes: m.p.info.Deletes[:0]}}
	mergerPool.Put(m)
}

// scan records the structs and deletes of input src.
func (m *merger) scan(src int, u []byte) error {
	if len(u) > maxInt32 {
		return errAt(ErrOutOfRange, 0, "update of %d bytes is too big to merge", len(u))
	}
	p := &m.p
	p.anyReader = anyReader{reader: reader{buf: u}, maxDepth: defaultMaxDepth, stack: p.stack[:0]}
	numClients, err := p.readCount("client count", minClientSectionSize)
	if err != nil {
		return err
	}
	for range numClients {
		numStructs, err := p.readCount("struct count", minStructSize)
		if err != nil {
			return err
		}
		client, err := p.readSafeUint("client")
		if err != nil {
			return err
		}
		clock, err := p.readSafeUint("clock")
		if err != nil {
			return err
		}
		first := len(m.structs)
		for range numStructs {
			s := mergeStruct{client: client, clock: clock, src: int32(src), start: int32(p.pos)}
			if err := m.scanStruct(&s); err != nil {
				return err
			}
			s.end = int32(p.pos)
			if s.length == 0 || s.clock+s.length > maxSafeInteger {
				return errAt(ErrMalformed, int(s.start), "struct of client %d at clock %d has length %d", client, clock, s.length)
			}
			clock += s.length
			// A run of GC or Skip structs is one struct to the merge: written joined
			// anyway, and an update of two-byte GC structs would otherwise cost 64
			// bytes of scratch space per input byte.
			if n := len(m.structs); n > first && (s.kind() == refGC || s.kind() == refSkip) && m.structs[n-1].info == s.info {
				m.structs[n-1].length += s.length
				m.structs[n-1].end = s.end
				continue
			}
			m.structs = append(m.structs, s)
		}
	}
	p.info.Deletes = p.info.Deletes[:0]
	if err := p.readDeleteSet(); err != nil {
		return err
	}
	m.deletes = append(m.deletes, p.info.Deletes...)
	return p.expectEnd("delete set")
}

// scanStruct reads one struct, noting where an item's parts start.
func (m *merger) scanStruct(s *mergeStruct) (err error) {
	p := &m.p
	if s.info, err = p.readByte("struct info"); err != nil {
		return err
	}
	ref := s.info & infoRefMask
	switch {
	case ref > refSkip:
		return errAt(ErrMalformed, int(s.start), "unknown content ref %d", ref)
	case ref == refGC || ref == refSkip:
		s.length, err = p.readLength("GC or Skip length")
		return err
	}
	if s.info&infoHasOrigin != 0 {
		if err := p.readID("origin client", "origin clock"); err != nil {
			return err
		}
	}
	s.right = int32(p.pos)
	if s.info&infoHasRight != 0 {
		if err := p.readID("right origin client", "right origin clock"); err != nil {
			return err
		}
	}
	s.rightEnd = int32(p.pos)
	if s.info&(infoHasOrigin|infoHasRight) == 0 {
		if err := p.readParent(); err != nil {
			return err
		}
		if s.info&infoHasParentSub != 0 {
			if _, err := p.readString("parent sub key"); err != nil {
				return err
			}
		}
	}
	s.content = int32(p.pos)
	s.length, err = p.readContent(ref)
	return err
}

// compareForMerge orders structs as they are written: higher clients first, then by clock;
// at the same clock a struct with content before a Skip, a longer one before a shorter
// one, an earlier input's first.
func compareForMerge(a, b mergeStruct) int {
	if a.client != b.client {
		return cmp.Compare(b.client, a.client)
	}
	if a.clock != b.clock {
		return cmp.Compare(a.clock, b.clock)
	}
	if aSkip, bSkip := a.kind() == refSkip, b.kind() == refSkip; aSkip != bSkip {
		if aSkip {
			return 1
		}
		return -1
	}
	if a.length != b.length {
		return cmp.Compare(b.length, a.length)
	}
	if a.src != b.src {
		return cmp.Compare(a.src, b.src)
	}
	return cmp.Compare(a.start, b.start)
}

// pendingStruct is the struct about to be written: a source struct from clock offset on,
// or a GC or Skip whose length grows as neighbours join it.
type pendingStruct struct {
	s      mergeStruct
	offset uint64 // clocks of s already written by an earlier struct
	length uint64 // clocks to write: s.length - offset, unless GCs or Skips joined
}

func (w *pendingStruct) clock() uint64 { return w.s.clock + w.offset }
func (w *pendingStruct) end() uint64   { return w.s.clock + w.offset + w.length }

// write sorts what scan found and writes the merged update.
func (m *merger) write(updates [][]byte) ([]byte, error) {
	m.sortStructs()
	m.joinDeletes()
	var cur pendingStruct
	have := false
	var flushOne func(w *pendingStruct) error
	flush := func() error {
		if !have || cur.length == 0 {
			return nil
		}
		if m.dropDeleted && splittable[cur.s.kind()] {
			return m.forEachDeletePiece(updates[cur.s.src], cur, flushOne)
		}
		return flushOne(&cur)
	}
	flushOne = func(w *pendingStruct) error {
		src := updates[w.s.src]
		ref := byte(0)
		joinable := false
		if m.dropDeleted {
			ref, joinable = m.compactRef(w)
			if joinable && m.continuesOpen(src, w, ref) {
				return m.appendOpenContent(src, w)
			}
			m.closeOpen()
		}
		m.beginStruct(w)
		if joinable {
			m.body = m.appendItemHeader(m.body, src, w, ref)
			m.open = openItem{active: true, ref: ref, client: w.s.client, end: w.clock(), right: src[w.s.right:w.s.rightEnd]}
			return m.appendOpenContent(src, w)
		}
		var err error
		m.body, err = m.appendStruct(m.body, src, w)
		return err
	}
	endSection := func() {
		m.closeOpen()
		m.endSection()
	}
	for _, s := range m.structs {
		if have && s.client != cur.s.client {
			if err := flush(); err != nil {
				return nil, err
			}
			endSection()
			have = false
		}
		if !have {
			cur, have = pendingStruct{s: s, length: s.length}, true
			continue
		}
		next := pendingStruct{s: s, length: s.length}
		switch {
		case cur.s.kind() == refSkip:
			// A Skip holds nothing, so it covers nothing: it ends where s starts,
			// across a gap or cut short. Only where s starts before the Skip is
			// s itself cut: what precedes the Skip is written.
			if s.clock >= cur.clock() {
				cur.length = s.clock - cur.clock()
			} else if s.end64() <= cur.clock() {
				continue
			} else {
				cur.length = 0
				next.offset = cur.clock() - s.clock
				next.length = s.length - next.offset
			}
		case s.end64() <= cur.end():
			continue // everything it holds is written already
		case s.clock > cur.end():
			if err := flush(); err != nil {
				return nil, err
			}
			skip := mergeStruct{client: s.client, clock: cur.end(), length: s.clock - cur.end(), info: refSkip, src: s.src}
			cur = pendingStruct{s: skip, length: skip.length}
		case s.clock < cur.end():
			next.offset = cur.end() - s.clock
			next.length = s.length - next.offset
		}
		if k := cur.s.kind(); (k == refGC || k == refSkip) && k == s.kind() && cur.length > 0 {
			cur.length += next.length
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		cur = next
	}
	if err := flush(); err != nil {
		return nil, err
	}
	endSection()
	return m.assemble(), nil
}

// beginStruct counts w as a struct of the section being written, and starts the
// section, with w's client and first clock, if w is its first struct.
func (m *merger) beginStruct(w *pendingStruct) {
	if m.sec.start < 0 {
		m.sec.start = len(m.body)
		m.body = AppendVarUint(m.body, w.s.client)
		m.body = AppendVarUint(m.body, w.clock())
	}
	m.sec.structs++
}

// endSection ends the section being written, if it has a struct.
func (m *merger) endSection() {
	if m.sec.start >= 0 {
		m.sec.end = len(m.body)
		m.section = append(m.section, m.sec)
	}
	m.sec = mergeSection{start: -1}
}

// assemble writes the update: the sections, each after its struct count, and the
// joined deletes.
func (m *merger) assemble() []byte {
	out := make([]byte, 0, len(m.body)+2+10*len(m.section)+24*len(m.deletes))
	out = AppendVarUint(out, uint64(len(m.section)))
	for _, sec := range m.section {
		out = AppendVarUint(out, sec.structs)
		out = append(out, m.body[sec.start:sec.end]...)
	}
	return m.appendDeleteSet(out)
}

// appendStruct writes w as Yjs's struct.write(encoder, offset) does: unchanged bytes are
// copied, a GC or Skip gets its length, and an item written from an offset gets the clock
// before it as its origin and loses what comes before the offset of its content.
func (m *merger) appendStruct(dst, src []byte, w *pendingStruct) ([]byte, error) {
	s := &w.s
	k := s.kind()
	if k == refGC || k == refSkip {
		return AppendVarUint(append(dst, k), w.length), nil
	}
	dst = m.appendItemHeader(dst, src, w, k)
	if w.offset == 0 {
		return append(dst, src[s.content:s.end]...), nil
	}
	return m.appendContentFrom(dst, src, s, w.offset)
}

// droppable is the content whose deleted items CompactUpdates writes as
// ContentDeleted: everything but shared types and subdocuments, which other items may name
// as their parent, and deleted content, which is dropped already.
var droppable = [refSkip + 1]bool{refJSON: true, refBinary: true, refString: true, refEmbed: true, refFormat: true, refAny: true}

// deletedWhole reports whether the clocks from..to of client are all deleted.
func (m *merger) deletedWhole(client, from, to uint64) bool {
	ds, i := m.deletes, m.deletesFrom(client, from)
	return i < len(ds) && ds[i].Client == client && ds[i].Clock <= from && to <= ds[i].Clock+ds[i].Len
}

// deletesFrom returns the index of the first delete range that ends after clock from of
// client, or of a lower client. The structs are written in the deletes' order, so the
// search goes on from where the last one ended.
func (m *merger) deletesFrom(client, from uint64) int {
	ds, i := m.deletes, m.deleteAt
	for i < len(ds) && (ds[i].Client > client || ds[i].Client == client && ds[i].Clock+ds[i].Len <= from) {
		i++
	}
	m.deleteAt = i
	return i
}

// joinable is the content that CompactUpdates joins across items, as Yjs's content
// mergeWith does.
var joinable = [refSkip + 1]bool{refDeleted: true, refJSON: true, refString: true, refAny: true}

// compactRef returns the content ref that CompactUpdates writes item w with (refDeleted
// where it drops the content) and whether such content joins. GC and Skip structs do not.
func (m *merger) compactRef(w *pendingStruct) (ref byte, ok bool) {
	k := w.s.kind()
	if k == refGC || k == refSkip {
		return k, false
	}
	if droppable[k] && m.deletedWhole(w.s.client, w.clock(), w.end()) {
		return refDeleted, true
	}
	return k, joinable[k]
}

// continuesOpen reports whether item w continues the open item: the same client and
// content, its first clock right after it, the open item's last clock as its origin (an
// item written from an offset gets exactly that), and the same right origin.
func (m *merger) continuesOpen(src []byte, w *pendingStruct, ref byte) bool {
	o := &m.open
	if !o.active || o.ref != ref || o.client != w.s.client || o.end != w.clock() || !bytes.Equal(o.right, src[w.s.right:w.s.rightEnd]) {
		return false
	}
	if w.offset > 0 {
		return true
	}
	if w.s.info&infoHasOrigin == 0 {
		return false
	}
	client, n, err := ReadVarUint(src[w.s.start+1:])
	if err != nil || client != w.s.client {
		return false
	}
	clock, _, err := ReadVarUint(src[int(w.s.start)+1+n:])
	return err == nil && clock == o.end-1
}

// appendItemHeader writes item w's info byte (with content ref ref), its origins, and
// where it has no origins its parent and key, as Yjs's item.write(encoder, offset) does:
// written from an offset, an item's origin is the clock before it.
func (m *merger) appendItemHeader(dst, src []byte, w *pendingStruct, ref byte) []byte {
	s := &w.s
	if w.offset == 0 {
		info := s.info&^infoRefMask | ref
		if info&(infoHasOrigin|infoHasRight) != 0 {
			// A parentSub is only written without origins, and Yjs drops the flag
			// when it rewrites such an item.
			info &^= infoHasParentSub
		}
		dst = append(dst, info)
		return append(dst, src[s.start+1:s.content]...)
	}
	info := s.info&infoHasRight | infoHasOrigin | ref
	if s.info&(infoHasOrigin|infoHasRight) == 0 {
		info |= s.info & infoHasParentSub // Yjs keeps the flag of a map item's key
	}
	dst = append(dst, info)
	dst = AppendVarUint(dst, s.client)
	dst = AppendVarUint(dst, s.clock+w.offset-1)
	return append(dst, src[s.right:s.rightEnd]...)
}

// appendOpenContent adds item w's content, from its offset, to the open item.
func (m *merger) appendOpenContent(src []byte, w *pendingStruct) error {
	o := &m.open
	o.end = w.end()
	if o.ref == refDeleted {
		o.count += w.length
		return nil
	}
	r := m.readerAt(src, &w.s)
	if o.ref == refString {
		str, err := r.readVarBytes("string content")
		if err != nil {
			return err
		}
		m.openContent = appendUTF16Range(m.openContent, str, w.offset, w.length)
		return nil
	}
	if _, err := r.readVarUint("content count"); err != nil {
		return err
	}
	if err := m.skipValues(o.ref, w.offset); err != nil {
		return err
	}
	from := r.pos
	if err := m.skipValues(o.ref, w.length); err != nil {
		return err
	}
	o.count += w.length
	m.openContent = append(m.openContent, r.buf[from:r.pos]...)
	return nil
}

// splittable is the content that a delete can cover in part: CompactUpdates splits such
// an item where its deleted parts begin and end, as Yjs splits a deleted range out of an
// item, and drops the content of the deleted parts.
var splittable = [refSkip + 1]bool{refJSON: true, refString: true, refAny: true}

// forEachDeletePiece calls fn for each part of item w that is wholly deleted or wholly
// not: w itself when the delete set covers all or none of it, else w's clocks cut at the
// delete set's bounds. Each part after the first is the item from an offset, which gets
// the clock before it as its origin, as the right part of a Yjs split does.
func (m *merger) forEachDeletePiece(src []byte, w pendingStruct, fn func(*pendingStruct) error) error {
	client, from, to := w.s.client, w.clock(), w.end()
	ds, i := m.deletes, m.deletesFrom(client, from)
	if i == len(ds) || ds[i].Client != client || ds[i].Clock >= to || ds[i].Clock <= from && to <= ds[i].Clock+ds[i].Len {
		return fn(&w) // nothing of it deleted, or all of it
	}
	// Cut at the bounds of deleted parts whose content pays for the item headers that
	// cutting adds (an origin and a right origin each, up to 30 bytes); a smaller
	// deleted part stays in the content around it.
	pieceStart := from
	for pos := from; pos < to; {
		if i == len(ds) || ds[i].Client != client || ds[i].Clock >= to {
			break
		}
		delFrom, delTo := max(pos, ds[i].Clock), min(to, ds[i].Clock+ds[i].Len)
		i++
		if size, err := m.contentBytes(src, &w.s, delFrom-w.s.clock, delTo-w.s.clock); err != nil {
			return err
		} else if size < minDroppedPart {
			pos = delTo
			continue
		}
		for _, cut := range [][2]uint64{{pieceStart, delFrom}, {delFrom, delTo}} {
			if cut[1] > cut[0] {
				piece := pendingStruct{s: w.s, offset: cut[0] - w.s.clock, length: cut[1] - cut[0]}
				if err := fn(&piece); err != nil {
					return err
				}
			}
		}
		pieceStart, pos = delTo, delTo
	}
	if pieceStart < to {
		piece := pendingStruct{s: w.s, offset: pieceStart - w.s.clock, length: to - pieceStart}
		return fn(&piece)
	}
	return nil
}

// minDroppedPart is the smallest deleted part of an item (in bytes of content) that
// CompactUpdates cuts out of it.
const minDroppedPart = 32

// contentBytes returns how many bytes the content of item s takes from clock offset from
// to clock offset to: UTF-8 bytes of text, encoded bytes of values.
func (m *merger) contentBytes(src []byte, s *mergeStruct, from, to uint64) (int, error) {
	r := m.readerAt(src, s)
	ref := s.kind()
	if ref == refString {
		str, err := r.readVarBytes("string content")
		if err != nil {
			return 0, err
		}
		m.scratch = appendUTF16Range(m.scratch[:0], str, from, to-from)
		return len(m.scratch), nil
	}
	if _, err := r.readVarUint("content count"); err != nil {
		return 0, err
	}
	if err := m.skipValues(ref, from); err != nil {
		return 0, err
	}
	start := r.pos
	err := m.skipValues(ref, to-from)
	return r.pos - start, err
}

// closeOpen writes the open item's content, if an item is open.
func (m *merger) closeOpen() {
	o := &m.open
	if !o.active {
		return
	}
	switch o.ref {
	case refDeleted:
		m.body = AppendVarUint(m.body, o.count)
	case refString:
		m.body = AppendVarBytes(m.body, m.openContent)
	default:
		m.body = AppendVarUint(m.body, o.count)
		m.body = append(m.body, m.openContent...)
	}
	*o = openItem{}
	m.openContent = m.openContent[:0]
}

// skipValues reads past n JSON or Any values of the content m.p is reading.
func (m *merger) skipValues(ref byte, n uint64) error {
	r := &m.p
	for range n {
		var err error
		if ref == refJSON {
			_, err = r.readVarBytes("JSON content element")
		} else {
			err = r.readAny("any content")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// appendContentFrom writes the content of item s (in src) without its first offset clocks,
// as Yjs's content.write(encoder, offset) does. Only deleted, string, JSON and Any content
// is longer than one clock, so only those can be written from an offset.
func (m *merger) appendContentFrom(dst, src []byte, s *mergeStruct, offset uint64) ([]byte, error) {
	r := m.readerAt(src, s)
	switch ref := s.kind(); ref {
	case refDeleted:
		n, err := r.readVarUint("deleted length")
		return AppendVarUint(dst, n-offset), err
	case refString:
		str, err := r.readVarBytes("string content")
		if err != nil {
			return dst, err
		}
		rest := appendUTF16Range(nil, str, offset, math.MaxUint64) // only items written from an offset get here
		return AppendVarBytes(dst, rest), nil
	case refJSON, refAny:
		n, err := r.readVarUint("content count")
		if err != nil {
			return dst, err
		}
		if err := m.skipValues(ref, offset); err != nil {
			return dst, err
		}
		dst = AppendVarUint(dst, n-offset)
		return append(dst, r.buf[r.pos:]...), nil
	}
	return dst, errAt(ErrMalformed, int(s.content), "content ref %d cannot be split", s.kind())
}

// readerAt points m.p at the content of item s in src: it reads to the end of the item,
// and its errors name offsets in src.
func (m *merger) readerAt(src []byte, s *mergeStruct) *updateParser {
	r := &m.p
	r.anyReader = anyReader{reader: reader{buf: src[:s.end], pos: int(s.content)}, maxDepth: defaultMaxDepth, stack: r.stack[:0]}
	return r
}

// appendUTF16Range appends the UTF-16 code units offset to offset+length of s, with
// U+FFFD for a surrogate pair cut at either end, as Yjs's split and lib0's TextEncoder
// leave it.
func appendUTF16Range(dst, s []byte, offset, length uint64) []byte {
	i := 0
	for offset > 0 && i < len(s) {
		r, size := utf8.DecodeRune(s[i:])
		i += size
		if r >= 0x10000 {
			if offset == 1 { // the low half starts the range
				dst = append(dst, "\uFFFD"...)
				length--
				offset = 0
				break
			}
			offset--
		}
		offset--
	}
	start := i
	for length > 0 && i < len(s) {
		r, size := utf8.DecodeRune(s[i:])
		if r >= 0x10000 {
			if length == 1 { // the high half ends the range
				dst = append(dst, s[start:i]...)
				return append(dst, "\uFFFD"...)
			}
			length--
		}
		length--
		i += size
	}
	return append(dst, s[start:i]...)
}

// joinDeletes sorts the deletes of every input (clients descending, clocks ascending, as
// they are written) and joins overlapping and touching ranges.
func (m *merger) joinDeletes() {
	m.deletes = sortMostlySorted(m.deletes, &m.spareDeletes, func(a, b DeleteRange) int {
		if a.Client != b.Client {
			return cmp.Compare(b.Client, a.Client)
		}
		return cmp.Compare(a.Clock, b.Clock)
	})
	ds := m.deletes
	j := 0
	for i := range ds {
		if j > 0 && ds[j-1].Client == ds[i].Client && ds[j-1].Clock+ds[j-1].Len >= ds[i].Clock {
			ds[j-1].Len = max(ds[j-1].Len, ds[i].Clock+ds[i].Len-ds[j-1].Clock)
			continue
		}
		ds[j] = ds[i]
		j++
	}
	m.deletes = ds[:j]
}

// appendDeleteSet writes the joined deletes.
func (m *merger) appendDeleteSet(dst []byte) []byte {
	ds := m.deletes
	clients := 0
	for i := range ds {
		if i == 0 || ds[i].Client != ds[i-1].Client {
			clients++
		}
	}
	dst = AppendVarUint(dst, uint64(clients))
	for i := 0; i < len(ds); {
		k := i
		for k < len(ds) && ds[k].Client == ds[i].Client {
			k++
		}
		dst = AppendVarUint(dst, ds[i].Client)
		dst = AppendVarUint(dst, uint64(k-i))
		for _, d := range ds[i:k] {
			dst = AppendVarUint(dst, d.Clock)
			dst = AppendVarUint(dst, d.Len)
		}
		i = k
	}
	return dst
}

// clientGroup is one client's structs while sortStructs orders them.
type clientGroup struct {
	client    uint64
	count, at int
}

// sortStructs orders the structs for writing (compareForMerge). An input holds a run of
// structs per client, in clock order; one client's runs, taken in input order, are in
// clock order too as a rule, because a room's inputs are its snapshot and then its
// updates as they arrived. So the structs are grouped by client (a counting sort of the
// runs, stable), the groups ordered by client, and only a group that is out of order is
// sorted: a compaction of a snapshot and a thousand keystrokes costs a pass, not a sort.
func (m *merger) sortStructs() {
	ss := m.structs
	if len(ss) < 2 {
		return
	}
	if m.groupOf == nil {
		m.groupOf = make(map[uint64]int)
	}
	for i := 0; i < len(ss); {
		j := i + 1
		for j < len(ss) && ss[j].client == ss[i].client {
			j++
		}
		g, ok := m.groupOf[ss[i].client]
		if !ok {
			g = len(m.groups)
			m.groupOf[ss[i].client] = g
			m.groups = append(m.groups, clientGroup{client: ss[i].client})
		}
		m.groups[g].count += j - i
		i = j
	}
	order := slices.Clone(m.groups) // by client, descending; groupOf keeps the first-seen index
	slices.SortFunc(order, func(a, b clientGroup) int { return cmp.Compare(b.client, a.client) })
	at := 0
	for _, g := range order {
		m.groups[m.groupOf[g.client]].at = at
		at += g.count
	}
	out := slices.Grow(m.spare[:0], len(ss))[:len(ss)]
	for i := 0; i < len(ss); {
		j := i + 1
		for j < len(ss) && ss[j].client == ss[i].client {
			j++
		}
		g := &m.groups[m.groupOf[ss[i].client]]
		g.at += copy(out[g.at:], ss[i:j])
		i = j
	}
	start := 0
	for _, g := range order {
		group := out[start : start+g.count]
		if !slices.IsSortedFunc(group, compareForMerge) {
			slices.SortFunc(group, compareForMerge)
		}
		start += g.count
	}
	m.spare, m.structs = ss[:0], out
}

// sortMostlySorted sorts s and returns it, or the spare buffer holding the result (the
// other one becomes the spare). A merge's input is mostly sorted already: a room's
// compaction merges one big snapshot, whose structs and deletes are in order, with a few
// hundred small updates. So the longest sorted run stays where it is, only the rest is
// sorted, and the two are merged in one pass.
func sortMostlySorted[T any](s []T, spare *[]T, cmp func(a, b T) int) []T {
	if len(s) < 64 {
		slices.SortFunc(s, cmp)
		return s
	}
	runStart, runEnd := 0, 0
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && cmp(s[j-1], s[j]) <= 0 {
			j++
		}
		if j-i > runEnd-runStart {
			runStart, runEnd = i, j
		}
		i = j
	}
	if runEnd-runStart == len(s) {
		return s
	}
	if runEnd-runStart < len(s)/4 {
		slices.SortFunc(s, cmp)
		return s
	}
	// The rest, sorted, goes to the spare buffer's tail; then both merge into it from the
	// front (the run stays in s, so nothing is overwritten before it is read).
	out := slices.Grow((*spare)[:0], len(s))[:len(s)]
	restLen := len(s) - (runEnd - runStart)
	rest := out[len(s)-restLen:]
	copy(rest, s[:runStart])
	copy(rest[runStart:], s[runEnd:])
	slices.SortFunc(rest, cmp)
	run := s[runStart:runEnd]
	i, j, k := 0, 0, 0
	for i < len(run) && j < len(rest) {
		if cmp(rest[j], run[i]) < 0 {
			out[k] = rest[j]
			j++
		} else {
			out[k] = run[i]
			i++
		}
		k++
	}
	// What is left of rest is in place already (k + restLen - j = len(s) at the end).
	copy(out[k:], run[i:])
	*spare = s[:0]
	return out
}

const maxInt32 = 1<<31 - 1
