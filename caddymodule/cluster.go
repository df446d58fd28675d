package caddymodule

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/cluster"
	"github.com/caddy-wiredb/wiredb/roomhub"
)

// Cluster makes the route one of several Caddy instances serving the same
// rooms through a shared log (docs/cluster.md). Redis is its one backend.
type Cluster struct {
	// Backend is "redis".
	Backend string `json:"backend"`
	// URL is the Redis URL: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. Placeholders ({env.*}) are resolved at start.
	URL string `json:"url"`
	// KeyPrefix starts every Redis key and channel. Default "wiredb".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// InstanceID names this Caddy in the cluster; unique per instance.
	// Default: host name, process id and random digits.
	InstanceID string `json:"instance_id,omitempty"`
	// Timeout bounds one Redis operation. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// SubscriptionGrace is how long the subscription to Redis may be lost
	// before the rooms' clients are closed with 1013. Default 5s.
	SubscriptionGrace caddy.Duration `json:"subscription_grace,omitempty"`
	// Lease is how long an instance keeps the right to checkpoint a room.
	// Default 30s.
	Lease caddy.Duration `json:"lease,omitempty"`
	// CheckpointGrace is how long superseded checkpoint files are kept.
	// Default 1m.
	CheckpointGrace caddy.Duration `json:"checkpoint_grace,omitempty"`
}

// clusters holds one Redis client per URL and key prefix. The hub of a data
// directory holds a use of it for as long as it lives, so a config reload
// keeps its connections along with the rooms.
var clusters = caddy.NewUsagePool()

type clusterEntry struct {
	*cluster.Redis
	dir string // the one data directory that uses it
}

func (e *clusterEntry) Destruct() error { return e.Close() }

func (c *Cluster) validate() error {
	if c.Backend != "redis" {
		return fmt.Errorf("cluster: unknown backend %q (want redis)", c.Backend)
	}
	if c.URL == "" {
		return fmt.Errorf("cluster redis: url is required")
	}
	if c.Timeout < 0 || c.SubscriptionGrace < 0 || c.Lease < 0 || c.CheckpointGrace < 0 {
		return fmt.Errorf("cluster redis: durations must not be negative")
	}
	return nil
}

// poolKey identifies the Redis client: one per URL and prefix.
func (c *Cluster) poolKey(url string) string {
	return c.Backend + "|" + url + "|" + c.KeyPrefix
}

// resolvedURL is the URL with global placeholders resolved.
func (c *Cluster) resolvedURL() string {
	return caddy.NewReplacer().ReplaceKnown(c.URL, "")
}

// acquireCluster gets (or connects) the Redis client of c for the hub of
// dir; the hub's entry releases it when the hub closes.
func acquireCluster(c *Cluster, dir string, logger *zap.Logger, fsync roomhub.FsyncMode) (*clusterEntry, string, error) {
	u := c.resolvedURL()
	key := c.poolKey(u)
	val, loaded, err := clusters.LoadOrNew(key, func() (caddy.Destructor, error) {
		rc, err := cluster.New(cluster.Options{
			URL:               u,
			KeyPrefix:         c.KeyPrefix,
			Instance:          caddy.NewReplacer().ReplaceKnown(c.InstanceID, ""),
			Timeout:           time.Duration(c.Timeout),
			SubscriptionGrace: time.Duration(c.SubscriptionGrace),
			Lease:             time.Duration(c.Lease),
			CheckpointGrace:   time.Duration(c.CheckpointGrace),
			Logger:            logger.Named("cluster"),
			Metrics:           clusterMetrics(),
		})
		if err != nil {
			return nil, err
		}
		return &clusterEntry{Redis: rc, dir: dir}, nil
	})
	if err != nil {
		return nil, "", err
	}
	e := val.(*clusterEntry)
	if loaded && e.dir != dir {
		clusters.Delete(key)
		return nil, "", fmt.Errorf("cluster: data directories %s and %s use the same Redis and key_prefix; give each its own key_prefix", e.dir, dir)
	}
	if !loaded {
		checkRedisPersistence(e.Redis, logger, fsync)
		logger.Info("cluster mode: rooms are shared through Redis", zap.String("redis", redactURL(u)),
			zap.String("instance_id", e.Instance()), zap.String("key_prefix", e.Options().KeyPrefix))
	}
	return e, key, nil
}

