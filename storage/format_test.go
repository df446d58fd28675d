package storage

import (
	"errors"
	"testing"
)

// RecordSize is the length AppendRecord writes, across the varUint's
// length boundaries.
func TestRecordSize(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21} {
		u := make([]byte, n)
		if got, want := RecordSize(u), int64(len(AppendRecord(nil, u))); got != want {
			t.Errorf("RecordSize of %d bytes = %d, AppendRecord writes %d", n, got, want)
		}
	}
}

// ScanFile reports where a corrupt record is, which record it is and why.
func TestScanFileCorruptRecord(t *testing.T) {
	a, b := textUpdate(1, 0, "a"), textUpdate(1, 1, "b")
	data := append(fileOf(a, b), record([]byte{9, 9, 9})...)
	s := ScanFile(data)
	var ce *CorruptRecordError
	if !errors.As(s.Err, &ce) || !errors.Is(s.Err, ErrCorrupt) {
		t.Fatalf("err = %v, want a *CorruptRecordError wrapping ErrCorrupt", s.Err)
	}
	if ce.Index != 2 || ce.Offset != int64(len(fileOf(a, b))) || len(s.Records) != 2 {
		t.Fatalf("corrupt record %d at %d after %d records, want record 2 at %d", ce.Index, ce.Offset, len(s.Records), len(fileOf(a, b)))
	}
	if s.Version != "0.0.1" || s.TornAt != -1 {
		t.Fatalf("version %q torn at %d", s.Version, s.TornAt)
	}
}

// The log keeps its own sizes: what a checkpoint wrote, and what was
// appended since, across Open, Append and Checkpoint.
func TestStats(t *testing.T) {
	s := openStore(t)
	l, _, _, err := openLog(s, "st")
	if err != nil {
		t.Fatal(err)
	}
	h := int64(len(Header))
	want := func(what string, st Stats) {
		t.Helper()
		if got := l.Stats(); got != st {
			t.Fatalf("%s: %+v, want %+v", what, got, st)
		}
	}
	want("new", Stats{Bytes: h, CheckpointBytes: h})
	a, b, m := textUpdate(1, 0, "a"), textUpdate(1, 1, "b"), textUpdate(1, 0, "ab")
	for _, u := range [][]byte{a, b} {
		if _, err := l.Append(u); err != nil {
			t.Fatal(err)
		}
	}
	ab := RecordSize(a) + RecordSize(b)
	want("appended", Stats{Bytes: h + ab, Records: 2, CheckpointBytes: h, SinceCheckpointRecords: 2, SinceCheckpointBytes: ab})
	end := l.End()
	c := textUpdate(2, 0, "c")
	if _, err := l.Append(c); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(m, end); err != nil {
		t.Fatal(err)
	}
	cp := h + RecordSize(m)
	want("checkpointed", Stats{Bytes: cp + RecordSize(c), Records: 2, CheckpointBytes: cp, SinceCheckpointRecords: 1, SinceCheckpointBytes: RecordSize(c)})
	l.Close()

	// Reopened with one record: that record counts as a checkpoint.
	l2, _, _, err := openLog(s, "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Append(m); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	o, err := s.Open("one")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Log.Close()
	if got, want := o.Log.Stats(), (Stats{Bytes: cp, Records: 1, CheckpointBytes: cp}); got != want || o.Snapshot == nil {
		t.Fatalf("reopened: %+v (snapshot %v), want %+v and the record's parse", got, o.Snapshot != nil, want)
	}
	if ok, err := s.Exists("one"); !ok || err != nil {
		t.Fatalf("Exists(one) = %v, %v", ok, err)
	}
	if ok, err := s.Exists("none"); ok || err != nil {
		t.Fatalf("Exists(none) = %v, %v", ok, err)
	}
}
