// Package caddyfile adapts the `wiredb` Caddyfile directive to the
// http.handlers.wiredb module.
package caddyfile

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-wiredb/wiredb/caddymodule"
	"github.com/caddy-wiredb/wiredb/roomhub"
)

func init() {
	httpcaddyfile.RegisterDirective("wiredb", parseDirective)
	// Before respond (and file_server), so that `wiredb /rooms/*` works in a
	// site block without `order` or `route`.
	httpcaddyfile.RegisterDirectiveOrder("wiredb", httpcaddyfile.Before, "respond")
}

// parseDirective handles the directive with its matcher. It is
// RegisterHandlerDirective's work plus one thing: a path matcher such as
// /rooms/* also gives the prefix that is cut from the path to make the
// default room key.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, hasMatcher, err := h.MatcherToken()
	if err != nil {
		return nil, err
	}
	if hasMatcher {
		h.Dispenser.Delete()
	}
	h.Dispenser.Reset()

	handler := new(caddymodule.Handler)
	if err := UnmarshalCaddyfile(h.Dispenser, handler); err != nil {
		return nil, err
	}
	if handler.Room == "" && handler.PathPrefix == "" {
		handler.PathPrefix = pathPrefix(matcherSet)
	}
	routes := h.NewRoute(matcherSet, handler)
	if p := handler.PathPrefix; handler.Room == "" && len(p) > 1 && strings.HasSuffix(p, "/") && servesHocuspocus(handler.Protocols) {
		// A Hocuspocus provider strips the trailing slash of its URL:
		// pointed at /rooms/, it requests /rooms, which /rooms/* does not
		// match. A route of its own (a second path in the first would
		// stop Caddy from sorting the routes by path length) serves it;
		// its documents name their rooms.
		bare := caddy.ModuleMap{"path": caddyconfig.JSON(caddyhttp.MatchPath{strings.TrimSuffix(p, "/")}, nil)}
		// The same handler, but its webhooks are the first route's: one
		// event per change, not one per route.
		sameButHooks := *handler
		sameButHooks.Webhooks = nil
		routes = append(routes, h.NewRoute(bare, &sameButHooks)...)
	}
	return routes, nil
}

// servesHocuspocus reports whether a protocols setting includes Hocuspocus
// (the default, empty, does).
func servesHocuspocus(protocols []string) bool {
	return len(protocols) == 0 || slices.Contains(protocols, roomhub.ProtocolHocuspocus.String())
}

