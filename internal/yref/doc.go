// Package yref is github.com/skyterra/y-crdt as the independent reference that tests
// compare this module's own merge and diff with (yproto.MergeUpdates, yproto.DiffUpdate),
// and that tests of other packages use to merge what a room holds or a client was sent.
//
// Only tests import it (TestOnlyTestsImport holds every package to that): the server merges
// and diffs with yproto. Like internal/ysafe it hands y-crdt only bytes that passed
// yproto.ValidateUpdate and runs every call under recover (docs/y-crdt.md, "Rules for
// calling it"); a panic is returned as a *ysafe.PanicError. Its functions share no state
// and are safe for concurrent use.
package yref
