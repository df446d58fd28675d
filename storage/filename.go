package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// FileExt is the extension of room files.
const FileExt = ".y"

// maxEncodedName bounds the encoded key part of a file name, so that
// name + "~" + 64 hex digits + ".y" stays well below the 255-byte limit of
// common file systems.
const maxEncodedName = 120

// ErrInvalidKey is returned for room keys that cannot name a file: empty,
// containing NUL, or with a "." or ".." path segment.
var ErrInvalidKey = errors.New("storage: invalid room key")

// ValidateKey reports why a room key is unusable, or nil.
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("empty room key")
	}
	if strings.IndexByte(key, 0) >= 0 {
		return errors.New("room key contains NUL")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." || seg == "." {
			return errors.New("room key contains a '.' or '..' segment")
		}
	}
	return nil
}

// FileName maps a room key to a file name that cannot escape the data
// directory and cannot collide with the name of another key: every byte
// outside [A-Za-z0-9._-] is percent-encoded (so the name never contains '/'),
// and keys whose encoding is too long are cut and suffixed with '~' and the
// SHA-256 of the whole key. '~' is itself always percent-encoded, so a cut
// name can never equal the plain name of another key.
func FileName(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", errors.Join(ErrInvalidKey, err)
	}
	enc := percentEncode(key)
	if len(enc) > maxEncodedName {
		cut := maxEncodedName
		// Do not split a %XX escape.
		if i := strings.LastIndexByte(enc[cut-2:cut], '%'); i >= 0 {
			cut = cut - 2 + i
		}
		sum := sha256.Sum256([]byte(key))
		enc = enc[:cut] + "~" + hex.EncodeToString(sum[:])
	}
	return enc + FileExt, nil
}

func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}
