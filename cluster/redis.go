// Package cluster implements roomhub's shared log on Redis: a stream per
// room holds its updates in order, a channel per room fans them out to
// every server, and WireDB checkpoint files in a shared directory hold what
// the stream was trimmed of. docs/cluster.md explains the design.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/roomhub"
)

// Defaults of Options.
const (
	DefaultKeyPrefix         = "wiredb"
	DefaultTimeout           = 5 * time.Second
	DefaultSubscriptionGrace = 5 * time.Second
	DefaultLease             = 30 * time.Second
	// DefaultCheckpointGrace is how long a superseded checkpoint file is
	// kept: a server that read the room's metadata just before may still
	// be opening it.
	DefaultCheckpointGrace = time.Minute
)

// pingInterval is how often the client checks Redis (and measures its
// round trip); silenceLimit is how long the subscription may hear nothing,
// pings included, before it is given up and made anew.
const (
	pingInterval = time.Second
	silenceLimit = 3 * time.Second
)

// Options configure a Redis cluster client.
type Options struct {
	// URL is a redis:// or rediss:// (TLS) URL; user and password go in it.
	URL string
	// KeyPrefix starts every key and channel name. Default "wiredb".
	KeyPrefix string
	// Instance names this server in the cluster; it must be unique
	// among the servers. Default: host name, process id and random digits.
	Instance string
	// Timeout bounds one Redis operation. Default 5s.
	Timeout time.Duration
	// SubscriptionGrace is how long the subscription may be lost before
	// the rooms' clients are closed with 1013 to resync. Default 5s.
	SubscriptionGrace time.Duration
	// Lease is how long a server keeps the right to checkpoint a room
	// after it last did. Default 30s.
	Lease time.Duration
	// CheckpointGrace is how long superseded checkpoint files are kept.
	// Default 1m.
	CheckpointGrace time.Duration

	Logger  *zap.Logger
	Metrics Metrics
}

// Metrics receives the cluster's counts and timings.
type Metrics interface {
	RoundTrip(d time.Duration)
	Appended(updates int)
	RelaysReceived(updates int)
	GapRepaired(batches int)
	Checkpointed()
	LeaseChanged()
	RedisError(op string)
}

type nopMetrics struct{}

func (nopMetrics) RoundTrip(time.Duration) {}
func (nopMetrics) Appended(int)            {}
func (nopMetrics) RelaysReceived(int)      {}
func (nopMetrics) GapRepaired(int)         {}
func (nopMetrics) Checkpointed()           {}
func (nopMetrics) LeaseChanged()           {}
func (nopMetrics) RedisError(string)       {}

// Redis is a connection to the Redis of a cluster, shared by every hub of
// a server. It owns a command client (a pool), one subscription connection
// and two goroutines (the subscription and the health check), which Close
// ends.
type Redis struct {
	opts   Options
	client *redis.Client
	log    *zap.Logger
	m      Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// subMu orders subscription changes: each change of channels and the
	// command that makes it are one step, so that Redis sees them in the
	// order of the map.
	subMu sync.Mutex

	emptied chan string // channels that lost their last subscriber

	mu       sync.Mutex
	channels map[string]*channelState
	ps       *redis.PubSub
	session  uint64      // counts subscription connections
	downAt   time.Time   // when the subscription was lost; zero while up
	down     atomic.Bool // downAt is set (read without the lock per message)
	lostSent bool        // sinks were told the loss outlasted the grace
	pingErr  error       // the last health check's error
}

// channelState is a room channel and the hubs' subscriptions to it (one per
// room that joined; a room that broke and its fresh load may overlap).
type channelState struct {
	subs map[*subscription]struct{}
	// In the current session: subscribe commands sent and confirmed.
	// Redis confirms them in order, so a subscription made after the n-th
	// command is in place once n are confirmed.
	sent, acked uint64
	session     uint64
}

type subscription struct {
	channel string
	sink    roomhub.ClusterSink
	// needAcks is the confirmations of its session that put it in place;
	// confirmed is closed then.
	session   uint64
	needAcks  uint64
	confirmed chan struct{}
	inPlace   bool
}

