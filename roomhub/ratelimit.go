package roomhub

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter holds a connection to RateLimit: token buckets for messages
// and bytes, each with a burst of one second's worth. It is used by the
// connection's read loop only. A nil rateLimiter allows everything.
type rateLimiter struct {
	messages *rate.Limiter
	bytes    *rate.Limiter
}

func newRateLimiter(l RateLimit) *rateLimiter {
	if l.MessagesPerSecond <= 0 && l.BytesPerSecond <= 0 {
		return nil
	}
	rl := &rateLimiter{}
	if l.MessagesPerSecond > 0 {
		rl.messages = rate.NewLimiter(rate.Limit(l.MessagesPerSecond), burst(l.MessagesPerSecond))
	}
	if l.BytesPerSecond > 0 {
		rl.bytes = rate.NewLimiter(rate.Limit(l.BytesPerSecond), burst(l.BytesPerSecond))
	}
	return rl
}

func burst(perSecond float64) int {
	return int(math.Max(1, math.Min(perSecond, math.MaxInt32)))
}

// allow takes one message of n bytes from the buckets. A message larger
// than the byte burst can never pass, so it is measured against the burst
// alone: max_message_size, not the rate limit, bounds single messages.
func (rl *rateLimiter) allow(n int) bool {
	if rl == nil {
		return true
	}
	now := time.Now()
	if rl.messages != nil && !rl.messages.AllowN(now, 1) {
		return false
	}
	if rl.bytes != nil && !rl.bytes.AllowN(now, min(n, rl.bytes.Burst())) {
		return false
	}
	return true
}
