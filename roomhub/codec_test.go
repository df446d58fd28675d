package roomhub

import (
	"bytes"
	"testing"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// otherCodec stands for a second protocol: y-websocket framing behind a
// distinct codec value.
type otherCodec struct {
	Codec
	id int
}

// A relayed message is encoded once per codec, and the sender's own
// message is relayed as it came to connections of its codec.
func TestOutboundEncodesOncePerCodec(t *testing.T) {
	update := []byte{0, 0}
	frame := yproto.AppendSyncUpdate(nil, update)
	m := newOutbound(OpUpdate, update, YWebsocket, frame)
	if got := m.frameFor(YWebsocket); &got[0] != &frame[0] {
		t.Fatal("the sender's codec got a new encoding instead of the message as it came")
	}
	codecs := []Codec{&otherCodec{YWebsocket, 1}, &otherCodec{YWebsocket, 2}, &otherCodec{YWebsocket, 3}}
	first := make([][]byte, len(codecs))
	for i, c := range codecs {
		first[i] = m.frameFor(c)
		if !bytes.Equal(first[i], frame) {
			t.Fatalf("codec %d: % x, want % x", i, first[i], frame)
		}
	}
	for i, c := range codecs {
		if again := m.frameFor(c); &again[0] != &first[i][0] {
			t.Fatalf("codec %d was encoded twice", i)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { m.frameFor(YWebsocket) }); allocs != 0 {
		t.Fatalf("frameFor allocates %v times for a codec it has", allocs)
	}
}
