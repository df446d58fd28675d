package roomhub

import (
	"sort"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// coverage is what a room's document holds, per client: the clock range of
// its structs and its deleted ranges. It answers "does this update add
// anything?" without calling into y-crdt.
type coverage struct {
	structs map[uint64]yproto.ClientRange
	deletes map[uint64][]yproto.DeleteRange // sorted, merged
	exact   bool                            // false when the state had gaps (skips)
}

func (r *room) coverageLocked() (*coverage, error) {
	if r.coverage != nil {
		return r.coverage, nil
	}
	state, err := r.stateLocked()
	if err != nil {
		return nil, err
	}
	info, err := yproto.ValidateUpdate(state, yproto.Limits{})
	if err != nil {
		return nil, err
	}
	r.coverage = coverageFromInfo(info)
	return r.coverage, nil
}

// coverageFromInfo is the coverage of the update info was parsed from.
func coverageFromInfo(info yproto.UpdateInfo) *coverage {
	cov := &coverage{
		structs: make(map[uint64]yproto.ClientRange, len(info.Structs)),
		deletes: make(map[uint64][]yproto.DeleteRange),
		exact:   !info.HasSkips,
	}
	for _, s := range info.Structs {
		cov.structs[s.Client] = s
	}
	for _, d := range info.Deletes {
		cov.deletes[d.Client] = append(cov.deletes[d.Client], d)
	}
	for client, ds := range cov.deletes {
		cov.deletes[client] = mergeRanges(ds)
	}
	return cov
}

func mergeRanges(ds []yproto.DeleteRange) []yproto.DeleteRange {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Clock < ds[j].Clock })
	out := ds[:0]
	for _, d := range ds {
		if n := len(out); n > 0 && d.Clock <= out[n-1].Clock+out[n-1].Len {
			if end := d.Clock + d.Len; end > out[n-1].Clock+out[n-1].Len {
				out[n-1].Len = end - out[n-1].Clock
			}
			continue
		}
		out = append(out, d)
	}
	return out
}

// covers reports whether every struct and every delete of info is already
// in the document.
func (cov *coverage) covers(info yproto.UpdateInfo) bool {
	if !cov.exact || info.HasSkips {
		return false
	}
	for _, s := range info.Structs {
		have, ok := cov.structs[s.Client]
		if !ok || s.Clock < have.Clock || s.End > have.End {
			return false
		}
	}
	for _, d := range info.Deletes {
		ranges := cov.deletes[d.Client]
		i := sort.Search(len(ranges), func(i int) bool { return ranges[i].Clock+ranges[i].Len > d.Clock })
		if i == len(ranges) || ranges[i].Clock > d.Clock || ranges[i].Clock+ranges[i].Len < d.Clock+d.Len {
			return false
		}
	}
	return true
}
