package yproto

// DiffUpdate returns what of update a peer with state vector sv lacks, as Yjs's diffUpdate
// computes it: of every client, the structs from the peer's clock on (the first one from an
// offset where the clock falls inside it; Skip structs before the first one written are
// left out), and the whole delete set, which no state vector describes. The update must
// have passed ValidateUpdate; an invalid state vector or update returns an error.
//
// Unlike y-crdt's DiffUpdate it builds no objects per struct: the structs the peer lacks
// are copied as bytes, and only a struct cut by the peer's clock is rewritten.
func DiffUpdate(update, sv []byte) ([]byte, error) {
	clocks, err := ValidateStateVector(sv)
	if err != nil {
		return nil, err
	}
	m := mergerPool.Get().(*merger)
	defer m.release()
	if err := m.scan(0, update); err != nil {
		return nil, err
	}
	// scan keeps the update's order: one run of structs per client section.
	for i, s := range m.structs {
		if i > 0 && s.client != m.structs[i-1].client {
			m.endSection()
		}
		known := clocks[s.client]
		if s.clock+s.length <= known {
			continue
		}
		first := m.sec.start < 0
		if first && s.kind() == refSkip {
			continue // the first struct written for a client is not a Skip
		}
		w := pendingStruct{s: s, length: s.length}
		if first && s.clock < known {
			w.offset = known - s.clock
			w.length -= w.offset
		}
		m.beginStruct(&w)
		if m.body, err = m.appendStruct(m.body, update, &w); err != nil {
			return nil, err
		}
	}
	m.endSection()
	m.joinDeletes()
	return m.assemble(), nil
}
