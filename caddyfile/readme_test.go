package caddyfile

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The Caddyfiles the README and examples/ show must work: each complete one
// (not the syntax summary, whose arguments are <placeholders>) adapts, and
// caddy.Validate provisions it (modules loaded, keys read, settings
// checked) without starting it.
func TestDocumentedCaddyfilesAreValid(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	example, err := os.ReadFile("../examples/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{string(example)}
	for _, b := range blocks {
		if !strings.Contains(b[1], "<") {
			docs = append(docs, b[1])
		}
	}
	if len(docs) < 3 {
		t.Fatalf("found %d Caddyfiles to check; the README lost its examples?", len(docs))
	}
	t.Setenv("WIREDB_JWT_SECRET", strings.Repeat("s", 32))
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1/0") // cluster examples: nothing listens, nothing needs to
	t.Setenv("WIREDB_WEBHOOK_SECRET", "a webhook secret")
	for i, doc := range docs {
		// Keep the test's files out of the documented paths.
		doc = regexp.MustCompile(`(data_dir\s+)\S+`).ReplaceAllString(doc, "${1}"+filepath.Join(t.TempDir(), "data"))
		cfg, warnings, err := caddyconfigAdapt(doc)
		if err != nil {
			t.Fatalf("Caddyfile %d does not adapt: %v\n%s", i, err, doc)
		}
		for _, w := range warnings {
			t.Logf("Caddyfile %d: warning: %s", i, w.Message)
		}
		var c caddy.Config
		if err := caddy.StrictUnmarshalJSON(cfg, &c); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&c); err != nil {
			t.Fatalf("Caddyfile %d is not valid: %v\n%s", i, err, doc)
		}
	}
}
