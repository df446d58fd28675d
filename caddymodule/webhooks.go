package caddymodule

import (
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-wiredb/wiredb/webhook"
)

// Webhook is one `webhook` of a route: signed POSTs to URL when a room
// changes (debounced), loads or unloads.
type Webhook struct {
	// URL receives the events; placeholders such as {env.HOOK_URL} are
	// resolved at start.
	URL string `json:"url"`
	// Secret signs each body: X-WireDB-Signature: sha256=<hex HMAC-SHA256>.
	// Placeholders are resolved at start.
	Secret string `json:"secret"`
	// Debounce is the window of room.changed events per room. Default: 2s.
	Debounce caddy.Duration `json:"debounce,omitempty"`
	// Timeout bounds one delivery attempt. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Events: room.changed (the default), room.loaded, room.unloaded.
	Events []string `json:"events,omitempty"`
}

// config resolves the placeholders and applies the defaults.
func (w *Webhook) config() webhook.Config {
	repl := caddy.NewReplacer()
	return webhook.Config{
		URL:      repl.ReplaceKnown(w.URL, ""),
		Secret:   repl.ReplaceKnown(w.Secret, ""),
		Debounce: time.Duration(w.Debounce),
		Timeout:  time.Duration(w.Timeout),
		Events:   w.Events,
	}
}

// startWebhooks starts the route's webhook dispatcher and has it observe
// the hub's rooms; Cleanup stops both.
func (h *Handler) startWebhooks() error {
	if len(h.Webhooks) == 0 {
		return nil
	}
	cfgs := make([]webhook.Config, len(h.Webhooks))
	for i, w := range h.Webhooks {
		cfgs[i] = w.config()
		if err := cfgs[i].Validate(); err != nil {
			return fmt.Errorf("webhook %d (%s): %w", i+1, w.URL, err)
		}
	}
	hub := h.hub
	d, err := webhook.New(cfgs, webhook.Options{
		StateVector: func(room string) ([]byte, error) {
			st, err := hub.ReadRoom(room, nil)
			return st.StateVector, err
		},
		Logger:   h.logger.Named("webhook"),
		OnResult: webhookMetrics().count,
	})
	if err != nil {
		return err
	}
	h.webhooks = d
	h.stopObserving = hub.Observe(d)
	return nil
}

// stopWebhooks ends what startWebhooks started.
func (h *Handler) stopWebhooks() {
	if h.stopObserving != nil {
		h.stopObserving()
	}
	if h.webhooks != nil {
		h.webhooks.Close()
	}
}

// webhookCounters count deliveries by result, across routes and reloads.
type webhookCounters struct {
	deliveries *prometheus.CounterVec
}

var (
	webhookOnce sync.Once
	webhookM    *webhookCounters
)

func webhookMetrics() *webhookCounters {
	webhookOnce.Do(func() {
		webhookM = &webhookCounters{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "wiredb", Name: "webhook_deliveries_total",
			Help: "Webhook events by event and result: sent (2xx), failed (gave up after the retries), dropped (the queue was full).",
		}, []string{"event", "result"})}
	})
	return webhookM
}

func (m *webhookCounters) count(_, event, result string) {
	m.deliveries.WithLabelValues(event, result).Inc()
}

func (m *webhookCounters) register(reg *prometheus.Registry) error {
	return registerAll(reg, []prometheus.Collector{m.deliveries})
}
