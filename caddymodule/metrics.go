package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-wiredb/wiredb/roomhub"
)

// promMetrics implements roomhub.Metrics with Prometheus collectors. There
// is one set per process: hubs outlive config reloads, and each config's
// registry (ctx.GetMetricsRegistry) gets the same collectors, so counts
// carry over a reload as the rooms do.
type promMetrics struct {
	rooms       prometheus.Gauge
	connections prometheus.Gauge
	fileBytes   prometheus.Gauge
	// Indexed by direction, protocol and kind, resolved once: Message is
	// called for every message in and out.
	messages  [2][roomhub.NumProtocols][roomhub.NumMessageKinds]prometheus.Counter
	bytes     [2][roomhub.NumProtocols][roomhub.NumMessageKinds]prometheus.Counter
	rejected  [roomhub.NumRejectReasons]prometheus.Counter
	slow      prometheus.Counter
	append    prometheus.Observer
	fsync     prometheus.Observer
	compact   prometheus.Observer
	roomLoad  prometheus.Observer
	collector []prometheus.Collector
}

var (
	metricsOnce sync.Once
	metrics     *promMetrics
)

func sharedMetrics() *promMetrics {
	metricsOnce.Do(func() { metrics = newPromMetrics() })
	return metrics
}

func newPromMetrics() *promMetrics {
	const ns, sub = "caddy", "wiredb"
	m := &promMetrics{}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
		m.collector = append(m.collector, g)
		return g
	}
	m.rooms = gauge("rooms_loaded", "Rooms in memory.")
	m.connections = gauge("connections_open", "Open WebSocket connections.")
	m.fileBytes = gauge("file_bytes", "Total size of the files of the loaded rooms.")

	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_total",
		Help: "WebSocket messages, by direction (in: from clients), protocol (y-websocket, hocuspocus) and type."},
		[]string{"direction", "protocol", "type"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "message_bytes_total",
		Help: "Bytes of WebSocket messages, by direction, protocol and type."}, []string{"direction", "protocol", "type"})
	for d, dir := range []string{"in", "out"} {
		for p := range roomhub.NumProtocols {
			for k := range roomhub.NumMessageKinds {
				m.messages[d][p][k] = msgs.WithLabelValues(dir, p.String(), k.String())
				m.bytes[d][p][k] = bytes.WithLabelValues(dir, p.String(), k.String())
			}
		}
	}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rejected_total",
		Help: "Connections closed by the server for what they sent or did, by reason."}, []string{"reason"})
	for r := range roomhub.NumRejectReasons {
		m.rejected[r] = rejected.WithLabelValues(r.String())
	}
	m.slow = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "slow_client_disconnects_total",
		Help: "Clients closed because their outbound queue overflowed."})
	histogram := func(name, help string, buckets []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets})
		m.collector = append(m.collector, h)
		return h
	}
	fast := prometheus.ExponentialBuckets(1e-6, 4, 12) // 1 µs .. 4 s
	slow := prometheus.ExponentialBuckets(1e-4, 4, 10) // 100 µs .. 26 s
	m.append = histogram("append_seconds", "Time to append one update to its room file (write(2)).", fast)
	m.fsync = histogram("fsync_seconds", "Time of one fsync of a room file.", fast)
	m.compact = histogram("compaction_seconds", "Time to compact a room file (temp file, fsync, rename).", slow)
	m.roomLoad = histogram("room_load_seconds", "Time to load a room from its file.", slow)
	m.collector = append(m.collector, msgs, bytes, rejected, m.slow)
	return m
}

// register adds the collectors to a config's registry.
func (m *promMetrics) register(reg *prometheus.Registry) error {
	return registerAll(reg, m.collector)
}

// registerAll adds collectors to a config's registry, once.
func registerAll(reg *prometheus.Registry, collectors []prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

func (m *promMetrics) ConnOpened() { m.connections.Inc() }
func (m *promMetrics) ConnClosed() { m.connections.Dec() }
func (m *promMetrics) RoomLoaded(took time.Duration) {
	m.rooms.Inc()
	m.roomLoad.Observe(took.Seconds())
}
func (m *promMetrics) RoomUnloaded()                { m.rooms.Dec() }
func (m *promMetrics) Appended(took time.Duration)  { m.append.Observe(took.Seconds()) }
func (m *promMetrics) Synced(took time.Duration)    { m.fsync.Observe(took.Seconds()) }
func (m *promMetrics) Compacted(took time.Duration) { m.compact.Observe(took.Seconds()) }
func (m *promMetrics) FileBytes(delta int64)        { m.fileBytes.Add(float64(delta)) }

func (m *promMetrics) Message(dir roomhub.Direction, proto roomhub.Protocol, kind roomhub.MessageKind, n int) {
	if dir > roomhub.Outbound || proto >= roomhub.NumProtocols || kind >= roomhub.NumMessageKinds {
		return
	}
	m.messages[dir][proto][kind].Inc()
	m.bytes[dir][proto][kind].Add(float64(n))
}

func (m *promMetrics) Rejected(reason roomhub.RejectReason) {
	if reason >= roomhub.NumRejectReasons {
		reason = roomhub.RejectInternal
	}
	m.rejected[reason].Inc()
	if reason == roomhub.RejectSlowClient {
		m.slow.Inc()
	}
}
