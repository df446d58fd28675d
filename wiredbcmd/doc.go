// Package wiredbcmd adds the `caddy wiredb` command to Caddy's command line: offline tools
// for the room files that package storage writes.
//
//	caddy wiredb inspect <file.y> [--json] [--records]
//	caddy wiredb compact <file.y> [--repair] [--dry-run]
//	caddy wiredb export  <file.y> --json|--update [-o <file>] [--force]
//	caddy wiredb import  <in> <out.y> [--format auto|json|update] [--force]
//
// Importing the package registers the command (caddycmd.RegisterCommand, in init).
//
// The commands read a file by the rules storage.Store.Open applies, without modifying it:
// a torn last record is reported, not cut; a file that cannot be read (not a WireDB file,
// an unknown version, a corrupt record) is reported with its name and the problem, and no
// command modifies it. Documents are merged, rendered and built through internal/ysafe and
// internal/ydoc, so every byte string is validated before y-crdt sees it.
package wiredbcmd
