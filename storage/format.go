package storage

import (
	"bytes"
	"fmt"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// WireDB's file format, read and written here only:
//
//	file   := Header record*
//	record := varUint(len(update)) update     ; a Yjs v1 update

// Header starts every file: WireDB's format version and a NUL.
const Header = "0.0.1\x00"

// maxRecordSize bounds a record a file may claim. A length beyond it is not a
// record WireDB or this server wrote.
const maxRecordSize = 1 << 31

// AppendRecord appends update's record to dst.
func AppendRecord(dst, update []byte) []byte {
	dst = yproto.AppendVarUint(dst, uint64(len(update)))
	return append(dst, update...)
}

// RecordSize is the size of update's record.
func RecordSize(update []byte) int64 {
	n := int64(len(update)) + 1
	for v := uint64(len(update)); v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// EncodeFile returns a whole file holding updates as its records.
func EncodeFile(updates ...[]byte) []byte {
	size := int64(len(Header))
	for _, u := range updates {
		size += RecordSize(u)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, Header...)
	for _, u := range updates {
		buf = AppendRecord(buf, u)
	}
	return buf
}

// Record is one whole record of a file.
type Record struct {
	Offset int64  // of its length prefix
	Update []byte // aliases the scanned bytes
	Info   yproto.UpdateInfo
}

// Scan is what ScanFile read in a file.
type Scan struct {
	// Version is the version the header names, when it is a WireDB
	// header ("0.0.1" for ours), or "".
	Version string
	// Records are the whole, valid records, in order, up to the end or to
	// the first record that is torn or corrupt.
	Records []Record
	// TornAt is the offset of a torn tail (an unfinished last record, zeros
	// a power loss left, or a header cut short), or -1 if there is none.
	TornAt int64
	// Err is why the file cannot be read: nil, or an error wrapping
	// ErrNotWireDB, ErrUnknownVersion, or ErrCorrupt (a *CorruptRecordError).
	Err error
}

// End is the offset after the last whole record: what a reader keeps of
// the file (0 when even the header is torn).
func (s *Scan) End(fileSize int64) int64 {
	if s.TornAt >= 0 {
		return s.TornAt
	}
	return fileSize
}

// Updates are the records' updates.
func Updates(records []Record) [][]byte {
	us := make([][]byte, len(records))
	for i, r := range records {
		us[i] = r.Update
	}
	return us
}

// CorruptRecordError is a whole record that is not a valid update (or not
// a record this format allows). It wraps ErrCorrupt.
type CorruptRecordError struct {
	Index  int   // among the file's records
	Offset int64 // of its length prefix
	Reason string
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("%v %d at offset %d: %s", ErrCorrupt, e.Index, e.Offset, e.Reason)
}

func (e *CorruptRecordError) Unwrap() error { return ErrCorrupt }

// ScanFile reads a file's bytes: the header, then records, each validated
// as a Yjs v1 update. It stops at a torn tail (noted in TornAt: a crash
// mid-write leaves one, and readers may cut it) and at anything else it
// cannot read (Err). An empty file has no header yet and is not an error.
func ScanFile(data []byte) Scan {
	var records []Record
	s := ScanRecords(data, func(r Record) { records = append(records, r) })
	s.Records = records
	return s
}

// ScanRecords is ScanFile for a reader that keeps only part of each
// record: it hands each whole, valid record to each, in order, and leaves
// Scan.Records empty. (A big room's file has a record per keystroke, and
// keeping each one's parse doubled what loading it allocated.)
func ScanRecords(data []byte, each func(Record)) Scan {
	s := Scan{TornAt: -1}
	index := 0 // of the next record
	if len(data) == 0 {
		return s
	}
	hl := len(Header)
	if len(data) < hl {
		if bytes.HasPrefix([]byte(Header), data) {
			s.TornAt = 0
		} else {
			s.Err = ErrNotWireDB
		}
		return s
	}
	h := data[:hl]
	switch {
	case string(h) == Header:
		s.Version = Header[:hl-1]
	case h[hl-1] == 0 && bytes.Count(h, []byte{'.'}) == 2:
		// "x.y.z\0": ours, but another version.
		s.Version = string(h[:hl-1])
		s.Err = fmt.Errorf("%w %q", ErrUnknownVersion, s.Version)
		return s
	default:
		s.Err = ErrNotWireDB
		return s
	}
	off := hl
	corrupt := func(reason string) {
		s.Err = &CorruptRecordError{Index: index, Offset: int64(off), Reason: reason}
	}
	for off < len(data) {
		n, w, err := yproto.ReadVarUint(data[off:])
		if err != nil {
			s.TornAt = int64(off) // a length cut off by the end of the file
			return s
		}
		if n > maxRecordSize {
			corrupt(fmt.Sprintf("record claims %d bytes", n))
			return s
		}
		if n == 0 {
			// Zero bytes to the end are what a power loss can leave of an
			// unfinished block; a zero-length record anywhere else is not ours.
			if allZero(data[off:]) {
				s.TornAt = int64(off)
			} else {
				corrupt("empty record")
			}
			return s
		}
		end := off + w + int(n)
		if end > len(data) {
			s.TornAt = int64(off)
			return s
		}
		u := data[off+w : end]
		info, err := yproto.ValidateUpdate(u, yproto.Limits{})
		if err != nil {
			corrupt("its update is invalid: " + err.Error())
			return s
		}
		each(Record{Offset: int64(off), Update: u, Info: info})
		index++
		off = end
	}
	return s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
