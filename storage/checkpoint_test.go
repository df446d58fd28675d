package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckpointNames(t *testing.T) {
	name, err := CheckpointName("notes/42", 1234)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "notes%2F42@00000000000000001234-") || !strings.HasSuffix(name, ".y") {
		t.Fatalf("name %q", name)
	}
	if seq, ok := CheckpointSeq("notes/42", name); !ok || seq != 1234 {
		t.Fatalf("CheckpointSeq(%q) = %d, %v", name, seq, ok)
	}
	// A key whose own file name looks like a checkpoint of another key
	// cannot exist: '@' is encoded in keys.
	other, _ := FileName("notes/42@00000000000000001234-00000000")
	if _, ok := CheckpointSeq("notes/42", other); ok {
		t.Fatalf("%q taken for a checkpoint of notes/42", other)
	}
	for _, bad := range []string{"notes%2F42.y", "notes%2F42@1-00000000.y", "notes%2F42@0000000000000000123x-00000000.y", "notes%2F4@00000000000000001234-00000000.y"} {
		if _, ok := CheckpointSeq("notes/42", bad); ok {
			t.Errorf("%q taken for a checkpoint", bad)
		}
	}
}

func TestWriteReadLatestAndRemoveCheckpoints(t *testing.T) {
	dir := t.TempDir()
	u1, u2 := []byte{0, 0}, []byte{0, 0}
	old, _ := CheckpointName("doc", 10)
	if err := WriteCheckpoint(dir, old, u1); err != nil {
		t.Fatal(err)
	}
	if err := WriteCheckpoint(dir, old, u1); err == nil {
		t.Fatal("a checkpoint was overwritten")
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, old), past, past)
	newer, _ := CheckpointName("doc", 20)
	if err := WriteCheckpoint(dir, newer, u2); err != nil {
		t.Fatal(err)
	}
	// A room file of a single server, and another room's checkpoint.
	os.WriteFile(filepath.Join(dir, "doc.y"), EncodeFile(u1), 0o644)
	elsewhere, _ := CheckpointName("doc2", 30)
	WriteCheckpoint(dir, elsewhere, u1)

	if latest, err := LatestCheckpoint(dir, "doc"); err != nil || latest != newer {
		t.Fatalf("latest = %q, %v; want %q", latest, err, newer)
	}
	if latest, _ := LatestCheckpoint(dir, "solo"); latest != "" {
		t.Fatalf("latest of a room with no file = %q", latest)
	}
	os.WriteFile(filepath.Join(dir, "solo.y"), EncodeFile(u1), 0o644)
	if latest, _ := LatestCheckpoint(dir, "solo"); latest != "solo.y" {
		t.Fatalf("a single server's room file is not adopted: %q", latest)
	}
	updates, err := ReadCheckpoint(dir, newer)
	if err != nil || len(updates) != 1 {
		t.Fatalf("read: %d updates, %v", len(updates), err)
	}
	removed, err := RemoveCheckpoints(dir, "doc", newer, time.Minute)
	if err != nil || len(removed) != 1 || removed[0] != old {
		t.Fatalf("removed %v, %v; want only the old one (the current one is kept, the room file and other rooms untouched)", removed, err)
	}
	for _, keep := range []string{newer, "doc.y", elsewhere} {
		if _, err := os.Stat(filepath.Join(dir, keep)); err != nil {
			t.Fatalf("%s: %v", keep, err)
		}
	}
	if _, err := ReadCheckpoint(dir, old); !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("reading a removed checkpoint: %v", err)
	}
}
