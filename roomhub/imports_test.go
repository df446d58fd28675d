package roomhub

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The core stays free of its adapters: roomhub sees a socket only as a
// Transport, its shared log (cluster mode) only as a Cluster, and neither
// roomhub, storage nor cluster knows about Caddy.
func TestCoreImportsNoAdapter(t *testing.T) {
	forbidden := []string{
		"github.com/caddyserver/",
		"github.com/coder/websocket",
		"github.com/caddy-wiredb/wiredb/internal/wsframe",
		"github.com/caddy-wiredb/wiredb/internal/wstransport",
		"github.com/caddy-wiredb/wiredb/caddymodule",
	}
	// The shared log's backend is an adapter too: roomhub and storage see
	// it only as roomhub.Cluster.
	backend := []string{"github.com/redis/", "github.com/caddy-wiredb/wiredb/cluster"}
	for dir, forbidden := range map[string][]string{
		".":          append(forbidden, backend...),
		"../storage": append(forbidden, backend...),
		"../cluster": forbidden,
	} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		fset := token.NewFileSet()
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if strings.HasPrefix(p, bad) {
						t.Errorf("%s imports %s", path, p)
					}
				}
			}
		}
	}
}
