package wiredbcmd

import (
	"errors"
	"fmt"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Exit codes of the subcommands.
const (
	exitOK = 0
	// exitFailed: the command failed or refused: a file it cannot read, bad arguments.
	exitFailed = 1
	// exitTorn: inspect found a torn tail (and nothing worse).
	exitTorn = 2
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "wiredb",
		Usage: "inspect|compact|export|import ...",
		Short: "Inspects, compacts, exports and imports WireDB room files",
		Long: `
Offline tools for the room files of the wiredb module (WireDB's format: the header
"0.0.1\x00", then records, each a varuint length and a Yjs v1 update).

  caddy wiredb inspect <file.y> [--json] [--records]
  caddy wiredb compact <file.y> [--repair] [--dry-run]
  caddy wiredb export  <file.y> --json|--update [-o <file>] [--force]
  caddy wiredb import  <in> <out.y> [--format auto|json|update] [--force]

A file any of them cannot read (not a WireDB file, an unknown version, a corrupt record)
is reported with its name and the problem, and never modified. A torn last record (a crash
mid-write) is reported by inspect, ignored with a warning by export, and cut by compact
only with --repair.

compact rewrites a file in place. Do not run it on a room the server has loaded: stop the
server or wait until the room is unloaded (room_idle_timeout after its last client left).
It refuses if the file changes while it works, but cannot rule out a write in between.

Exit status: 0 on success; 1 when a command fails or refuses; inspect exits 2 when the only
problem is a torn tail.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(inspectCommand(), compactCommand(), exportCommand(), importCommand())
		},
	})
}

// errReported is returned to cobra for exit status 1 after the error was printed.
var errReported = errors.New("wiredb: failed")

// runE adapts a subcommand that returns an exit status and an error: the error is printed
// to stderr as "caddy wiredb <sub>: <error>", and the status becomes the process's.
func runE(f func(cmd *cobra.Command, args []string) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		code, err := f(cmd, args)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.CommandPath(), err)
			if code == exitOK {
				code = exitFailed
			}
		}
		// Errors are printed here; cobra would print them again.
		cmd.SilenceErrors = true
		switch {
		case code == exitOK:
			return nil
		case code == exitFailed:
			return errReported
		}
		// caddycmd.Main exits with the status of the error this returns.
		return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(cmd, nil)
	}
}

// warnf prints a warning to stderr.
func warnf(cmd *cobra.Command, format string, args ...any) {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", cmd.CommandPath(), fmt.Sprintf(format, args...))
}
