package yproto

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf16"
)

func TestVarUintRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v   uint64
		enc []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{300, []byte{0xac, 0x02}},
		{16383, []byte{0xff, 0x7f}},
		{16384, []byte{0x80, 0x80, 0x01}},
		{1<<32 + 5, []byte{0x85, 0x80, 0x80, 0x80, 0x10}},
		{1<<53 - 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{1 << 63, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{^uint64(0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		if got := AppendVarUint(nil, tc.v); !bytes.Equal(got, tc.enc) {
			t.Errorf("AppendVarUint(%d) = %x, want %x", tc.v, got, tc.enc)
		}
		v, n, err := ReadVarUint(append(tc.enc, 0xaa)) // a following byte is not read
		if err != nil || v != tc.v || n != len(tc.enc) {
			t.Errorf("ReadVarUint(%x) = %d, %d, %v; want %d, %d", tc.enc, v, n, err, tc.v, len(tc.enc))
		}
	}
}

func TestReadVarUintErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"no final byte", []byte{0x80}, ErrTruncated},
		{"nine continuation bytes", bytes.Repeat([]byte{0xff}, 9), ErrTruncated},
		{"65 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, ErrOutOfRange},
		{"eleven bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, ErrOutOfRange},
		{"endless", bytes.Repeat([]byte{0x80}, 1<<20), ErrOutOfRange},
	} {
		v, n, err := ReadVarUint(tc.in)
		if !errors.Is(err, tc.want) || v != 0 || n != 0 {
			t.Errorf("%s: ReadVarUint = %d, %d, %v; want error %v", tc.name, v, n, err, tc.want)
		}
	}
}

func TestReadVarUintNonMinimal(t *testing.T) {
	t.Parallel()
	// lib0 reads these, so a peer may send them; AppendVarUint never writes them.
	v, n, err := ReadVarUint([]byte{0x81, 0x80, 0x80, 0x00})
	if err != nil || v != 1 || n != 4 {
		t.Fatalf("ReadVarUint = %d, %d, %v; want 1, 4", v, n, err)
	}
}

func TestAppendVarBytesAndString(t *testing.T) {
	t.Parallel()
	if got := AppendVarBytes([]byte{9}, []byte{1, 2}); !bytes.Equal(got, []byte{9, 2, 1, 2}) {
		t.Errorf("AppendVarBytes = %x", got)
	}
	if got := AppendVarBytes(nil, nil); !bytes.Equal(got, []byte{0}) {
		t.Errorf("AppendVarBytes(nil) = %x", got)
	}
	long := bytes.Repeat([]byte{'x'}, 200)
	if got := AppendVarString(nil, string(long)); !bytes.Equal(got, append([]byte{0xc8, 0x01}, long...)) {
		t.Errorf("AppendVarString(200 bytes) = %x...", got[:4])
	}
	if got := AppendVarString(nil, "ø"); !bytes.Equal(got, []byte{2, 0xc3, 0xb8}) {
		t.Errorf("AppendVarString(ø) = %x", got)
	}
}

func TestUTF16Len(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "a", "abcdefgh", "abcdefghi", "é", "中文", "😀", "a😀b", "👩‍👩‍👧", "🇫🇷 ñé中文 𝄞 \uFFFD",
		"0123456😀0123456😀0123456é", "\U0010FFFF\U00010000\u0800\u07FF\u0080\u007F",
	} {
		want := uint64(len(utf16.Encode([]rune(s))))
		if got := utf16Len([]byte(s)); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}
