package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Handlers of one config that share a data directory share its hub, so they
// must agree on its settings; a later config (a reload) replaces them on the
// running hub.
func TestHubSettingsPerConfigLoad(t *testing.T) {
	dir := t.TempDir()
	first, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()

	a := &Handler{DataDir: dir, CompactRecords: 10}
	if err := a.Provision(first); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	readOnly := &Handler{DataDir: dir, CompactRecords: 10, ReadOnly: true, MaxMessageSize: 1 << 10}
	if err := readOnly.Provision(first); err != nil {
		t.Fatalf("a read-only route with the same hub settings: %v", err)
	}
	defer readOnly.Cleanup()
	if readOnly.hub != a.hub {
		t.Fatal("two handlers of one data directory got different hubs")
	}
	conflicting := &Handler{DataDir: dir, CompactRecords: 20}
	err := conflicting.Provision(first)
	if err == nil || !strings.Contains(err.Error(), "must have the same") {
		t.Fatalf("conflicting settings in one config: err = %v", err)
	}
	conflicting.Cleanup() // as Caddy does after a failed Provision

	// A reload: the new config's handler reconfigures the running hub.
	second, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	reloaded := &Handler{DataDir: dir, CompactRecords: 20, Fsync: "always"}
	if err := reloaded.Provision(second); err != nil {
		t.Fatal(err)
	}
	defer reloaded.Cleanup()
	if reloaded.hub != a.hub {
		t.Fatal("the reloaded handler got a new hub: rooms and connections would not carry over")
	}
	if o := a.hub.Options(); o.CompactRecords != 20 || o.Fsync.Mode.String() != "always" {
		t.Fatalf("after the reload the hub has compact %d, fsync %s", o.CompactRecords, o.Fsync.Mode)
	}
}
