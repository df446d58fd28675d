package yproto

import "testing"

func benchmarkValidateUpdate(b *testing.B, name string) {
	u := vectorByName(b, name)
	b.ReportAllocs()
	b.SetBytes(int64(len(u)))
	for b.Loop() {
		if _, err := ValidateUpdate(u, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateUpdateKeystroke validates the update of one typed character: the hot path
// of a room, once per keystroke of every client.
func BenchmarkValidateUpdateKeystroke(b *testing.B) {
	benchmarkValidateUpdate(b, "text_keystroke_second")
}

// BenchmarkValidateUpdateLarge validates a ~1 MB update merged from a long three-client
// session, like a sync step 2 that loads a big document.
func BenchmarkValidateUpdateLarge(b *testing.B) {
	benchmarkValidateUpdate(b, "large_merged")
}

// BenchmarkValidateUpdateMapAny validates a map holding every kind of Any value.
func BenchmarkValidateUpdateMapAny(b *testing.B) {
	benchmarkValidateUpdate(b, "map_any_state")
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := AppendSyncUpdate(nil, vectorByName(b, "text_keystroke_second"))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := DecodeMessage(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAwarenessUpdate(b *testing.B) {
	u := loadVectors(b).Awareness[0].Hex
	b.ReportAllocs()
	b.SetBytes(int64(len(u)))
	for b.Loop() {
		if _, err := DecodeAwarenessUpdate(u, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateStateVector(b *testing.B) {
	sv := loadVectors(b).StateVectors[2].Hex
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValidateStateVector(sv); err != nil {
			b.Fatal(err)
		}
	}
}
