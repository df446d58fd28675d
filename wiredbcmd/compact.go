package wiredbcmd

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/yproto"
)

func compactCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compact <file.y>",
		Short: "Rewrites a room file as one merged update",
		Long: `
Squashes a room file offline: merges its records into one Yjs update and replaces the
file with the header and that one record. Unlike the server's own compaction, which also
drops the content of deleted items (as a Yjs document with gc does), this is a plain merge
(Yjs's mergeUpdates): everything the records hold, deleted content included, is kept.

The file is only replaced when it was read whole and the result checks out: every record
is a valid update; the merged update renders (as export --json shows it) exactly as the
records applied one after another do, with the same state vector; and the file did not
change meanwhile. The new file is written beside the old one, fsynced, read back, renamed
over it and the directory fsynced, so a crash leaves either file, whole.

A file with a torn tail (a crash mid-write) is refused unless --repair is given; then the
torn bytes are dropped and the whole records compacted, as the server would on open.
A file that cannot be read is never modified. --dry-run does everything but the write.

Do not compact the file of a room the server has loaded (see caddy wiredb --help).
`,
		Args: cobra.ExactArgs(1),
		RunE: runE(runCompact),
	}
	cmd.Flags().Bool("repair", false, "cut a torn tail instead of refusing")
	cmd.Flags().Bool("dry-run", false, "check and report, but do not write")
	return cmd
}

func runCompact(cmd *cobra.Command, args []string) (int, error) {
	repair, _ := cmd.Flags().GetBool("repair")
	dryRun, _ := cmd.Flags().GetBool("dry-run")
	path := args[0]
	f, err := readRoomFile(path)
	if err != nil {
		return exitFailed, err
	}
	switch {
	case f.problem != nil:
		return exitFailed, fmt.Errorf("%w; not compacting, the file is unchanged", f.problem)
	case len(f.data) == 0:
		return exitFailed, fmt.Errorf("%s: empty file (no header): nothing to compact", path)
	case f.tornAt >= 0 && !repair:
		return exitFailed, fmt.Errorf("%w; not compacting, the file is unchanged. "+
			"`caddy wiredb compact --repair %s` cuts the torn bytes and compacts the whole records "+
			"(as the server would when it opens the room)", f.tornError(), path)
	case f.tornAt < 0 && len(f.records) <= 1:
		fmt.Fprintf(cmd.OutOrStdout(), "%s: already compact (%d record, %s bytes); nothing to do\n",
			path, len(f.records), humanize.Comma(int64(len(f.data))))
		return exitOK, nil
	}

	updates := f.updates()
	merged, err := yproto.MergeUpdates(updates)
	if err != nil {
		return exitFailed, fmt.Errorf("%s: merging %d records: %w; the file is unchanged", path, len(updates), err)
	}
	if err := verifyMerge(updates, merged); err != nil {
		return exitFailed, fmt.Errorf("%s: %w; not compacting, the file is unchanged", path, err)
	}
	data := encodeRoomFile(merged)
	if len(updates) == 0 {
		data = encodeRoomFile(nil)
	}

	out := cmd.OutOrStdout()
	verb := "compacted"
	if dryRun {
		verb = "would compact (dry run)"
	}
	if !dryRun {
		unchanged := func() error {
			now, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("%s: re-reading before replacing it: %w", path, err)
			}
			if !bytes.Equal(now, f.data) {
				return fmt.Errorf("%s changed while it was being compacted (is the server writing to it?); the file is unchanged", path)
			}
			return nil
		}
		if err := writeFileAtomic(path, data, f.mode, true, unchanged); err != nil {
			return exitFailed, err
		}
	}
	fmt.Fprintf(out, "%s %s: %d records, %s bytes -> %d record, %s bytes\n", verb, path,
		len(f.records), humanize.Comma(int64(len(f.data))), min(len(updates), 1), humanize.Comma(int64(len(data))))
	if f.tornAt >= 0 {
		fmt.Fprintf(out, "cut a torn tail of %s bytes at offset %d\n", humanize.Comma(f.tornBytes()), f.tornAt)
	}
	fmt.Fprintf(out, "verified: the merged update holds the same document as the %d records (same content, same state vector)\n", len(updates))
	return exitOK, nil
}

// errDiffers is returned (wrapped) when a merge does not hold what its inputs hold.
var errDiffers = errors.New("the merged update differs from the records")

// verifyMerge checks that merged holds what updates hold: it is a valid update, and it
// renders exactly as the updates applied in order to one document (another path through
// y-crdt than the merge), with the same state vector.
func verifyMerge(updates [][]byte, merged []byte) error {
	if _, err := yproto.ValidateUpdate(merged, yproto.Limits{}); err != nil {
		return fmt.Errorf("%w: it is not a valid update: %w", errDiffers, err)
	}
	before, err := ydoc.RenderAll(updates)
	if err != nil {
		return fmt.Errorf("rendering the records: %w", err)
	}
	after, err := ydoc.Render(merged)
	if err != nil {
		return fmt.Errorf("rendering the merged update: %w", err)
	}
	bj, err := before.JSON()
	if err != nil {
		return err
	}
	aj, err := after.JSON()
	if err != nil {
		return err
	}
	if !bytes.Equal(bj, aj) {
		return fmt.Errorf("%w: the records render as %s, the merged update as %s", errDiffers, clip(bj), clip(aj))
	}
	if !maps.Equal(before.StateVector, after.StateVector) {
		return fmt.Errorf("%w: state vector %v, merged %v", errDiffers, before.StateVector, after.StateVector)
	}
	if before.Incomplete != after.Incomplete {
		return fmt.Errorf("%w: one is incomplete, the other not", errDiffers)
	}
	return nil
}

func clip(b []byte) string {
	const n = 200
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
