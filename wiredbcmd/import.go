package wiredbcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// maxImportSize bounds the input of import: a room file holds records of at most 2 GiB.
const maxImportSize = 1 << 31

func importCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import <in> <out.y>",
		Short: "Creates a room file from a Yjs update or from exported JSON",
		Long: `
Creates a new room file <out.y> (WireDB's format: the header and one record) from <in>,
which is either

  a binary Yjs v1 update (as export --update or Y.encodeStateAsUpdate write it), which
  must be valid and complete; or
  JSON in the shape export --json writes: Text roots from their "delta" (or "value"), Map
  and Array roots from their "value", XmlFragment roots from their "children". Values
  are plain JSON: what rendered from nested shared types comes back as JSON values, and
  binary as base64 strings. The built document must render as the input does.

--format auto (the default) reads JSON when <in> is a JSON object, else an update.
<in> - reads stdin. <out.y> must not exist unless --force is given; it is written to a
temporary file, fsynced and renamed into place. To serve it, name it as the server names
the room's file: the room key with every byte outside [A-Za-z0-9._-] percent-encoded,
plus ".y" (room notes/42 is notes%2F42.y).
`,
		Args: cobra.ExactArgs(2),
		RunE: runE(runImport),
	}
	cmd.Flags().String("format", "auto", "input format: auto, json or update")
	cmd.Flags().Bool("force", false, "replace <out.y> if it exists")
	return cmd
}

func runImport(cmd *cobra.Command, args []string) (int, error) {
	format, _ := cmd.Flags().GetString("format")
	force, _ := cmd.Flags().GetBool("force")
	in, out := args[0], args[1]
	data, err := readInput(cmd, in)
	if err != nil {
		return exitFailed, err
	}
	if format == "auto" {
		format = "update"
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
			format = "json"
		}
	}

	var update []byte
	var what string
	switch format {
	case "json":
		imp, err := ydoc.FromJSON(data)
		if err != nil {
			return exitFailed, fmt.Errorf("%s: %w", in, err)
		}
		if len(imp.Skipped) > 0 {
			warnf(cmd, "%s: left out empty roots (an update cannot hold an empty root): %s", in, strings.Join(imp.Skipped, ", "))
		}
		update, what = imp.Update, "JSON"
	case "update":
		if bytes.HasPrefix(data, []byte(storage.Header)) {
			return exitFailed, fmt.Errorf("%s is a WireDB room file, not an update: copy it, or `caddy wiredb export --update` it first", in)
		}
		if _, err := yproto.ValidateUpdate(data, yproto.Limits{}); err != nil {
			return exitFailed, fmt.Errorf("%s: not a valid Yjs v1 update: %w", in, err)
		}
		update, what = data, "Yjs update"
	default:
		return exitFailed, fmt.Errorf("unknown --format %q (auto, json or update)", format)
	}
	doc, err := ydoc.Render(update)
	if err != nil {
		return exitFailed, fmt.Errorf("%s: %w", in, err)
	}
	if doc.Incomplete {
		return exitFailed, fmt.Errorf("%s: the update depends on content it does not hold (it is a part of a document, not all of it)", in)
	}

	file := encodeRoomFile(update)
	if err := writeFileAtomic(out, file, 0o644, force, nil); err != nil {
		if errors.Is(err, errExists) {
			return exitFailed, fmt.Errorf("%s exists; use --force to replace it", out)
		}
		return exitFailed, err
	}
	var roots []string
	for name, r := range doc.Roots {
		roots = append(roots, fmt.Sprintf("%s (%s)", name, r.Type))
	}
	slices.Sort(roots)
	if len(roots) == 0 {
		roots = []string{"none"}
	}
	records := 1
	if yproto.IsEmptyUpdate(update) {
		records = 0
	}
	fmt.Fprintf(cmd.OutOrStdout(), "imported %s (%s) into %s: %d record, %s bytes; roots: %s\n",
		in, what, out, records, humanize.Comma(int64(len(file))), strings.Join(roots, ", "))
	return exitOK, nil
}

func readInput(cmd *cobra.Command, in string) ([]byte, error) {
	var r io.Reader
	if in == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(in)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxImportSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", in, err)
	}
	if len(data) > maxImportSize {
		return nil, fmt.Errorf("%s: larger than %s", in, humanize.IBytes(maxImportSize))
	}
	return data, nil
}
