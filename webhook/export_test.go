package webhook

// Test access to unexported state, kept out of the production files.

// queueLen returns how many deliveries wait in webhook i's queue, and its
// capacity.
func (d *Dispatcher) queueLen(i int) (n, capacity int) {
	return len(d.hooks[i].queue), cap(d.hooks[i].queue)
}

// openWindows returns how many debounce windows are open.
func (d *Dispatcher) openWindows() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, g := range d.groups {
		n += len(g.windows)
	}
	return n
}
