package caddymodule

import "testing"

func TestWantsJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                         false,
		"*/*":                      false,
		"application/json":         true,
		"application/octet-stream": false,
		"application/json;q=0.1, application/octet-stream": false,
		"application/octet-stream;q=0.5, application/json": true,
		"application/json, application/octet-stream":       true,
		"text/html, application/json;q=0.9":                true,
		"application/json;q=0":                             false,
	} {
		if got := wantsJSON(accept); got != want {
			t.Errorf("wantsJSON(%q) = %v, want %v", accept, got, want)
		}
	}
}