// pathPrefix returns "/rooms/" for a matcher set whose only matcher is the
// single path pattern "/rooms/*", and "" otherwise.
func pathPrefix(set caddy.ModuleMap) string {
	raw, ok := set["path"]
	if !ok || len(set) != 1 {
		return ""
	}
	var paths []string
	if err := json.Unmarshal(raw, &paths); err != nil || len(paths) != 1 {
		return ""
	}
	p := paths[0]
	if !strings.HasSuffix(p, "*") || strings.Count(p, "*") != 1 {
		return ""
	}
	return strings.TrimSuffix(p, "*")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	wiredb [<matcher>] {
//	    data_dir             <dir>
//	    room                 <placeholder template>
//	    max_message_size     <size>
//	    max_room_key_length  <bytes>
//	    read_only
//	    fsync                always | interval [<duration>] | never
//	    outbound_queue_size  <size>
//	    write_timeout        <duration>
//	    ping_interval        <duration>
//	    room_idle_timeout    <duration>
//	    compact              <records> [<size>]
//	    protocols            y-websocket | hocuspocus ...
//	    max_documents_per_connection <n>
//	    http_api
//	    webhook <url> {
//	        secret   <secret>
//	        debounce <duration>
//	        events   room.changed | room.loaded | room.unloaded ...
//	        timeout  <duration>
//	    }
//	}
func UnmarshalCaddyfile(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr() // the matcher has been removed; nothing else may follow
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "webhook" { // repeatable
			if err := parseWebhook(d, h); err != nil {
				return err
			}
			continue
		}
		if seen[name] {
			return d.Errf("duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "data_dir":
			h.DataDir, err = oneArg(d)
		case "room":
			h.Room, err = oneArg(d)
		case "max_message_size":
			h.MaxMessageSize, err = sizeArg(d)
		case "max_room_key_length":
			h.MaxRoomKeyLength, err = intArg(d)
		case "read_only":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ReadOnly = true
		case "fsync":
			err = parseFsync(d, h)
		case "outbound_queue_size":
			var n int64
			n, err = sizeArg(d)
			h.OutboundQueueSize = int(n)
		case "write_timeout":
			h.WriteTimeout, err = durationArg(d)
		case "ping_interval":
			h.PingInterval, err = durationArg(d)
		case "room_idle_timeout":
			h.RoomIdleTimeout, err = durationArg(d)
		case "compact":
			err = parseCompact(d, h)
		case "max_rooms":
			h.MaxRooms, err = intArg(d)
		case "max_connections_per_room":
			h.MaxConnectionsPerRoom, err = intArg(d)
		case "max_document_size":
			h.MaxDocumentSize, err = sizeArg(d)
		case "rate_limit":
			err = parseRateLimit(d, h)
		case "read_only_awareness":
			h.ReadOnlyAwareness, err = oneArg(d)
			if err == nil && h.ReadOnlyAwareness != "relay" && h.ReadOnlyAwareness != "drop" {
				return d.Errf("read_only_awareness: want relay or drop, got '%s'", h.ReadOnlyAwareness)
			}
		case "origins":
			h.Origins = d.RemainingArgs()
			if len(h.Origins) == 0 {
				return d.ArgErr()
			}
		case "insecure_skip_origin_check":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.InsecureSkipOriginCheck = true
		case "protocols":
			h.Protocols = d.RemainingArgs()
			if len(h.Protocols) == 0 {
				return d.ArgErr()
			}
			for _, p := range h.Protocols {
				if _, ok := roomhub.ParseProtocol(p); !ok {
					return d.Errf("protocols: unknown protocol '%s' (want y-websocket or hocuspocus)", p)
				}
			}
		case "http_api":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.HTTPAPI = true
		case "max_documents_per_connection":
			h.MaxDocumentsPerConnection, err = intArg(d)
		case "jwt":
			err = parseJWT(d, h)
		case "cluster":
			err = parseCluster(d, h)
		default:
			return d.Errf("unknown subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive integer, got '%s'", d.Val(), v)
	}
	return n, nil
}

func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	return parseSize(d, v)
}

func parseSize(d *caddyfile.Dispenser, v string) (int64, error) {
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, d.Errf("invalid size '%s': want e.g. 16MiB", v)
	}
	return int64(n), nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	return parseDuration(d, v)
}

func parseDuration(d *caddyfile.Dispenser, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("invalid duration '%s': want e.g. 30s", v)
	}
	return caddy.Duration(dur), nil
}

func parseFsync(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Fsync = d.Val()
	switch h.Fsync {
	case "always", "never":
		if d.NextArg() {
			return d.ArgErr()
		}
	case "interval":
		if d.NextArg() {
			dur, err := parseDuration(d, d.Val())
			if err != nil {
				return err
			}
			h.FsyncInterval = dur
			if d.NextArg() {
				return d.ArgErr()
			}
		}
	default:
		return d.Errf("unknown fsync policy '%s': want always, interval [<duration>] or never", h.Fsync)
	}
	return nil
}

