// Package storage keeps each room's updates in a file in WireDB's on-disk
// format, so that WireDB's own Python file wire can read what this server
// writes and the other way round:
//
//	file   := "0.0.1" 0x00 record*
//	record := varUint(len(update)) update   ; a Yjs v1 update
//
// One file per room, <dir>/<FileName(key)>. A Log appends whole records with a
// single write(2) each, so a crash of the process can only tear the last
// record, which Open cuts back with a warning. Anything else that cannot be
// read (a bad record in the middle, another version, a foreign file) refuses
// the room and leaves the file untouched.
//
// The package imports nothing from Caddy.
package storage
