package wiredbcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/yproto"
)

func exportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export <file.y> --json|--update [-o <file>]",
		Short: "Writes a room's document as JSON or as one Yjs update",
		Long: `
Merges the records of a room file and writes the document:

  --json    as JSON, one object per root type:
            {"<root>": {"type": "Text"|"Map"|"Array"|"XmlFragment", "value": ...}}
            where "value" is what Yjs' toJSON() of the root gives (an XmlFragment's is its
            XML string), a Text with formatting or embeds also has "delta", and an
            XmlFragment "children" (its tree). Yjs updates do not record which kind a root
            is; it is inferred from the root's content. Binary renders as base64.
  --update  as one Yjs v1 update (binary), which Y.applyUpdate and caddy wiredb import read.

Output goes to stdout, or with -o to a new file (--force replaces an existing one).
A torn tail is left out, with a warning; a file that cannot be read is an error.
`,
		Args: cobra.ExactArgs(1),
		RunE: runE(runExport),
	}
	cmd.Flags().Bool("json", false, "write the document as JSON")
	cmd.Flags().Bool("update", false, "write the document as one binary Yjs v1 update")
	cmd.Flags().StringP("output", "o", "", "write to this file instead of stdout")
	cmd.Flags().Bool("force", false, "replace the -o file if it exists")
	return cmd
}

func runExport(cmd *cobra.Command, args []string) (int, error) {
	asJSON, _ := cmd.Flags().GetBool("json")
	asUpdate, _ := cmd.Flags().GetBool("update")
	output, _ := cmd.Flags().GetString("output")
	force, _ := cmd.Flags().GetBool("force")
	if asJSON == asUpdate {
		return exitFailed, errors.New("give exactly one of --json and --update")
	}
	path := args[0]
	f, err := readRoomFile(path)
	if err != nil {
		return exitFailed, err
	}
	if f.problem != nil {
		return exitFailed, f.problem
	}
	if f.tornAt >= 0 {
		warnf(cmd, "%v; exporting the %d whole records before it", f.tornError(), len(f.records))
	}
	merged, err := yproto.MergeUpdates(f.updates())
	if err != nil {
		return exitFailed, fmt.Errorf("%s: merging %d records: %w", path, len(f.records), err)
	}

	var out []byte
	if asJSON {
		doc, err := ydoc.Render(merged)
		if err != nil {
			return exitFailed, fmt.Errorf("%s: %w", path, err)
		}
		if doc.Incomplete {
			warnf(cmd, "%s: the document depends on content the file does not hold; exporting what it holds", path)
		}
		j, err := doc.JSON()
		if err != nil {
			return exitFailed, err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, j, "", "  "); err != nil {
			return exitFailed, err
		}
		buf.WriteByte('\n')
		out = buf.Bytes()
	} else {
		out = merged
	}

	if output == "" || output == "-" {
		if asUpdate && isTerminal(os.Stdout) && cmd.OutOrStdout() == os.Stdout {
			return exitFailed, errors.New("not writing a binary update to a terminal: use -o <file> or redirect stdout")
		}
		_, err := cmd.OutOrStdout().Write(out)
		return exitOK, err
	}
	if same, _ := sameFile(path, output); same {
		return exitFailed, fmt.Errorf("%s: -o names the room file itself", output)
	}
	if err := writeFileAtomic(output, out, 0o644, force, nil); err != nil {
		if errors.Is(err, errExists) {
			return exitFailed, fmt.Errorf("%s exists; use --force to replace it", output)
		}
		return exitFailed, err
	}
	return exitOK, nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
