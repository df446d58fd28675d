package yproto

import "strings"

// enc builds hand-made inputs for hostile test cases.
type enc []byte

// u appends varUints.
func (e enc) u(vs ...uint64) enc {
	for _, v := range vs {
		e = AppendVarUint(e, v)
	}
	return e
}

// b appends raw bytes.
func (e enc) b(bs ...byte) enc { return append(e, bs...) }

// s appends a varString.
func (e enc) s(s string) enc { return AppendVarString(e, s) }

// item starts a one-client, one-struct update whose item has the given content ref and
// the root type "t" as parent; the caller appends the content and then end().
func item(ref byte) enc {
	return enc{}.u(1, 1, 1, 0).b(ref).u(1).s("t")
}

// end appends an empty delete set.
func (e enc) end() enc { return e.u(0) }

// nested returns n repetitions of open followed by leaf.
func nested(open []byte, n int, leaf []byte) []byte {
	out := make([]byte, 0, len(open)*n+len(leaf))
	for range n {
		out = append(out, open...)
	}
	return append(out, leaf...)
}

func deepJSON(n int) string {
	return strings.Repeat("[", n) + strings.Repeat("]", n)
}