func parseCompact(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n <= 0 {
		return d.Errf("compact: want a positive record count, got '%s'", d.Val())
	}
	h.CompactRecords = n
	if d.NextArg() {
		size, err := parseSize(d, d.Val())
		if err != nil {
			return err
		}
		h.CompactBytes = int(size)
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// parseRateLimit reads `rate_limit <messages per second> [<bytes per second>]`.
func parseRateLimit(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	n, err := strconv.ParseFloat(d.Val(), 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) {
		return d.Errf("rate_limit: want a positive number of messages per second, got '%s'", d.Val())
	}
	h.RateLimitMessages = n
	if d.NextArg() {
		if h.RateLimitBytes, err = parseSize(d, d.Val()); err != nil {
			return err
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// parseJWT reads
//
//	jwt {
//		key <secret, PEM or file>
//		alg HS256|RS256|ES256|EdDSA
//		issuer <iss>
//		audience <aud>
//	}
//
// parseWebhook reads `webhook <url> { secret ... debounce ... events ... timeout ... }`.
func parseWebhook(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if !d.NextArg() {
		return d.Err("webhook: want a URL")
	}
	wh := &caddymodule.Webhook{URL: d.Val()}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("webhook: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "secret":
			wh.Secret, err = oneArg(d)
		case "debounce":
			wh.Debounce, err = durationArg(d)
		case "timeout":
			wh.Timeout, err = durationArg(d)
		case "events":
			wh.Events = d.RemainingArgs()
			if len(wh.Events) == 0 {
				return d.ArgErr()
			}
			for _, e := range wh.Events {
				switch e {
				case "room.changed", "room.loaded", "room.unloaded":
				default:
					return d.Errf("webhook: unknown event '%s' (want room.changed, room.loaded or room.unloaded)", e)
				}
			}
		default:
			return d.Errf("webhook: unknown subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	if wh.Secret == "" {
		return d.Err("webhook: secret is required (receivers verify X-WireDB-Signature with it)")
	}
	h.Webhooks = append(h.Webhooks, wh)
	return nil
}

func parseJWT(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	j := &caddymodule.JWT{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("jwt: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		switch name {
		case "key":
			j.Key = v
		case "alg":
			switch v {
			case "HS256", "RS256", "ES256", "EdDSA":
			default:
				return d.Errf("jwt: unknown alg '%s': want HS256, RS256, ES256 or EdDSA", v)
			}
			j.Alg = v
		case "issuer":
			j.Issuer = v
		case "audience":
			j.Audience = v
		default:
			return d.Errf("jwt: unknown subdirective '%s'", name)
		}
	}
	if j.Key == "" {
		return d.Err("jwt: key is required")
	}
	h.JWT = j
	return nil
}

// parseCluster reads
//
//	cluster redis {
//		url redis://[user:password@]host:port/db   (rediss:// for TLS)
//		key_prefix <prefix>
//		instance_id <name>
//		timeout <duration>
//		subscription_grace <duration>
//		lease <duration>
//		checkpoint_grace <duration>
//	}
func parseCluster(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if !d.NextArg() {
		return d.Err("cluster: a backend is required: cluster redis { url redis://host:6379/0 }")
	}
	if d.Val() != "redis" {
		return d.Errf("cluster: unknown backend '%s': want redis", d.Val())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	c := &caddymodule.Cluster{Backend: "redis"}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("cluster: duplicate subdirective '%s'", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "url":
			c.URL, err = oneArg(d)
			if err == nil && !strings.HasPrefix(c.URL, "redis://") && !strings.HasPrefix(c.URL, "rediss://") &&
				!strings.HasPrefix(c.URL, "{") {
				return d.Errf("cluster: url '%s': want redis:// or rediss://", c.URL)
			}
		case "key_prefix":
			c.KeyPrefix, err = oneArg(d)
			if err == nil && strings.ContainsAny(c.KeyPrefix, "{}") {
				return d.Errf("cluster: key_prefix '%s' must not contain { or }", c.KeyPrefix)
			}
		case "instance_id":
			c.InstanceID, err = oneArg(d)
			if err == nil && strings.ContainsAny(c.InstanceID, " /") {
				return d.Errf("cluster: instance_id '%s' must not contain spaces or '/'", c.InstanceID)
			}
		case "timeout":
			c.Timeout, err = durationArg(d)
		case "subscription_grace":
			c.SubscriptionGrace, err = durationArg(d)
		case "lease":
			c.Lease, err = durationArg(d)
		case "checkpoint_grace":
			c.CheckpointGrace, err = durationArg(d)
		default:
			return d.Errf("cluster: unknown subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	if c.URL == "" {
		return d.Err("cluster: url is required")
	}
	h.Cluster = c
	return nil
}
