package yproto

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateUpdateYjsVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t).Updates {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			info, err := ValidateUpdate(v.Hex, Limits{})
			if err != nil {
				t.Fatalf("ValidateUpdate(%s): %v", v.Note, err)
			}
			if !slices.Equal(info.Structs, v.Structs) && !(len(info.Structs) == 0 && len(v.Structs) == 0) {
				t.Errorf("Structs = %v, Yjs parseUpdateMeta says %v", info.Structs, v.Structs)
			}
			if v.DeleteCount != nil {
				if len(info.Deletes) != *v.DeleteCount {
					t.Errorf("%d deletes, Yjs decodeUpdate says %d", len(info.Deletes), *v.DeleteCount)
				}
			} else if !slices.Equal(info.Deletes, v.Deletes) && !(len(info.Deletes) == 0 && len(v.Deletes) == 0) {
				t.Errorf("Deletes = %v, Yjs decodeUpdate says %v", info.Deletes, v.Deletes)
			}
			if info.HasSkips != v.HasSkips {
				t.Errorf("HasSkips = %v, want %v", info.HasSkips, v.HasSkips)
			}
			if IsEmptyUpdate(v.Hex) && (len(info.Structs) > 0 || len(info.Deletes) > 0) {
				t.Errorf("IsEmptyUpdate but UpdateInfo not empty: %+v", info)
			}
		})
	}
}

// TestVectorsCoverEveryKind makes sure that the real vectors exercise every struct kind,
// content kind, type ref and Any tag that the validator accepts.
func TestVectorsCoverEveryKind(t *testing.T) {
	t.Parallel()
	want := []string{
		"struct:GC", "struct:Skip",
		"content:Deleted", "content:JSON", "content:Binary", "content:String", "content:Embed",
		"content:Format", "content:Type", "content:Any", "content:Doc",
		"type:Array", "type:Map", "type:Text", "type:XmlElement", "type:XmlFragment", "type:XmlHook", "type:XmlText",
		"any:undefined", "any:null", "any:varInt", "any:float32", "any:float64", "any:bigint64",
		"any:false", "any:true", "any:string", "any:object", "any:array", "any:Uint8Array",
	}
	seen := map[string]bool{}
	for _, v := range loadVectors(t).Updates {
		for _, k := range v.Kinds {
			seen[k] = true
		}
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("no vector contains %s", k)
		}
	}
}

func TestIsEmptyUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []byte
		want bool
	}{
		{[]byte{0, 0}, true},
		{nil, false},
		{[]byte{0}, false},
		{[]byte{0, 0, 0}, false},
		{[]byte{0x80, 0, 0}, false}, // the same value, but not the bytes Yjs writes
		{[]byte{0, 1, 1, 0}, false},
	} {
		if got := IsEmptyUpdate(tc.in); got != tc.want {
			t.Errorf("IsEmptyUpdate(%x) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestValidateUpdateTruncated cuts every real update at every byte offset (large ones at a
// sample of offsets): every prefix must fail, and fail as truncated.
func TestValidateUpdateTruncated(t *testing.T) {
	t.Parallel()
	for _, v := range smallUpdates(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			stride := 1
			if len(v.Hex) > 4096 {
				stride = len(v.Hex)/2000 + 1
			}
			for k := 0; k < len(v.Hex); k += stride {
				checkTruncated(t, v.Hex, k)
			}
			checkTruncated(t, v.Hex, len(v.Hex)-1)
		})
	}
}

func checkTruncated(t *testing.T, u []byte, k int) {
	t.Helper()
	_, err := ValidateUpdate(u[:k], Limits{})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("prefix of %d of %d bytes: err = %v, want ErrTruncated", k, len(u), err)
	}
}

func TestValidateUpdateTrailingGarbage(t *testing.T) {
	t.Parallel()
	for _, v := range smallUpdates(t) {
		for _, junk := range [][]byte{{0}, {0xff}, {0, 0}} {
			u := append(slices.Clip(v.Hex), junk...)
			if _, err := ValidateUpdate(u, Limits{}); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s + %x: err = %v, want ErrMalformed", v.Name, junk, err)
			}
		}
	}
}

