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

// In cluster mode a reload keeps the hub and its Redis client; settings
// that would need another client are refused with a reason, and a second
// data directory cannot share the client's keys.
func TestClusterSurvivesReloadAndRefusesChanges(t *testing.T) {
	dir := t.TempDir()
	// No Redis needs to listen: the client connects in the background.
	cl := &Cluster{Backend: "redis", URL: "redis://127.0.0.1:1/0", InstanceID: "test-1"}
	first, cancel1 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel1()
	a := &Handler{DataDir: dir, Cluster: cl}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Provision(first); err != nil {
		t.Fatal(err)
	}
	defer a.Cleanup()
	if err := a.hub.Healthy(); err == nil {
		t.Fatal("a hub whose Redis does not answer says it is healthy")
	}

	second, cancel2 := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel2()
	same := *cl
	reloaded := &Handler{DataDir: dir, Cluster: &same, CompactRecords: 5}
	if err := reloaded.Provision(second); err != nil {
		t.Fatal(err)
	}
	defer reloaded.Cleanup()
	if reloaded.hub != a.hub {
		t.Fatal("a reload with the same cluster got a new hub")
	}
	changed := *cl
	changed.URL = "redis://127.0.0.1:2/0"
	moved := &Handler{DataDir: dir, Cluster: &changed}
	if err := moved.Provision(second); err == nil || !strings.Contains(err.Error(), "restart Caddy") {
		t.Fatalf("a reload that changes the Redis URL: %v", err)
	}
	moved.Cleanup()
	single := &Handler{DataDir: dir}
	if err := single.Provision(second); err == nil || !strings.Contains(err.Error(), "cluster settings differ") {
		t.Fatalf("a reload that drops cluster mode: %v", err)
	}
	single.Cleanup()

	other := &Handler{DataDir: t.TempDir(), Cluster: &same}
	if err := other.Provision(second); err == nil || !strings.Contains(err.Error(), "key_prefix") {
		t.Fatalf("a second data directory on the same Redis keys: %v", err)
	}
	other.Cleanup()

	for _, bad := range []*Cluster{{Backend: "nats", URL: "x"}, {Backend: "redis"}} {
		if err := (&Handler{Cluster: bad}).Validate(); err == nil {
			t.Fatalf("cluster %+v validated", bad)
		}
	}
}
