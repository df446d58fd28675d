package yproto

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The vectors in testdata/vectors are written by testdata/gen/gen.mjs with Yjs 13.6.33,
// y-protocols 1.0.7 and lib0, and (names starting with pycrdt_) by gen_pycrdt.py with
// pycrdt (Yrs). The expectations next to each vector are what Yjs itself reports.

type vectorFile struct {
	Versions       map[string]string `json:"versions"`
	Updates        []updateVector    `json:"updates"`
	StateVectors   []svVector        `json:"stateVectors"`
	Messages       []messageVector   `json:"messages"`
	PycrdtMessages []messageVector   `json:"pycrdtMessages"`
	Awareness      []awarenessVector `json:"awareness"`
}

type updateVector struct {
	Name        string        `json:"name"`
	Note        string        `json:"note"`
	Hex         hexBytes      `json:"hex"`
	File        string        `json:"file"` // instead of Hex, for large vectors
	Structs     []ClientRange `json:"structs"`
	Deletes     []DeleteRange `json:"deletes"`
	DeleteCount *int          `json:"deleteCount"` // instead of Deletes, for large vectors
	HasSkips    bool          `json:"hasSkips"`
	Kinds       []string      `json:"kinds"` // struct, content, type and any kinds it contains
}

type svVector struct {
	Name    string   `json:"name"`
	Hex     hexBytes `json:"hex"`
	Entries []struct {
		Client uint64 `json:"client"`
		Clock  uint64 `json:"clock"`
	} `json:"entries"`
}

type messageVector struct {
	Name       string   `json:"name"`
	Hex        hexBytes `json:"hex"`
	Type       uint64   `json:"type"`
	Sync       uint64   `json:"sync"`
	PayloadHex hexBytes `json:"payloadHex"`
	Reason     *string  `json:"reason"`
}

type awarenessVector struct {
	Name    string   `json:"name"`
	Hex     hexBytes `json:"hex"`
	Entries []struct {
		ClientID uint64 `json:"clientID"`
		Clock    uint64 `json:"clock"`
		State    string `json:"state"`
	} `json:"entries"`
}

// hexBytes decodes a JSON string of hex digits.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// ClientRange and DeleteRange are decoded from the generator's lower-case keys.
func (c *ClientRange) UnmarshalJSON(b []byte) error {
	var v struct{ Client, Clock, End uint64 }
	err := json.Unmarshal(b, &v)
	*c = ClientRange{Client: v.Client, Clock: v.Clock, End: v.End}
	return err
}

func (d *DeleteRange) UnmarshalJSON(b []byte) error {
	var v struct{ Client, Clock, Len uint64 }
	err := json.Unmarshal(b, &v)
	*d = DeleteRange{Client: v.Client, Clock: v.Clock, Len: v.Len}
	return err
}

var loadVectorsOnce = sync.OnceValues(func() (*vectorFile, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", "yjs.json"))
	if err != nil {
		return nil, err
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		return nil, err
	}
	for i := range vf.Updates {
		u := &vf.Updates[i]
		if u.File == "" {
			continue
		}
		if u.Hex, err = os.ReadFile(filepath.Join("testdata", "vectors", u.File)); err != nil {
			return nil, err
		}
	}
	return &vf, nil
})

// loadVectors returns the parsed vector file; callers must not modify it.
func loadVectors(tb testing.TB) *vectorFile {
	tb.Helper()
	vf, err := loadVectorsOnce()
	if err != nil {
		tb.Fatalf("loading test vectors: %v", err)
	}
	return vf
}

// smallUpdates returns the update vectors without the large benchmark one.
func smallUpdates(tb testing.TB) []updateVector {
	var out []updateVector
	for _, u := range loadVectors(tb).Updates {
		if u.File == "" {
			out = append(out, u)
		}
	}
	return out
}

func vectorByName(tb testing.TB, name string) []byte {
	tb.Helper()
	for _, u := range loadVectors(tb).Updates {
		if u.Name == name {
			return u.Hex
		}
	}
	tb.Fatalf("no update vector %q", name)
	return nil
}
