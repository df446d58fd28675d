package yproto

import (
	"encoding/json"
	"unicode/utf8"
)

// isJSONSpace reports whether c is whitespace in JSON (and so for JSON.parse).
func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// firstNonSpace returns the first byte of s that is not JSON whitespace, or 0.
func firstNonSpace(s []byte) byte {
	for _, c := range s {
		if !isJSONSpace(c) {
			return c
		}
	}
	return 0
}

// checkJSON fails unless s is what JSON.parse accepts (RFC 8259 JSON in valid UTF-8) and
// nests at most maxDepth arrays and objects. The depth is checked first, by a linear scan
// that only tracks whether it is inside a string, so text nested a million levels deep is
// rejected before a real parser builds a stack for it. json.Valid is iterative (no
// recursion) and does not allocate for the values it checks.
func checkJSON(s []byte, maxDepth int, offset int, what string) error {
	if !utf8.Valid(s) {
		return errAt(ErrMalformed, offset, "%s is not valid UTF-8", what)
	}
	if !jsonDepthWithin(s, maxDepth) {
		return errAt(ErrTooDeep, offset, "%s nests deeper than %d", what, maxDepth)
	}
	if !json.Valid(s) {
		return errAt(ErrMalformed, offset, "%s is not valid JSON", what)
	}
	return nil
}

// jsonDepthWithin reports whether the brackets of s, outside strings, never nest deeper than
// maxDepth. On valid JSON that is its exact nesting depth; on invalid JSON the answer does not
// matter because json.Valid rejects it afterwards.
func jsonDepthWithin(s []byte, maxDepth int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > maxDepth {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}
