package wiredbcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

func inspectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect <file.y>",
		Short: "Reports what a room file holds and whether it is valid",
		Long: `
Reads a room file without modifying it and reports its header, its records (count, bytes,
sizes), whether every record is a valid Yjs v1 update (or which one is not, and why, or that
the last one is torn), and what the merged document holds: clients and state vector, the
delete set, and the root types.

--json prints the same as one JSON object; --records lists every record.
Exit status: 0 for a valid file, 2 for a torn tail only, 1 for a file that cannot be read.
`,
		Args: cobra.ExactArgs(1),
		RunE: runE(runInspect),
	}
	cmd.Flags().Bool("json", false, "print the report as JSON")
	cmd.Flags().Bool("records", false, "list every record")
	return cmd
}

type inspectReport struct {
	File        string          `json:"file"`
	Size        int64           `json:"size"`
	Status      string          `json:"status"` // ok, empty, torn, corrupt, not_wiredb, unknown_version
	Error       string          `json:"error,omitempty"`
	Version     string          `json:"version,omitempty"`
	Records     int             `json:"records"`
	RecordBytes int64           `json:"recordBytes"`
	RecordSizes *sizeSummary    `json:"recordSizes,omitempty"`
	Torn        *tornReport     `json:"torn,omitempty"`
	BadRecord   *badReport      `json:"badRecord,omitempty"`
	Document    *docReport      `json:"document,omitempty"`
	RecordList  []recordSummary `json:"recordList,omitempty"`
}

type sizeSummary struct {
	Min           int     `json:"min"`
	Median        int     `json:"median"`
	Mean          float64 `json:"mean"`
	Max           int     `json:"max"`
	LargestIndex  int     `json:"largestIndex"`
	LargestOffset int64   `json:"largestOffset"`
}

type tornReport struct {
	Offset int64 `json:"offset"`
	Bytes  int64 `json:"bytes"`
}