// New connects to Redis and starts the subscription. Redis need not be up:
// the client retries, and Healthy says why it cannot serve meanwhile.
func New(opts Options) (*Redis, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster redis url: %w", err)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(opts.KeyPrefix, "{}") {
		return nil, fmt.Errorf("cluster redis key_prefix %q: must not contain { or }", opts.KeyPrefix)
	}
	if opts.Instance == "" {
		opts.Instance = defaultInstance()
	}
	if strings.ContainsAny(opts.Instance, " /\n\r\t") {
		return nil, fmt.Errorf("cluster redis instance_id %q: must not contain spaces, '/' or line breaks", opts.Instance)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SubscriptionGrace <= 0 {
		opts.SubscriptionGrace = DefaultSubscriptionGrace
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.CheckpointGrace <= 0 {
		opts.CheckpointGrace = DefaultCheckpointGrace
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	redisLoggerOnce.Do(func() { redis.SetLogger(zapPrintf{opts.Logger.Named("go-redis")}) })
	// RESP2: pub/sub messages are plain replies, without RESP3's push
	// notification handling on every read.
	ro.Protocol = 2
	ro.ContextTimeoutEnabled = true
	ro.DialTimeout = opts.Timeout
	ro.ReadTimeout = opts.Timeout
	ro.WriteTimeout = opts.Timeout
	ro.ClientName = "wiredb-" + opts.Instance
	ctx, cancel := context.WithCancel(context.Background())
	c := &Redis{
		opts:     opts,
		client:   redis.NewClient(ro),
		log:      opts.Logger,
		m:        opts.Metrics,
		ctx:      ctx,
		cancel:   cancel,
		channels: make(map[string]*channelState),
		emptied:  make(chan string, 1024),
		downAt:   time.Now(),
	}
	c.down.Store(true)
	c.wg.Add(3)
	go c.subscribeLoop()
	go c.healthLoop()
	go c.unsubscriber()
	return c, nil
}

// go-redis logs through one logger per process; the first client's zap
// logger takes it (at debug level: the client's own errors are logged
// where they matter, with what they mean).
var redisLoggerOnce sync.Once

type zapPrintf struct{ l *zap.Logger }

func (z zapPrintf) Printf(_ context.Context, format string, v ...any) {
	z.l.Debug(fmt.Sprintf(format, v...))
}

func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "wiredb"
	}
	host = strings.Map(func(r rune) rune {
		if r == ' ' || r == '/' || r < ' ' {
			return '-'
		}
		return r
	}, host)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(2))
}

// Instance is this server's name in the cluster.
func (c *Redis) Instance() string { return c.opts.Instance }

// Options returns the client's options, defaults applied.
func (c *Redis) Options() Options { return c.opts }

// Close ends the subscription and the client. Hubs using it must be closed
// first.
func (c *Redis) Close() error {
	c.cancel()
	c.mu.Lock()
	if c.ps != nil {
		c.ps.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return c.client.Close()
}

// Healthy returns why the cluster cannot take new joins, or nil.
func (c *Redis) Healthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.downAt.IsZero() {
		return fmt.Errorf("no subscription to Redis for %v", time.Since(c.downAt).Round(time.Millisecond))
	}
	if c.pingErr != nil {
		return fmt.Errorf("Redis does not answer: %w", c.pingErr)
	}
	return nil
}

// failed counts a failed operation, and takes a failure that is not
// Redis's answer (a timeout, a lost connection) as Redis being unreachable
// until the next ping succeeds: new joins are refused from the first sign,
// not from the next ping's timeout.
func (c *Redis) failed(op string, err error) {
	if c.ctx.Err() != nil {
		return
	}
	c.m.RedisError(op)
	var reply redis.Error
	if err == nil || errors.As(err, &reply) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingErr == nil {
		c.log.Error("Redis does not answer: refusing new connections", zap.String("op", op), zap.Error(err))
		c.pingErr = err
	}
}

// Persistence reads Redis's appendonly and appendfsync settings.
func (c *Redis) Persistence(ctx context.Context) (appendonly, appendfsync string, err error) {
	res, err := c.client.ConfigGet(ctx, "append*").Result()
	if err != nil {
		return "", "", err
	}
	return res["appendonly"], res["appendfsync"], nil
}

// healthLoop pings Redis every second (the round trip goes to Metrics),
// and tells the rooms when the subscription stayed lost past the grace.
func (c *Redis) healthLoop() {
	defer c.wg.Done()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
		start := time.Now()
		err := c.client.Ping(ctx).Err()
		cancel()
		if err == nil {
			c.m.RoundTrip(time.Since(start))
		} else if c.ctx.Err() == nil {
			c.m.RedisError("ping")
		}
		c.mu.Lock()
		if (err == nil) != (c.pingErr == nil) {
			if err != nil {
				c.log.Error("Redis does not answer: refusing new connections", zap.Error(err))
			} else {
				c.log.Info("Redis answers again")
			}
		}
		c.pingErr = err
		var lost []*subscription
		if !c.downAt.IsZero() && !c.lostSent && time.Since(c.downAt) > c.opts.SubscriptionGrace {
			c.lostSent = true
			lost = c.allSubscriptionsLocked()
		}
		c.mu.Unlock()
		if len(lost) > 0 {
			c.log.Error("subscription to Redis lost for longer than the grace period: closing the rooms' connections",
				zap.Duration("subscription_grace", c.opts.SubscriptionGrace), zap.Int("rooms", len(lost)))
		}
		for _, s := range lost {
			s.sink.Lost(errors.New("subscription to Redis lost"))
		}
	}
}

