package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The pre-generated updates (bench/gen/gen.mjs): <name>.bin holds varUint(len) + update,
// repeated; <name>.json describes it.

type indexFile struct {
	Name        string            `json:"name"`
	Kind        string            `json:"kind"`
	Count       int               `json:"count"`
	Bytes       int               `json:"bytes"`
	Merged      string            `json:"merged"`
	StateVector map[string]uint64 `json:"stateVector"`
	Writers     []struct {
		Client uint64 `json:"client"`
		Count  int    `json:"count"`
		Offset int    `json:"offset"`
		Bytes  int    `json:"bytes"`
		Clock  uint64 `json:"clock"`
	} `json:"writers"`
}

// updateList is a list of updates in one backing array.
type updateList struct {
	buf  []byte
	offs []int // start of update i in buf; offs[len] = end
}

func (l *updateList) len() int         { return len(l.offs) - 1 }
func (l *updateList) at(i int) []byte  { return l.buf[l.offs[i]:l.offs[i+1]:l.offs[i+1]] }
func (l *updateList) bytes() (n int)   { return len(l.buf) }
func (l *updateList) prefix(n int) int { return l.offs[n] - l.offs[0] }

func readList(b []byte, want int) (*updateList, error) {
	l := &updateList{buf: make([]byte, 0, len(b)), offs: make([]int, 0, want+1)}
	for len(b) > 0 {
		p, rest, err := readVarBytes(b)
		if err != nil {
			return nil, fmt.Errorf("update %d: %w", len(l.offs), err)
		}
		l.offs = append(l.offs, len(l.buf))
		l.buf = append(l.buf, p...)
		b = rest
	}
	l.offs = append(l.offs, len(l.buf))
	if want >= 0 && l.len() != want {
		return nil, fmt.Errorf("%d updates, the index says %d", l.len(), want)
	}
	return l, nil
}

func readIndex(dir, name string) (*indexFile, []byte, error) {
	j, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (generate the data: node bench/gen/gen.mjs)", err)
	}
	var idx indexFile
	if err := json.Unmarshal(j, &idx); err != nil {
		return nil, nil, fmt.Errorf("%s.json: %w", name, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name+".bin"))
	if err != nil {
		return nil, nil, err
	}
	if len(b) != idx.Bytes {
		return nil, nil, fmt.Errorf("%s.bin: %d bytes, the index says %d", name, len(b), idx.Bytes)
	}
	return &idx, b, nil
}

// stream is one writer's keystroke updates, with what identifies them on receipt.
type stream struct {
	client  uint64
	updates *updateList
	// seqOfClock[c] is the update that created the client's clock c: every update of a
	// stream inserts, so clock ranges identify updates.
	seqOfClock []int32
}

func loadStreams(dir string) ([]*stream, error) {
	idx, b, err := readIndex(dir, "keystrokes")
	if err != nil {
		return nil, err
	}
	var out []*stream
	for w, wr := range idx.Writers {
		if wr.Offset < 0 || wr.Offset+wr.Bytes > len(b) {
			return nil, fmt.Errorf("keystrokes writer %d: bad offset", w)
		}
		l, err := readList(b[wr.Offset:wr.Offset+wr.Bytes], wr.Count)
		if err != nil {
			return nil, fmt.Errorf("keystrokes writer %d: %w", w, err)
		}
		s := &stream{client: wr.Client, updates: l, seqOfClock: make([]int32, 0, wr.Clock)}
		for i := 0; i < l.len(); i++ {
			r := streamRanges{s: s, seq: int32(i)}
			if err := scanStructs(l.at(i), &r); err != nil {
				return nil, fmt.Errorf("keystrokes writer %d update %d: %w", w, i, err)
			}
			if r.err != nil {
				return nil, fmt.Errorf("keystrokes writer %d update %d: %w", w, i, r.err)
			}
			if !r.any {
				return nil, fmt.Errorf("keystrokes writer %d update %d inserts nothing", w, i)
			}
		}
		if uint64(len(s.seqOfClock)) != wr.Clock {
			return nil, fmt.Errorf("keystrokes writer %d: clock %d, the index says %d", w, len(s.seqOfClock), wr.Clock)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("keystrokes: no writers")
	}
	return out, nil
}

type streamRanges struct {
	s   *stream
	seq int32
	any bool
	err error
}

func (r *streamRanges) addRange(client, start, end uint64) {
	if client != r.s.client || start != uint64(len(r.s.seqOfClock)) {
		r.err = fmt.Errorf("struct range %d:[%d,%d) is not the next of writer %d", client, start, end, r.s.client)
		return
	}
	for c := start; c < end; c++ {
		r.s.seqOfClock = append(r.s.seqOfClock, r.seq)
	}
	r.any = true
}

// document is an update list that builds one document (doc20k, fragmented).
type document struct {
	name    string
	updates *updateList
	merged  []byte            // doc20k.merged.bin, if any
	sv      map[uint64]uint64 // state vector of the whole list
	// ends[i] is the state vector entry that update i needs covered at a receiver before
	// it counts as delivered (its highest struct end per client); empty for delete-only.
	ends   [][2]uint64
	endOff []int
}

func loadDocument(dir, name string, limit int) (*document, error) {
	idx, b, err := readIndex(dir, name)
	if err != nil {
		return nil, err
	}
	l, err := readList(b, idx.Count)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &document{name: name, updates: l, sv: map[uint64]uint64{}}
	if idx.Merged != "" && (limit <= 0 || limit >= l.len()) {
		if d.merged, err = os.ReadFile(filepath.Join(dir, idx.Merged)); err != nil {
			return nil, err
		}
	}
	if limit > 0 && limit < l.len() {
		l.offs = l.offs[:limit+1]
	}
	sv := svSink{sv: d.sv}
	m := maxSink{max: map[uint64]uint64{}}
	d.endOff = make([]int, 0, l.len()+1)
	for i := 0; i < l.len(); i++ {
		clear(m.max)
		if err := scanStructs(l.at(i), &m); err != nil {
			return nil, fmt.Errorf("%s update %d: %w", name, i, err)
		}
		if err := scanStructs(l.at(i), &sv); err != nil {
			return nil, fmt.Errorf("%s update %d: %w", name, i, err)
		}
		d.endOff = append(d.endOff, len(d.ends))
		for c, e := range m.max {
			d.ends = append(d.ends, [2]uint64{c, e})
		}
	}
	d.endOff = append(d.endOff, len(d.ends))
	// the parser against Yjs' own state vector (whole lists only)
	if limit <= 0 || limit >= idx.Count {
		if len(idx.StateVector) != len(d.sv) {
			return nil, fmt.Errorf("%s: %d clients parsed, the index says %d", name, len(d.sv), len(idx.StateVector))
		}
		for k, v := range idx.StateVector {
			c, err := strconv.ParseUint(k, 10, 64)
			if err != nil || d.sv[c] != v {
				return nil, fmt.Errorf("%s: client %s: parsed clock %d, the index says %d", name, k, d.sv[c], v)
			}
		}
	}
	return d, nil
}

// needs reports the (client, clock) pairs update i must have covered.
func (d *document) needs(i int) [][2]uint64 { return d.ends[d.endOff[i]:d.endOff[i+1]] }