type badReport struct {
	Index  int    `json:"index"`
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

type docReport struct {
	// Of says which records were merged: "all", or "before the corrupt record".
	Of           string       `json:"of"`
	MergedBytes  int          `json:"mergedBytes"`
	Clients      int          `json:"clients"`
	StateVector  []clockEntry `json:"stateVector"`
	DeleteRanges int          `json:"deleteRanges"`
	DeletedItems uint64       `json:"deletedItems"`
	Gaps         bool         `json:"gaps"`
	Incomplete   bool         `json:"incomplete"`
	Roots        []rootEntry  `json:"roots"`
	Error        string       `json:"error,omitempty"`
}

type clockEntry struct {
	Client uint64 `json:"client"`
	Clock  uint64 `json:"clock"`
}

type rootEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type recordSummary struct {
	Index   int           `json:"index"`
	Offset  int64         `json:"offset"`
	Size    int           `json:"size"`
	Structs []clientRange `json:"structs"`
	Deletes int           `json:"deletes"`
	Gaps    bool          `json:"gaps,omitempty"`
}

type clientRange struct {
	Client uint64 `json:"client"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
}

func runInspect(cmd *cobra.Command, args []string) (int, error) {
	asJSON, _ := cmd.Flags().GetBool("json")
	list, _ := cmd.Flags().GetBool("records")
	f, err := readRoomFile(args[0])
	if err != nil {
		return exitFailed, err
	}
	rep := buildReport(f, list)
	out := cmd.OutOrStdout()
	if asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return exitFailed, err
		}
		fmt.Fprintf(out, "%s\n", b)
	} else {
		printReport(out, rep)
	}
	switch {
	case f.problem != nil:
		return exitFailed, f.problem
	case f.tornAt >= 0:
		return exitTorn, nil
	}
	return exitOK, nil
}

func buildReport(f *roomFile, list bool) *inspectReport {
	rep := &inspectReport{File: f.path, Size: int64(len(f.data)), Status: f.status(), Version: f.version, Records: len(f.records)}
	if f.problem != nil {
		rep.Error = f.problem.Error()
	} else if f.tornAt >= 0 {
		rep.Error = f.tornError().Error()
	}
	if f.tornAt >= 0 {
		rep.Torn = &tornReport{Offset: f.tornAt, Bytes: f.tornBytes()}
	}
	if f.bad != nil {
		rep.BadRecord = &badReport{Index: f.bad.Index, Offset: f.bad.Offset, Reason: f.bad.Reason}
	}
	if len(f.records) > 0 {
		sizes := make([]int, len(f.records))
		s := &sizeSummary{Min: len(f.records[0].Update)}
		for i, r := range f.records {
			sizes[i] = len(r.Update)
			rep.RecordBytes += int64(len(r.Update))
			s.Min = min(s.Min, len(r.Update))
			if len(r.Update) > s.Max {
				s.Max, s.LargestIndex, s.LargestOffset = len(r.Update), i, r.Offset
			}
		}
		slices.Sort(sizes)
		s.Median = sizes[len(sizes)/2]
		s.Mean = float64(rep.RecordBytes) / float64(len(sizes))
		rep.RecordSizes = s
	}
	if list {
		for i, r := range f.records {
			rs := recordSummary{Index: i, Offset: r.Offset, Size: len(r.Update), Deletes: len(r.Info.Deletes), Gaps: r.Info.HasSkips}
			rs.Structs = []clientRange{}
			for _, c := range r.Info.Structs {
				rs.Structs = append(rs.Structs, clientRange{c.Client, c.Clock, c.End})
			}
			rep.RecordList = append(rep.RecordList, rs)
		}
	}
	if f.version != "" {
		rep.Document = describeDocument(f)
	}
	return rep
}

// describeDocument merges the file's whole records and reports what the result holds.
func describeDocument(f *roomFile) *docReport {
	d := &docReport{Of: "all records", StateVector: []clockEntry{}, Roots: []rootEntry{}}
	if f.bad != nil {
		d.Of = fmt.Sprintf("the %d records before the corrupt one", len(f.records))
	} else if f.tornAt >= 0 {
		d.Of = "the whole records (not the torn tail)"
	}
	merged, err := yproto.MergeUpdates(f.updates())
	if err != nil {
		d.Error = "merging: " + err.Error()
		return d
	}
	d.MergedBytes = len(merged)
	info, err := yproto.ValidateUpdate(merged, yproto.Limits{})
	if err != nil {
		d.Error = "the merged update is invalid: " + err.Error()
		return d
	}
	d.Clients = len(info.Structs)
	d.Gaps = info.HasSkips
	d.DeleteRanges = len(info.Deletes)
	for _, r := range info.Deletes {
		d.DeletedItems += r.Len
	}
	svBytes, err := ysafe.StateVector(merged)
	if err == nil {
		var sv map[uint64]uint64
		if sv, err = yproto.ValidateStateVector(svBytes); err == nil {
			for client, clock := range sv {
				d.StateVector = append(d.StateVector, clockEntry{client, clock})
			}
			slices.SortFunc(d.StateVector, func(a, b clockEntry) int { return cmpUint(a.Client, b.Client) })
		}
	}
	if err != nil {
		d.Error = "state vector: " + err.Error()
		return d
	}
	doc, err := ydoc.Render(merged)
	if err != nil {
		d.Error = "rendering: " + err.Error()
		return d
	}
	d.Incomplete = doc.Incomplete
	for name, r := range doc.Roots {
		d.Roots = append(d.Roots, rootEntry{name, r.Type})
	}
	slices.SortFunc(d.Roots, func(a, b rootEntry) int { return strings.Compare(a.Name, b.Name) })
	return d
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func printReport(w io.Writer, rep *inspectReport) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	p("file", "%s", rep.File)
	p("size", "%s bytes", humanize.Comma(rep.Size))
	if rep.Version != "" {
		p("format", "WireDB %s (header %q)", rep.Version, storage.Header)
	}
	switch rep.Status {
	case "ok":
		p("status", "OK: %d whole records, every one a valid Yjs v1 update", rep.Records)
	case "empty":
		p("status", "EMPTY: no header yet (the server writes one when it opens the room)")
	case "torn":
		if rep.Version == "" {
			p("status", "TORN HEADER: %d bytes, a prefix of the header (a crash while the file was created)", rep.Size)
		} else {
			p("status", "TORN TAIL: %d bytes after offset %d are an unfinished record (a crash mid-write)",
				rep.Torn.Bytes, rep.Torn.Offset)
		}
		p("", "the %d records before it are whole and valid; the server cuts the tail when it", rep.Records)
		p("", "opens the room, and `caddy wiredb compact --repair` cuts it offline")
	case "corrupt":
		p("status", "CORRUPT: %s", strings.TrimPrefix(rep.Error, rep.File+": "))
		p("", "the server refuses this room and leaves the file as it is")
	default:
		p("status", "UNREADABLE: %s", strings.TrimPrefix(rep.Error, rep.File+": "))
		p("", "the server refuses this room and leaves the file as it is")
	}
	if s := rep.RecordSizes; s != nil {
		p("records", "%d, %s bytes of updates", rep.Records, humanize.Comma(rep.RecordBytes))
		p("sizes", "min %s, median %s, mean %.1f, max %s (record %d at offset %s)",
			humanize.Comma(int64(s.Min)), humanize.Comma(int64(s.Median)), s.Mean,
			humanize.Comma(int64(s.Max)), s.LargestIndex, humanize.Comma(s.LargestOffset))
	} else if rep.Version != "" {
		p("records", "none")
	}
	for _, r := range rep.RecordList {
		var cs []string
		for _, c := range r.Structs {
			cs = append(cs, fmt.Sprintf("%d:%d..%d", c.Client, c.From, c.To))
		}
		extra := ""
		if r.Gaps {
			extra = ", gaps"
		}
		p("", "#%d @%d: %s bytes, structs [%s], %d deletes%s", r.Index, r.Offset,
			humanize.Comma(int64(r.Size)), strings.Join(cs, " "), r.Deletes, extra)
	}
	d := rep.Document
	if d == nil || rep.Records == 0 {
		return
	}
	p("document", "merged from %s: one update of %s bytes", d.Of, humanize.Comma(int64(d.MergedBytes)))
	if d.Error != "" {
		p("", "ERROR: %s", d.Error)
		return
	}
	p("clients", "%d", d.Clients)
	for _, e := range d.StateVector {
		p("", "client %d: clock %d", e.Client, e.Clock)
	}
	p("deletes", "%d ranges, %s items", d.DeleteRanges, humanize.Comma(int64(d.DeletedItems)))
	if d.Gaps {
		p("gaps", "the merged update has holes: some updates between others are missing")
	}
	if d.Incomplete {
		p("", "INCOMPLETE: the document depends on content the file does not hold")
	}
	var roots []string
	for _, r := range d.Roots {
		roots = append(roots, fmt.Sprintf("%s (%s)", r.Name, r.Type))
	}
	if len(roots) == 0 {
		roots = []string{"none"}
	}
	p("roots", "%s", strings.Join(roots, ", "))
}
