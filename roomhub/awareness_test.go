package roomhub

import (
	"testing"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// sendAwareness sends one awareness update with the given entries.
func (c *client) sendAwareness(entries ...yproto.AwarenessEntry) {
	c.t.Helper()
	c.send(yproto.AppendAwareness(nil, yproto.AppendAwarenessUpdate(nil, entries)))
}

// nextAwareness returns the entries of the next awareness message.
func (c *client) nextAwareness() []yproto.AwarenessEntry {
	c.t.Helper()
	m := c.next(isAwareness)
	entries, err := yproto.DecodeAwarenessUpdate(m.Payload, 1000)
	if err != nil {
		c.t.Fatal(err)
	}
	return entries
}

// roomAwareness asks the room for every current awareness state, by
// client ID.
func (c *client) roomAwareness() map[uint64]string {
	c.t.Helper()
	c.send(yproto.AppendQueryAwareness(nil))
	got := make(map[uint64]string)
	// An empty room answers nothing: a sync step 1 after the query shows
	// that the query was handled.
	c.send(yproto.AppendSyncStep1(nil, []byte{0}))
	for {
		m := c.next(func(m yproto.Message) bool {
			return isAwareness(m) || m.Type == yproto.MessageSync && m.Sync == yproto.SyncStep2
		})
		if !isAwareness(m) {
			return got
		}
		entries, err := yproto.DecodeAwarenessUpdate(m.Payload, 1000)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, e := range entries {
			got[e.ClientID] = string(e.State)
		}
	}
}

func entry(id, clock uint64, state string) yproto.AwarenessEntry {
	return yproto.AwarenessEntry{ClientID: id, Clock: clock, State: []byte(state)}
}

// A state that parses as JSON null removes the entry, whitespace or not,
// as Yjs's JSON.parse(state) === null.
func TestAwarenessNullWithWhitespaceRemoves(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	url := testServer(t, hub)
	a := dial(t, url+"/aw")
	a.next(isSync(yproto.SyncStep1))
	for i, null := range []string{" null", "null\n", "\t null \r\n"} {
		id := uint64(10 + i)
		a.sendAwareness(entry(id, 1, `{"user":"a"}`))
		a.nextAwareness()
		a.sendAwareness(entry(id, 2, null))
		a.nextAwareness()
	}
	b := dial(t, url+"/aw")
	b.next(isSync(yproto.SyncStep1))
	if got := b.roomAwareness(); len(got) != 0 {
		t.Fatalf("removed states are still in the room: %v", got)
	}
}

// A read-only connection cannot change or remove the presence of a client
// ID that another connection introduced, even with a higher clock; its own
// entries still work, and what it may not set is not relayed.
func TestReadOnlyCannotTouchOthersAwareness(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	url := testServer(t, hub)
	editor := dial(t, url+"/p")
	editor.next(isSync(yproto.SyncStep1))
	editor.sendAwareness(entry(7, 1, `{"name":"editor"}`))
	editor.nextAwareness()

	viewer := dial(t, url+"/p?ro=1")
	viewer.next(isSync(yproto.SyncStep1))
	viewer.nextAwareness() // the greeting's
	viewer.sendAwareness(entry(7, 5, `{"name":"forged"}`), entry(8, 1, `{"name":"viewer"}`))
	relayed := editor.nextAwareness()
	if len(relayed) != 1 || relayed[0].ClientID != 8 {
		t.Fatalf("the editor got %+v, want only the viewer's own entry 8", relayed)
	}
	viewer.sendAwareness(entry(7, 9, "null"))
	viewer.sendAwareness(entry(7, 1, "null")) // an equal-clock removal
	want := map[uint64]string{7: `{"name":"editor"}`, 8: `{"name":"viewer"}`}
	check := func(who string) {
		t.Helper()
		other := dial(t, url+"/p")
		other.next(isSync(yproto.SyncStep1))
		got := other.roomAwareness()
		if len(got) != len(want) || got[7] != want[7] || got[8] != want[8] {
			t.Fatalf("%s: room awareness %v, want %v", who, got, want)
		}
	}
	check("after the viewer's attempts")
	viewer.ws.CloseNow()
	<-viewer.done
	delete(want, 8)
	// The viewer's leave removes its own entry only.
	for _, e := range editor.nextAwareness() {
		if e.ClientID != 8 || !e.Removed() {
			t.Fatalf("the viewer's leave removed %+v", e)
		}
	}
	check("after the viewer left")
}
