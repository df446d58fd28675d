package wiredbcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/caddy-wiredb/wiredb/storage"
)

// errExists is returned by writeFileAtomic when the target exists and may not be replaced.
var errExists = errors.New("exists")

// writeFileAtomic writes data to path so that a crash at any point leaves either no new
// file (or the old one) or the whole new one: a temporary file beside it (named as
// storage's compaction names its own, path.<digits>.tmp, so the server clears a leftover
// when it next starts),
// written, read back and compared, fsynced, then renamed (or, with replace false, linked,
// which fails if path exists) over path, and the directory fsynced.
//
// beforeRename, when not nil, runs last before the rename; an error from it abandons the
// write and leaves path as it was.
func writeFileAtomic(path string, data []byte, perm os.FileMode, replace bool, beforeRename func() error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, errExists)
		}
	}
	tmp, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		if err != nil {
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmpName, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmpName, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	back, err := io.ReadAll(tmp)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", tmpName, err)
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("%s: read back %d bytes that differ from the %d written", tmpName, len(back), len(data))
	}
	if err := tmp.Close(); err != nil {
		tmp = nil
		return err
	}
	tmp = nil
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			return err
		}
	}
	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return err
		}
	} else {
		// A link fails if path exists, where a rename would replace it.
		switch err := os.Link(tmpName, path); {
		case errors.Is(err, os.ErrExist):
			return fmt.Errorf("%s: %w", path, errExists)
		case err != nil:
			// No hard links on this file system: check, then rename.
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("%s: %w", path, errExists)
			}
			if err := os.Rename(tmpName, path); err != nil {
				return err
			}
		default:
			os.Remove(tmpName)
		}
	}
	return storage.SyncDir(dir)
}
