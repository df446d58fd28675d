package wsframe

// Limit returns the limit given to NewGuard.
func (g *Guard) Limit() int64 { return g.limit }

// TooBig returns a channel that is closed when a data message announces more
// than the limit.
func (g *Guard) TooBig() <-chan struct{} { return g.tooBig }