func (c *Redis) allSubscriptionsLocked() []*subscription {
	var all []*subscription
	for _, st := range c.channels {
		for s := range st.subs {
			all = append(all, s)
		}
	}
	return all
}

// subscribeLoop keeps one subscription connection, with every room's
// channel, and hands what arrives to the rooms. A connection that fails or
// falls silent is replaced; the rooms then repair what they missed.
func (c *Redis) subscribeLoop() {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	for c.ctx.Err() == nil {
		ps, session := c.newSession()
		start := time.Now()
		err := c.receive(ps, session)
		ps.Close()
		if c.ctx.Err() != nil {
			return
		}
		c.m.RedisError("subscribe")
		c.mu.Lock()
		if c.downAt.IsZero() {
			c.downAt = time.Now()
			c.down.Store(true)
			c.log.Error("subscription to Redis lost", zap.Error(err))
		}
		c.mu.Unlock()
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// newSession opens a subscription connection to every channel with
// subscribers.
func (c *Redis) newSession() (*redis.PubSub, uint64) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	c.session++
	session := c.session
	ps := c.client.Subscribe(c.ctx)
	c.ps = ps
	names := make([]string, 0, len(c.channels))
	for name, st := range c.channels {
		names = append(names, name)
		st.session, st.sent, st.acked = session, 1, 0
		for s := range st.subs {
			if !s.inPlace {
				s.session, s.needAcks = session, 1
			}
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	// Errors show in receive too. The ping's answer tells receive that
	// the connection is up without waiting for a message.
	if len(names) > 0 {
		_ = ps.Subscribe(ctx, names...)
	}
	_ = ps.Ping(ctx)
	return ps, session
}

// receive reads the subscription until it fails or hears nothing, pings
// included, for silenceLimit. Reads block without a deadline (setting one
// per message cost a third of a busy instance's CPU); a watchdog pings
// the connection and closes it when it falls silent, which ends the read.
func (c *Redis) receive(ps *redis.PubSub, session uint64) error {
	var lastHeard atomic.Int64
	lastHeard.Store(time.Now().UnixNano())
	silent := make(chan struct{})
	stop := make(chan struct{})
	watchdog := make(chan struct{})
	go func() {
		defer close(watchdog)
		t := time.NewTicker(pingInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if time.Since(time.Unix(0, lastHeard.Load())) > silenceLimit {
				close(silent)
				ps.Close()
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
			_ = ps.Ping(ctx) // its answer counts as hearing from Redis
			cancel()
		}
	}()
	defer func() { close(stop); <-watchdog }()
	// The first read clears the read deadline go-redis set while it
	// connected (a timeout of 0 sets "none"); later reads leave the
	// deadline alone (-1). A read that fails ends the session, and a new
	// session starts on a new connection, so no deadline comes back.
	timeout := time.Duration(0)
	for {
		msg, err := ps.ReceiveTimeout(c.ctx, timeout)
		timeout = -1
		if err != nil {
			select {
			case <-silent:
				return fmt.Errorf("no answer on the subscription for %v", silenceLimit)
			default:
				return err
			}
		}
		lastHeard.Store(time.Now().UnixNano())
		c.markUp()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				c.confirmed(m.Channel, session)
			}
		case *redis.Message:
			c.dispatch(m.Channel, m.Payload)
		}
	}
}

func (c *Redis) markUp() {
	if !c.down.Load() {
		return // the common case, without the lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.downAt.IsZero() {
		c.log.Info("subscription to Redis in place", zap.Duration("after", time.Since(c.downAt)))
		c.downAt = time.Time{}
		c.down.Store(false)
		c.lostSent = false
	}
}

// confirmed counts a subscribe confirmation of channel, which puts in place
// the subscriptions waiting for it. A subscription in place in an earlier
// session is told it was resubscribed, so that it repairs what it missed.
func (c *Redis) confirmed(channel string, session uint64) {
	c.mu.Lock()
	st := c.channels[channel]
	if st == nil || st.session != session {
		c.mu.Unlock()
		return
	}
	st.acked++
	var resubscribed []*subscription
	for s := range st.subs {
		if s.session != session {
			// In place in an earlier session.
			s.session = session
			resubscribed = append(resubscribed, s)
			continue
		}
		if !s.inPlace && st.acked >= s.needAcks {
			s.inPlace = true
			close(s.confirmed)
		}
	}
	c.mu.Unlock()
	for _, s := range resubscribed {
		s.sink.Resubscribed()
	}
}

// dispatch hands a channel's message to its rooms.
func (c *Redis) dispatch(channel, payload string) {
	c.mu.Lock()
	st := c.channels[channel]
	var sinks []roomhub.ClusterSink
	if st != nil {
		for s := range st.subs {
			if s.inPlace {
				sinks = append(sinks, s.sink)
			}
		}
	}
	c.mu.Unlock()
	if len(sinks) == 0 {
		return
	}
	switch {
	case strings.HasPrefix(payload, "U"):
		b, err := decodeBatchMessage(payload)
		if err != nil {
			c.log.Error("undecodable batch on a room channel", zap.String("channel", channel), zap.Error(err))
			return
		}
		c.m.RelaysReceived(len(b.Updates))
		for _, s := range sinks {
			s.Deliver(b)
		}
	case strings.HasPrefix(payload, "A"):
		origin, entries, err := decodeAwarenessMessage(payload)
		if err != nil {
			c.log.Error("undecodable awareness on a room channel", zap.String("channel", channel), zap.Error(err))
			return
		}
		if origin == c.opts.Instance {
			return // this server's own clients: applied already
		}
		for _, s := range sinks {
			s.Awareness(origin, entries)
		}
	case strings.HasPrefix(payload, "S"):
		origin, body, ok := strings.Cut(payload[1:], "\n")
		if !ok {
			c.log.Error("undecodable stateless message on a room channel", zap.String("channel", channel))
			return
		}
		if origin == c.opts.Instance {
			return // relayed to this server's own clients already
		}
		for _, s := range sinks {
			s.Stateless(origin, []byte(body))
		}
	}
}

// subscribe adds a subscription to channel and waits until it is in place.
func (c *Redis) subscribe(ctx context.Context, channel string, sink roomhub.ClusterSink) (*subscription, error) {
	s := &subscription{channel: channel, sink: sink, confirmed: make(chan struct{})}
	c.subMu.Lock()
	c.mu.Lock()
	st := c.channels[channel]
	if st == nil {
		st = &channelState{subs: make(map[*subscription]struct{}), session: c.session}
		c.channels[channel] = st
	}
	st.subs[s] = struct{}{}
	s.session = c.session
	// A channel with subscriptions already is subscribed (or will be, in
	// a session about to start); one more command costs little and makes
	// the wait below exact.
	st.sent++
	s.needAcks = st.sent
	ps := c.ps
	c.mu.Unlock()
	err := errors.New("not connected yet")
	if ps != nil {
		err = ps.Subscribe(ctx, channel)
	}
	c.subMu.Unlock()
	if err != nil {
		c.unsubscribe(s)
		return nil, fmt.Errorf("subscribing to %s: %w", channel, err)
	}
	select {
	case <-s.confirmed:
		return s, nil
	case <-ctx.Done():
		c.unsubscribe(s)
		return nil, fmt.Errorf("subscribing to %s: no confirmation from Redis: %w", channel, ctx.Err())
	}
}

// unsubscribe removes a subscription at once (its sink gets nothing more),
// and has the unsubscriber end the channel's subscription in Redis if it
// was the last: a room leaving never waits for Redis.
func (c *Redis) unsubscribe(s *subscription) {
	c.mu.Lock()
	st := c.channels[s.channel]
	last := false
	if st != nil {
		delete(st.subs, s)
		last = len(st.subs) == 0
	}
	c.mu.Unlock()
	if last {
		select {
		case c.emptied <- s.channel:
		default:
			c.unsubscribeIfEmpty(s.channel) // a full queue: do it here
		}
	}
}

// unsubscriber ends the Redis subscriptions of channels left without
// subscribers.
func (c *Redis) unsubscriber() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case ch := <-c.emptied:
			c.unsubscribeIfEmpty(ch)
		}
	}
}

// unsubscribeIfEmpty ends the subscription of channel in Redis if it still
// has no subscribers. Under subMu, as subscribe: whichever runs first, a
// room that subscribed meanwhile stays subscribed.
func (c *Redis) unsubscribeIfEmpty(channel string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	st := c.channels[channel]
	if st == nil || len(st.subs) > 0 {
		c.mu.Unlock()
		return
	}
	delete(c.channels, channel)
	ps := c.ps
	c.mu.Unlock()
	if ps != nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
		defer cancel()
		// If it fails, the connection is replaced, without the channel.
		_ = ps.Unsubscribe(ctx, channel)
	}
}
