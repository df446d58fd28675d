package webhook_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/caddy-wiredb/wiredb/webhook"
)

func ExampleSign() {
	body := []byte(`{"event":"room.loaded","room":"notes/1","time":"2030-01-02T03:04:05.000Z"}`)
	// The same as: printf %s "$body" | openssl dgst -sha256 -hmac whsec-test
	fmt.Println(webhook.Sign("whsec-test", body))
	// Output: sha256=ea25fad47c431bebe27a2780ca4ba54a3896c9f42f0fd6bf2fa78d7738d93122
}

// A receiver checks the signature over the raw body before it decodes it.
func ExampleVerify() {
	const secret = "whsec-test"
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !webhook.Verify(secret, body, r.Header.Get("X-WireDB-Signature")) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// Decode body, act on r.Header.Get("X-WireDB-Event") ...
		w.WriteHeader(http.StatusNoContent)
	}
	_ = handler
}