func TestValidateUpdateHostile(t *testing.T) {
	t.Parallel()
	const (
		p40 = uint64(1) << 40
		p53 = uint64(1) << 53
		p62 = uint64(1) << 62
		p63 = uint64(1) << 63
	)
	deepAny := item(refAny).u(1).b(nested([]byte{anyArray, 1}, 1_000_000, []byte{anyNull})...).end()
	deepObject := item(refAny).u(1).b(nested([]byte{anyObject, 1, 1, 'k'}, 1_000_000, []byte{anyNull})...).end()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty input", nil, ErrTruncated},
		{"only the struct count", enc{}.u(0), ErrTruncated},
		{"numClients 2^40", enc{}.u(p40), ErrTruncated},
		{"numClients 2^62", enc{}.u(p62, 0, 0, 0, 0, 0), ErrTruncated},
		{"numClients overflows 64 bits", enc{}.b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0), ErrOutOfRange},
		{"numClients 11-byte varUint", enc{}.b(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0), ErrOutOfRange},
		{"numStructs 2^40", enc{}.u(1, p40, 1, 0).b(refGC).u(1).end(), ErrTruncated},
		{"numStructs 2^62", enc{}.u(1, p62, 1, 0).b(refGC).u(1).end(), ErrTruncated},
		{"client section without structs", enc{}.u(1, 0, 1, 0, 0, 0).end(), ErrMalformed},
		{"client id 2^63", enc{}.u(1, 1, p63, 0).b(refGC).u(1).end(), ErrOutOfRange},
		{"client id 2^53", enc{}.u(1, 1, p53, 0).b(refGC).u(1).end(), ErrOutOfRange},
		{"client id 2^64-1", enc{}.u(1, 1, ^uint64(0), 0).b(refGC).u(1).end(), ErrOutOfRange},
		{"clock 2^53", enc{}.u(1, 1, 1, p53).b(refGC).u(1).end(), ErrOutOfRange},
		{"clock+len reaches 2^53", enc{}.u(1, 1, 1, p53-2).b(refString).u(1).s("t").s("ab").end(), ErrOutOfRange},
		{"GC length 2^53", enc{}.u(1, 1, 1, 0).b(refGC).u(p53).end(), ErrOutOfRange},
		{"origin client 2^63", enc{}.u(1, 1, 1, 0).b(refDeleted|infoHasOrigin).u(p63, 0, 1).end(), ErrOutOfRange},
		{"right origin clock 2^53", enc{}.u(1, 1, 1, 0).b(refDeleted|infoHasRight).u(1, p53, 1).end(), ErrOutOfRange},
		{"parent client 2^63", enc{}.u(1, 1, 1, 0).b(refDeleted).u(0, p63, 0, 1).end(), ErrOutOfRange},
		{"zero-length GC", enc{}.u(1, 1, 1, 0).b(refGC).u(0).end(), ErrMalformed},
		{"zero-length Skip", enc{}.u(1, 1, 1, 0).b(refSkip).u(0).end(), ErrMalformed},
		{"zero-length Deleted", item(refDeleted).u(0).end(), ErrMalformed},
		{"empty string content", item(refString).s("").end(), ErrMalformed},
		{"empty Any content", item(refAny).u(0).end(), ErrMalformed},
		{"empty JSON content", item(refJSON).u(0).end(), ErrMalformed},
		{"GC with flag bits", enc{}.u(1, 1, 1, 0).b(refGC | infoHasOrigin).u(1).end(), ErrMalformed},
		{"Skip with flag bits", enc{}.u(1, 1, 1, 0).b(refSkip | infoHasParentSub).u(1).end(), ErrMalformed},
		{"unknown content ref 11", enc{}.u(1, 1, 1, 0).b(11).u(1).s("t").u(1).end(), ErrMalformed},
		{"unknown content ref 31 with origin", enc{}.u(1, 1, 1, 0).b(31|infoHasOrigin).u(1, 0, 1).end(), ErrMalformed},
		{"unknown type ref 7", item(refType).u(7).end(), ErrMalformed},
		{"type ref 2^40", item(refType).u(p40).end(), ErrMalformed},
		{"parent info 2", enc{}.u(1, 1, 1, 0).b(refDeleted).u(2, 0, 1).end(), ErrMalformed},
		{"parent key length 2^40", enc{}.u(1, 1, 1, 0).b(refDeleted).u(1, p40).end(), ErrTruncated},
		{"parent key length 2^62", enc{}.u(1, 1, 1, 0).b(refDeleted).u(1, p62).end(), ErrTruncated},
		{"string length 2^40", item(refString).u(p40).b('x').end(), ErrTruncated},
		{"string length 2^62", item(refString).u(p62).b('x').end(), ErrTruncated},
		{"binary length 2^40", item(refBinary).u(p40).b(1, 2, 3).end(), ErrTruncated},
		{"binary length 2^62", item(refBinary).u(p62).b(1, 2, 3).end(), ErrTruncated},
		{"any count 2^40", item(refAny).u(p40).b(anyNull).end(), ErrTruncated},
		{"any count 2^62", item(refAny).u(p62).b(anyNull).end(), ErrTruncated},
		{"JSON count 2^40", item(refJSON).u(p40).s("1").end(), ErrTruncated},
		{"any array count 2^40", item(refAny).u(1).b(anyArray).u(p40).b(anyNull).end(), ErrTruncated},
		{"any object count 2^62", item(refAny).u(1).b(anyObject).u(p62).s("k").b(anyNull).end(), ErrTruncated},
		{"any string length 2^40", item(refAny).u(1).b(anyString).u(p40).end(), ErrTruncated},
		{"any Uint8Array length 2^62", item(refAny).u(1).b(anyUint8Array).u(p62).end(), ErrTruncated},
		{"any nested 10^6 arrays", deepAny, ErrTooDeep},
		{"any nested 10^6 objects", deepObject, ErrTooDeep},
		{"embed JSON nested 10^6", item(refEmbed).s(deepJSON(1_000_000)).end(), ErrTooDeep},
		{"format JSON nested 10^6 objects", item(refFormat).s("k").s(strings.Repeat(`{"a":`, 1_000_000) + "1" + strings.Repeat("}", 1_000_000)).end(), ErrTooDeep},
		{"unknown any tag 115", item(refAny).u(1).b(115).end(), ErrMalformed},
		{"unknown any tag 0", item(refAny).u(1).b(0).end(), ErrMalformed},
		{"unknown any tag 128", item(refAny).u(1).b(128).end(), ErrMalformed},
		{"any varInt beyond 2^53", item(refAny).u(1).b(anyVarInt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).end(), ErrOutOfRange},
		{"any varInt 9 bytes of zero continuation", item(refAny).u(1).b(anyVarInt, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0).end(), ErrOutOfRange},
		{"any float64 truncated", item(refAny).u(1).b(anyFloat64, 1, 2, 3), ErrTruncated},
		{"invalid UTF-8 string content", item(refString).u(2).b(0xc3, 0x28).end(), ErrMalformed},
		{"UTF-8 encoded surrogate", item(refString).u(3).b(0xed, 0xa0, 0x80).end(), ErrMalformed},
		{"invalid UTF-8 parent key", enc{}.u(1, 1, 1, 0).b(refDeleted).u(1, 1).b(0xff).u(1).end(), ErrMalformed},
		{"invalid UTF-8 parent sub", enc{}.u(1, 1, 1, 0).b(refDeleted | infoHasParentSub).u(1).s("t").u(1).b(0x80).u(1).end(), ErrMalformed},
		{"invalid UTF-8 any string", item(refAny).u(1).b(anyString).u(1).b(0xfe).end(), ErrMalformed},
		{"invalid UTF-8 any object key", item(refAny).u(1).b(anyObject).u(1, 1).b(0xc0).b(anyNull).end(), ErrMalformed},
		{"invalid UTF-8 XML element name", item(refType).u(typeXmlElement, 1).b(0xff).end(), ErrMalformed},
		{"invalid UTF-8 format key", item(refFormat).u(1).b(0xff).s("true").end(), ErrMalformed},
		{"invalid UTF-8 in JSON", item(refEmbed).u(3).b('"', 0xff, '"').end(), ErrMalformed},
		{"invalid JSON embed", item(refEmbed).s("{").end(), ErrMalformed},
		{"empty JSON embed", item(refEmbed).s("").end(), ErrMalformed},
		{"invalid JSON format value", item(refFormat).s("bold").s("yes").end(), ErrMalformed},
		{"JSON content not undefined", item(refJSON).u(1).s("undefinedx").end(), ErrMalformed},
		{"subdocument options not an object", item(refDoc).s("guid").b(anyNull).end(), ErrMalformed},
		{"subdocument options missing", item(refDoc).s("guid"), ErrTruncated},
		{"duplicate client sections", enc{}.u(2, 1, 5, 0).b(refGC).u(1).u(1, 5, 1).b(refGC).u(1).end(), ErrMalformed},
		{"delete set numClients 2^40", enc{}.u(0, p40, 1, 1, 0, 1), ErrTruncated},
		{"delete set numDeletes 2^40", enc{}.u(0, 1, 1, p40, 0, 1), ErrTruncated},
		{"delete set numDeletes 2^62", enc{}.u(0, 1, 1, p62, 0, 1), ErrTruncated},
		{"delete set client 2^63", enc{}.u(0, 1, p63, 1, 0, 1), ErrOutOfRange},
		{"delete length 0", enc{}.u(0, 1, 1, 1, 5, 0), ErrMalformed},
		{"delete clock+len reaches 2^53", enc{}.u(0, 1, 1, 1, p53-5, 5), ErrOutOfRange},
		{"delete set missing", enc{}.u(1, 1, 1, 0).b(refGC).u(1), ErrTruncated},
		{"trailing byte after delete set", enc{}.u(0, 0, 0), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			info, err := ValidateUpdate(tc.in, Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if info.Structs != nil || info.Deletes != nil {
				t.Errorf("UpdateInfo not zero on error: %+v", info)
			}
			// Nothing here may loop over a claimed count or recurse into claimed depth.
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestValidateUpdateAccepts covers hand-made updates at the edges of what Yjs may write.
func TestValidateUpdateAccepts(t *testing.T) {
	t.Parallel()
	const p53 = uint64(1) << 53
	for _, tc := range []struct {
		name    string
		in      []byte
		structs []ClientRange
		deletes []DeleteRange
		skips   bool
	}{
		{"largest safe client, clock and length",
			enc{}.u(1, 1, p53-1, p53-3).b(refGC).u(2).end(),
			[]ClientRange{{p53 - 1, p53 - 3, p53 - 1}}, nil, false},
		{"string length in UTF-16 code units",
			item(refString).s("😀é中a").end(), // 2 + 1 + 1 + 1
			[]ClientRange{{1, 0, 5}}, nil, false},
		{"GC and Skip lengths of 2^40 allocate nothing",
			enc{}.u(1, 2, 1, 0).b(refGC).u(1 << 40).b(refSkip).u(1 << 40).end(),
			[]ClientRange{{1, 0, 1 << 41}}, nil, true},
		{"parentSub flag next to an origin is ignored, as Yjs does",
			enc{}.u(1, 1, 1, 3).b(refAny|infoHasOrigin|infoHasParentSub).u(1, 2, 1).b(anyTrue).end(),
			[]ClientRange{{1, 3, 4}}, nil, false},
		{"parent by ID with parentSub",
			enc{}.u(1, 1, 1, 3).b(refAny|infoHasParentSub).u(0, 9, 4).s("key").u(1).b(anyFalse).end(),
			[]ClientRange{{1, 3, 4}}, nil, false},
		{"delete set client with no deletes, as Yjs reads it",
			enc{}.u(0, 1, 7, 0),
			nil, nil, false},
		{"non-minimal varUint, as lib0 reads it",
			enc{}.b(0x80, 0x00, 0x00),
			nil, nil, false},
		{"JSON content with undefined and whitespace",
			item(refJSON).u(3).s("undefined").s(" { \"a\" : [ 1 , 2 ] } ").s("null").end(),
			[]ClientRange{{1, 0, 3}}, nil, false},
		{"any varInt at the safe limit",
			item(refAny).u(1).b(anyVarInt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f).end(), // 6+6×7+5 = 53 one bits
			[]ClientRange{{1, 0, 1}}, nil, false},
		{"XML hook and element names",
			enc{}.u(1, 2, 1, 0).b(refType).u(1).s("a").u(typeXmlHook).s("h").b(refType).u(1).s("b").u(typeXmlElement).s("p").end(),
			[]ClientRange{{1, 0, 2}}, nil, false},
		{"deletes of several clients",
			enc{}.u(0, 2, 3, 2, 0, 1, 5, 2, 4, 1, 1, 10),
			nil, []DeleteRange{{3, 0, 1}, {3, 5, 2}, {4, 1, 10}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info, err := ValidateUpdate(tc.in, Limits{})
			if err != nil {
				t.Fatalf("ValidateUpdate: %v", err)
			}
			if !slices.Equal(info.Structs, tc.structs) {
				t.Errorf("Structs = %v, want %v", info.Structs, tc.structs)
			}
			if !slices.Equal(info.Deletes, tc.deletes) {
				t.Errorf("Deletes = %v, want %v", info.Deletes, tc.deletes)
			}
			if info.HasSkips != tc.skips {
				t.Errorf("HasSkips = %v, want %v", info.HasSkips, tc.skips)
			}
		})
	}
}

func TestValidateUpdateMaxDepth(t *testing.T) {
	t.Parallel()
	anyOfDepth := func(d int) []byte {
		return item(refAny).u(1).b(nested([]byte{anyArray, 1}, d, []byte{anyNull})...).end()
	}
	emptyAnyOfDepth := func(d int) []byte { // innermost container is empty
		return item(refAny).u(1).b(nested([]byte{anyObject, 1, 1, 'k'}, d-1, []byte{anyArray, 0})...).end()
	}
	embedOfDepth := func(d int) []byte { return item(refEmbed).s(deepJSON(d)).end() }
	for _, tc := range []struct {
		name  string
		build func(int) []byte
	}{
		{"any", anyOfDepth},
		{"any ending in an empty container", emptyAnyOfDepth},
		{"json", embedOfDepth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, lim := range []Limits{{}, {MaxDepth: -1}, {MaxDepth: 1}, {MaxDepth: 5}, {MaxDepth: 300}} {
				max := lim.maxDepth()
				if _, err := ValidateUpdate(tc.build(max), lim); err != nil {
					t.Errorf("depth %d with limit %d: %v", max, max, err)
				}
				if _, err := ValidateUpdate(tc.build(max+1), lim); !errors.Is(err, ErrTooDeep) {
					t.Errorf("depth %d with limit %d: err = %v, want ErrTooDeep", max+1, max, err)
				}
			}
		})
	}
	if (Limits{}).maxDepth() != 128 {
		t.Errorf("default MaxDepth = %d, want 128", (Limits{}).maxDepth())
	}
}

// TestValidateUpdateManyClients exercises the sorted duplicate check (more than 16 sections).
func TestValidateUpdateManyClients(t *testing.T) {
	t.Parallel()
	build := func(clients []uint64) []byte {
		e := enc{}.u(uint64(len(clients)))
		for _, c := range clients {
			e = e.u(1, c, 0).b(refGC).u(1)
		}
		return e.end()
	}
	var clients []uint64
	for i := range 40 {
		clients = append(clients, uint64(1000-i*7))
	}
	info, err := ValidateUpdate(build(clients), Limits{})
	if err != nil || len(info.Structs) != 40 {
		t.Fatalf("40 distinct clients: %d ranges, err %v", len(info.Structs), err)
	}
	clients[33] = clients[2]
	if _, err := ValidateUpdate(build(clients), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate among 40 clients: err = %v, want ErrMalformed", err)
	}
}