// checkRedisPersistence warns when Redis cannot keep what the route's fsync
// policy promises: in cluster mode an update is acknowledged (relayed) once
// Redis holds it, and Redis's own persistence decides what survives.
func checkRedisPersistence(rc *cluster.Redis, logger *zap.Logger, fsync roomhub.FsyncMode) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	aof, policy, err := rc.Persistence(ctx)
	switch {
	case err != nil:
		logger.Warn("could not read Redis's persistence settings (CONFIG GET appendonly, appendfsync): "+
			"check yourself that appendonly is yes", zap.Error(err))
	case aof != "yes":
		logger.Warn("Redis has appendonly no: updates acknowledged to clients since its last RDB snapshot "+
			"(all of them, without snapshots) are lost if Redis restarts or crashes; set appendonly yes",
			zap.String("appendonly", aof), zap.String("appendfsync", policy))
	case fsync == roomhub.FsyncAlways && policy != "always":
		logger.Warn("the route asks for fsync always, but Redis fsyncs its AOF "+policy+
			": a power loss of the Redis host can lose up to a second of acknowledged updates "+
			"(everysec), or what the OS had not written (no); set appendfsync always",
			zap.String("appendfsync", policy))
	case policy == "no":
		logger.Warn("Redis has appendfsync no: a power loss of the Redis host can lose acknowledged updates "+
			"the OS had not written yet; a crash of Redis alone loses none", zap.String("appendfsync", policy))
	}
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// promClusterMetrics implements cluster.Metrics; one set per process,
// like promMetrics.
type promClusterMetrics struct {
	rtt         prometheus.Observer
	appends     prometheus.Counter
	relays      prometheus.Counter
	gaps        prometheus.Counter
	checkpoints prometheus.Counter
	leases      prometheus.Counter
	errors      *prometheus.CounterVec
	collector   []prometheus.Collector
}

var clusterMetrics = sync.OnceValue(func() *promClusterMetrics {
	const ns, sub = "caddy", "wiredb_cluster"
	m := &promClusterMetrics{}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
		m.collector = append(m.collector, c)
		return c
	}
	rtt := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "redis_rtt_seconds",
		Help: "Round-trip time of Redis commands (pings and appends).", Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14)})
	m.rtt = rtt
	m.appends = counter("appends_total", "Updates appended to rooms' Redis streams by this instance.")
	m.relays = counter("relays_received_total", "Updates received from Redis's channels (every instance's, this one's included).")
	m.gaps = counter("gaps_repaired_total", "Batches read back from a Redis stream to repair a gap or a lost subscription.")
	m.checkpoints = counter("checkpoints_total", "Checkpoint files committed by this instance.")
	m.leases = counter("lease_changes_total", "Checkpoint leases this instance took or lost.")
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_errors_total",
		Help: "Failed Redis operations, by operation."}, []string{"op"})
	m.collector = append(m.collector, rtt, m.errors)
	return m
})

func (m *promClusterMetrics) register(reg *prometheus.Registry) error {
	return registerAll(reg, m.collector)
}

func (m *promClusterMetrics) RoundTrip(d time.Duration) { m.rtt.Observe(d.Seconds()) }
func (m *promClusterMetrics) Appended(n int)            { m.appends.Add(float64(n)) }
func (m *promClusterMetrics) RelaysReceived(n int)      { m.relays.Add(float64(n)) }
func (m *promClusterMetrics) GapRepaired(n int)         { m.gaps.Add(float64(n)) }
func (m *promClusterMetrics) Checkpointed()             { m.checkpoints.Inc() }
func (m *promClusterMetrics) LeaseChanged()             { m.leases.Inc() }
func (m *promClusterMetrics) RedisError(op string)      { m.errors.WithLabelValues(op).Inc() }
