package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/internal/wstransport"
	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/webhook"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxRoomKeyLength bounds a room key, in bytes.
const DefaultMaxRoomKeyLength = 256

// hubs holds one hub per absolute data directory. It outlives config
// reloads: a new config loads the hub before the old config is cleaned up,
// so rooms and their connections carry over.
var hubs = caddy.NewUsagePool()

// Handler upgrades matched requests to WebSocket connections and joins them
// to a y-websocket room. Non-WebSocket requests pass on to the next handler.
type Handler struct {
	// DataDir is the directory of the room files. Handlers with the same
	// directory share one hub, so they serve the same rooms. Default: "data"
	// (relative to Caddy's working directory).
	DataDir string `json:"data_dir,omitempty"`

	// Room is a placeholder template for the room key, e.g.
	// "{http.request.uri.query.doc}". Default: the request path with
	// PathPrefix removed.
	Room string `json:"room,omitempty"`

	// PathPrefix is removed from the request path to make the default room
	// key. The Caddyfile sets it from a path matcher: for `wiredb /rooms/*`,
	// the request /rooms/notes/42 is room "notes/42". Default: "/".
	PathPrefix string `json:"path_prefix,omitempty"`

	// MaxMessageSize bounds one inbound WebSocket message in bytes; a larger
	// one closes the connection with 1009. Default: 16 MiB.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`

	// MaxRoomKeyLength bounds the room key in bytes; a longer one gets 400.
	// Default: 256.
	MaxRoomKeyLength int `json:"max_room_key_length,omitempty"`

	// ReadOnly connections receive everything but cannot change the
	// document. Default: false.
	ReadOnly bool `json:"read_only,omitempty"`

	// ReadOnlyAwareness says what happens to the awareness (presence) of
	// read-only connections: "relay" (default) or "drop".
	ReadOnlyAwareness string `json:"read_only_awareness,omitempty"`

	// Origins are host patterns (path.Match syntax, e.g. "app.example.com"
	// or "*.example.com") of other origins allowed to connect. A browser
	// request from any other origin than the request's own host gets 403.
	Origins []string `json:"origins,omitempty"`

	// InsecureSkipOriginCheck accepts every origin. For development only:
	// any web page can then open a connection with the user's cookies.
	InsecureSkipOriginCheck bool `json:"insecure_skip_origin_check,omitempty"`

	// JWT, when set, requires a signed room token on every connection.
	JWT *JWT `json:"jwt,omitempty"`

	// Fsync is the durability policy: "always" (fsync before an update is
	// relayed; survives power loss), "interval" (fsync every FsyncInterval;
	// survives a process crash, loses at most that interval on power loss)
	// or "never" (survives a process crash). Default: "interval".
	Fsync string `json:"fsync,omitempty"`

	// FsyncInterval is the period of the "interval" policy. Default: 1s.
	FsyncInterval caddy.Duration `json:"fsync_interval,omitempty"`

	// OutboundQueueSize bounds, in bytes, what may wait to be sent to one
	// connection; a client that falls further behind is closed with 1013.
	// Default: 4 MiB.
	OutboundQueueSize int `json:"outbound_queue_size,omitempty"`

	// WriteTimeout bounds one write to a client. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// PingInterval is how often clients are pinged. Default: 30s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// RoomIdleTimeout is how long a room without connections stays in
	// memory before it is compacted and unloaded. Default: 30s.
	RoomIdleTimeout caddy.Duration `json:"room_idle_timeout,omitempty"`

	// CompactRecords and CompactBytes bound the updates appended since the
	// last compaction; past either, the room file is rewritten as one
	// merged update. Defaults: 1000 records, 4 MiB.
	CompactRecords int `json:"compact_records,omitempty"`
	CompactBytes   int `json:"compact_bytes,omitempty"`

	// MaxRooms bounds the rooms loaded at once; a join that would load one
	// more is closed with 1013. Default: no limit.
	MaxRooms int `json:"max_rooms,omitempty"`

	// MaxConnectionsPerRoom bounds one room's connections; one more is
	// closed with 1013. Default: no limit.
	MaxConnectionsPerRoom int `json:"max_connections_per_room,omitempty"`

	// MaxDocumentSize bounds a room's document in bytes (its merged state
	// plus the updates since); an update that would pass it is refused and
	// its connection closed with 1008, the room keeping what it had.
	// Default: no limit.
	MaxDocumentSize int64 `json:"max_document_size,omitempty"`

	// RateLimitMessages and RateLimitBytes bound what one connection may
	// send per second, with a burst of one second's worth; a connection
	// over either is closed with 1008. Default: no limit.
	RateLimitMessages float64 `json:"rate_limit_messages,omitempty"`
	RateLimitBytes    int64   `json:"rate_limit_bytes,omitempty"`

	// Protocols are the wire protocols the route serves: "y-websocket"
	// and "hocuspocus" (@hocuspocus/provider). Each connection's first
	// message tells which it speaks. Default: both.
	Protocols []string `json:"protocols,omitempty"`

	// MaxDocumentsPerConnection bounds the documents one Hocuspocus
	// connection may have open at once; one more is refused with the
	// provider's authenticationFailed. Default: 100.
	MaxDocumentsPerConnection int `json:"max_documents_per_connection,omitempty"`

	// HTTPAPI serves plain HTTP requests to a room's path: backends read
	// the room (GET) and write updates to it (POST) under the route's
	// access rules. Default: off (non-WebSocket requests pass on to the
	// next handler).
	HTTPAPI bool `json:"http_api,omitempty"`

	// Webhooks receive signed events when rooms change (debounced),
	// load or unload.
	Webhooks []*Webhook `json:"webhooks,omitempty"`

	// Cluster, when set, serves the rooms together with other Caddy
	// instances through Redis (docs/cluster.md). Every instance must share
	// DataDir (a shared filesystem), where checkpoints go.
	Cluster *Cluster `json:"cluster,omitempty"`

	// Runtime state.
	protocols     roomhub.Protocols
	webhooks      *webhook.Dispatcher
	stopObserving func()
	hubKey        string
	hub           *roomhub.Hub
	logger        *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wiredb",
		New: func() caddy.Module { return new(Handler) },
	}
}

// hubEntry is the UsagePool value; Destruct runs when the last handler
// using the directory is cleaned up (a stop, or a config without it).
type hubEntry struct{ *sharedHub }

// sharedHub is a hub and the settings it was last given, by which config
// load: handlers of one load must agree on them, and a later load (a
// reload) replaces them.
type sharedHub struct {
	hub *roomhub.Hub

	// The cluster settings the hub was created with (nil: none), and its
	// use of the clusters pool. They cannot change while the hub lives.
	cluster    *Cluster
	clusterKey string

	mu       sync.Mutex
	loadedBy context.Context // the caddy.Context of the config that set opts
	opts     roomhub.Options // without Logger
}

// Destruct closes the hub, then releases its cluster client: the hub's
// last checkpoints need it.
func (e hubEntry) Destruct() error {
	err := e.hub.Close()
	if e.clusterKey != "" {
		_, _ = clusters.Delete(e.clusterKey)
	}
	return err
}

// Provision sets defaults and loads or creates the hub of the data directory.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.DataDir == "" {
		h.DataDir = "data"
	}
	if h.PathPrefix == "" {
		h.PathPrefix = "/"
	}
	if h.MaxRoomKeyLength == 0 {
		h.MaxRoomKeyLength = DefaultMaxRoomKeyLength
	}
	if h.MaxMessageSize == 0 {
		h.MaxMessageSize = roomhub.DefaultMaxMessageSize
	}
	if h.MaxDocumentsPerConnection == 0 {
		h.MaxDocumentsPerConnection = roomhub.DefaultMaxDocuments
	}
	protocols, err := parseProtocols(h.Protocols)
	if err != nil {
		return err
	}
	h.protocols = protocols
	opts, err := h.hubOptions()
	if err != nil {
		return err
	}
	if err := sharedMetrics().register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	abs, err := filepath.Abs(h.DataDir)
	if err != nil {
		return fmt.Errorf("resolving data directory: %w", err)
	}
	h.hubKey = abs
	if h.Cluster != nil {
		if err := clusterMetrics().register(ctx.GetMetricsRegistry()); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	val, loaded, err := hubs.LoadOrNew(abs, func() (caddy.Destructor, error) {
		withLogger := opts
		withLogger.Logger = h.logger.Named("hub")
		withLogger.Metrics = sharedMetrics()
		if h.Cluster != nil {
			return h.newClusterHub(ctx, abs, opts, withLogger)
		}
		store, err := storage.OpenStore(abs)
		if err != nil {
			return nil, err
		}
		hub := roomhub.New(store, withLogger)
		h.logger.Info("opened data directory", zap.String("data_dir", abs), zap.String("fsync", opts.Fsync.Mode.String()))
		return hubEntry{&sharedHub{hub: hub, loadedBy: ctx.Context, opts: opts}}, nil
	})
	if err != nil {
		return fmt.Errorf("opening data directory %s: %w", abs, err)
	}
	shared := val.(hubEntry).sharedHub
	h.hub = shared.hub
	if loaded {
		// On an error Caddy runs Cleanup, which releases the hub.
		if !sameCluster(shared.cluster, h.Cluster) {
			return fmt.Errorf("data_dir %s: its cluster settings differ from the running ones (of this config or the "+
				"one before a reload); a hub cannot change its cluster while it runs: restart Caddy", abs)
		}
		if err := shared.configure(ctx, opts, h.logger); err != nil {
			return fmt.Errorf("data_dir %s: %w", abs, err)
		}
	}
	if opts.Fsync.Mode == roomhub.FsyncNever {
		h.logger.Warn("fsync never: updates survive a crash of Caddy but not a power loss")
	}
	noteHTTP2(h.logger)
	if h.InsecureSkipOriginCheck {
		h.logger.Warn("insecure_skip_origin_check: any web page can connect with its visitors' cookies; for development only")
	}
	if h.JWT != nil {
		// Global placeholders: {env.NAME}, {file./path}.
		h.JWT.Key = caddy.NewReplacer().ReplaceKnown(h.JWT.Key, "")
		if err := h.JWT.provision(); err != nil {
			return err
		}
	}
	if len(h.Webhooks) > 0 {
		if err := webhookMetrics().register(ctx.GetMetricsRegistry()); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return h.startWebhooks()
}

// newClusterHub creates the hub of data directory abs in cluster mode.
func (h *Handler) newClusterHub(ctx caddy.Context, abs string, opts, withLogger roomhub.Options) (caddy.Destructor, error) {
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	rc, key, err := acquireCluster(h.Cluster, abs, h.logger, opts.Fsync.Mode)
	if err != nil {
		return nil, err
	}
	hub := roomhub.New(nil, withLogger)
	hub.SetCluster(rc.ForDir(abs), rc.Instance())
	h.logger.Info("opened data directory for checkpoints", zap.String("data_dir", abs))
	cfg := *h.Cluster
	return hubEntry{&sharedHub{hub: hub, loadedBy: ctx.Context, opts: opts, cluster: &cfg, clusterKey: key}}, nil
}

// sameCluster reports whether two cluster settings are the same.
func sameCluster(a, b *Cluster) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// configure applies the settings of a handler provisioned after the hub
// was created. Within one config every handler of a data directory must
// agree; a new config (a reload) reconfigures the running hub.
func (s *sharedHub) configure(ctx caddy.Context, opts roomhub.Options, logger *zap.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadedBy == ctx.Context {
		if opts != s.opts {
			return fmt.Errorf("wiredb routes sharing a data directory must have the same fsync, compact, " +
				"outbound_queue_size, write_timeout, ping_interval, room_idle_timeout, max_rooms, " +
				"max_connections_per_room and max_document_size settings")
		}
		return nil
	}
	withLogger := opts
	withLogger.Logger = logger.Named("hub")
	withLogger.Metrics = sharedMetrics()
	s.hub.Reconfigure(withLogger)
	s.loadedBy, s.opts = ctx.Context, opts
	return nil
}

// hubOptions are the handler's settings of the hub (per data directory).
func (h *Handler) hubOptions() (roomhub.Options, error) {
	policy, err := h.fsyncPolicy()
	if err != nil {
		return roomhub.Options{}, err
	}
	return roomhub.Options{
		OutboundQueueBytes: h.OutboundQueueSize,
		WriteTimeout:       time.Duration(h.WriteTimeout),
		PingInterval:       time.Duration(h.PingInterval),
		IdleUnload:         time.Duration(h.RoomIdleTimeout),
		CompactRecords:     h.CompactRecords,
		CompactBytes:       h.CompactBytes,
		Fsync:              policy,
		MaxRooms:           h.MaxRooms,
		MaxConnsPerRoom:    h.MaxConnectionsPerRoom,
		MaxDocumentSize:    h.MaxDocumentSize,
	}, nil
}

func (h *Handler) fsyncPolicy() (roomhub.FsyncPolicy, error) {
	p := roomhub.FsyncPolicy{Interval: time.Duration(h.FsyncInterval)}
	switch h.Fsync {
	case "", "interval":
		p.Mode = roomhub.FsyncInterval
	case "always":
		p.Mode = roomhub.FsyncAlways
	case "never":
		p.Mode = roomhub.FsyncNever
	default:
		return p, fmt.Errorf("fsync: unknown policy %q (want always, interval or never)", h.Fsync)
	}
	return p, nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxMessageSize < 0 {
		return fmt.Errorf("max_message_size must not be negative")
	}
	if h.MaxRoomKeyLength < 0 {
		return fmt.Errorf("max_room_key_length must not be negative")
	}
	if h.OutboundQueueSize < 0 {
		return fmt.Errorf("outbound_queue_size must not be negative")
	}
	if h.CompactRecords < 0 || h.CompactBytes < 0 {
		return fmt.Errorf("compact_records and compact_bytes must not be negative")
	}
	if h.MaxRooms < 0 || h.MaxConnectionsPerRoom < 0 || h.MaxDocumentSize < 0 {
		return fmt.Errorf("max_rooms, max_connections_per_room and max_document_size must not be negative")
	}
	if h.MaxDocumentsPerConnection < 0 {
		return fmt.Errorf("max_documents_per_connection must not be negative")
	}
	if _, err := parseProtocols(h.Protocols); err != nil {
		return err
	}
	if h.RateLimitMessages < 0 || h.RateLimitBytes < 0 {
		return fmt.Errorf("rate_limit_messages and rate_limit_bytes must not be negative")
	}
	switch h.ReadOnlyAwareness {
	case "", "relay", "drop":
	default:
		return fmt.Errorf("read_only_awareness: %q, want relay or drop", h.ReadOnlyAwareness)
	}
	for _, p := range h.Origins {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("origins: bad pattern %q: %w", p, err)
		}
	}
	if _, err := h.fsyncPolicy(); err != nil {
		return err
	}
	if h.Cluster != nil {
		if err := h.Cluster.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Cleanup releases this handler's use of the hub. On a reload the new
// config already holds it, so nothing closes; on a stop the last release
// closes every connection with 1001 and flushes every room.
func (h *Handler) Cleanup() error {
	h.stopWebhooks()
	if h.hubKey == "" {
		return nil
	}
	deleted, err := hubs.Delete(h.hubKey)
	if deleted {
		h.logger.Info("closed data directory", zap.String("data_dir", h.hubKey), zap.Bool("exiting", caddy.Exiting()))
	}
	return err
}

// parseProtocols reads the protocols setting; empty means every protocol.
func parseProtocols(names []string) (roomhub.Protocols, error) {
	if len(names) == 0 {
		return roomhub.ProtocolSet(roomhub.ProtocolYWebsocket, roomhub.ProtocolHocuspocus), nil
	}
	var set roomhub.Protocols
	for _, n := range names {
		p, ok := roomhub.ParseProtocol(n)
		if !ok {
			return 0, fmt.Errorf("protocols: unknown protocol %q (want y-websocket or hocuspocus)", n)
		}
		set |= roomhub.ProtocolSet(p)
	}
	return set, nil
}

// ServeHTTP upgrades a WebSocket request and hands it to the hub.
//
// A y-websocket client's room is in the request (its path, or the route's
// room template). A Hocuspocus provider names its documents in its
// messages, each a room key, and sends a token per document after the
// upgrade: so on a route that serves it, a request naming no room, or
// carrying no token, is upgraded, and a y-websocket client that turns out
// to need them is closed with 1008 once its first message shows its
// protocol.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// A WebSocket is an HTTP/1.1 upgrade, or, on HTTP/2 and HTTP/3, an
	// extended CONNECT whose stream then carries the frames.
	stream := wstransport.IsExtendedConnect(r)
	if !stream && !isWebSocketUpgrade(r) {
		if r.Method == http.MethodConnect {
			// Not for the next handler (a file server would answer
			// 404, and a browser would not fall back to HTTP/1.1).
			http.Error(w, "CONNECT on this route only opens a WebSocket (:protocol websocket, RFC 8441 and RFC 9220)", http.StatusBadRequest)
			return nil
		}
		if h.HTTPAPI {
			return h.serveAPI(w, r)
		}
		return next.ServeHTTP(w, r)
	}
	hocuspocus := h.protocols.Has(roomhub.ProtocolHocuspocus)
	so := roomhub.StartOptions{Protocols: h.protocols}
	key := h.roomKey(r)
	if h.protocols.Has(roomhub.ProtocolYWebsocket) {
		if key == "" && hocuspocus {
			so.RefuseYWebsocket = "no room in the URL: connect to " + h.PathPrefix + "<room>"
		} else if err := h.checkRoomKey(key); err != nil {
			// The reason goes in the body: a client can't see it otherwise.
			http.Error(w, "invalid room key: "+err.Error(), http.StatusBadRequest)
			return nil
		}
	} else {
		key = "" // Hocuspocus names its rooms in its messages
	}
	if err := h.hub.Healthy(); err != nil {
		// Fail closed: a join now could not be kept in sync with the
		// other instances.
		w.Header().Set("Retry-After", "5")
		http.Error(w, "room service unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return nil
	}
	readOnly := h.ReadOnly
	accept := wstransport.Options{
		OriginPatterns:     h.Origins,
		InsecureSkipVerify: h.InsecureSkipOriginCheck,
		// A message announcing more than this is refused at its frame
		// header, with 1009: coder/websocket alone would wait for that
		// many bytes to arrive.
		MaxMessageSize: h.MaxMessageSize,
	}
	requestToken := ""
	if h.JWT != nil {
		raw, _ := tokenOf(r)
		switch {
		case raw == "" && hocuspocus:
			if so.RefuseYWebsocket == "" {
				so.RefuseYWebsocket = "missing token: pass ?token= or a Sec-WebSocket-Protocol entry " + tokenProtocolPrefix + "<jwt>"
			}
		default:
			g, aerr := h.JWT.authorize(r, key, time.Now())
			if aerr != nil {
				h.logger.Debug("refused a connection", zap.String("room", key), zap.Int("status", aerr.status), zap.String("reason", aerr.reason))
				http.Error(w, aerr.reason, aerr.status)
				return nil
			}
			readOnly = readOnly || g.readOnly
			if g.protocol != "" {
				// A browser fails the handshake unless one offered
				// protocol is echoed; the token entry is the one it
				// offered.
				accept.Subprotocols = []string{g.protocol}
			}
			requestToken = raw
		}
	}
	var conn *wstransport.Conn
	var streamDone <-chan struct{}
	var err error
	if stream {
		conn, streamDone, err = wstransport.AcceptStream(w, r, accept)
	} else {
		conn, err = wstransport.Accept(w, r, accept)
	}
	if err != nil {
		// Accept has written the HTTP error response (403 for a foreign
		// origin).
		h.logger.Debug("websocket upgrade failed", zap.String("room", key), zap.Error(err))
		return nil
	}
	so.Room = key
	so.ConnOptions = roomhub.ConnOptions{
		Codec:           roomhub.YWebsocket,
		ReadOnly:        readOnly,
		IgnoreAwareness: readOnly && h.ReadOnlyAwareness == "drop",
		RateLimit:       roomhub.RateLimit{MessagesPerSecond: h.RateLimitMessages, BytesPerSecond: float64(h.RateLimitBytes)},
	}
	if hocuspocus {
		so.Hocuspocus = roomhub.HocuspocusOptions{
			MaxDocuments: h.MaxDocumentsPerConnection,
			Authorize: func(name, token string) (roomhub.DocumentAccess, error) {
				return h.authorizeDocument(name, token, requestToken)
			},
		}
	}
	// The hub owns the connection from here on, on a goroutine of its own:
	// it outlives this request (and its context) across config reloads, and
	// this handler's goroutine, with the deep stack it grew on the way
	// here, ends now instead of idling under every open connection.
	_ = h.hub.StartWith(conn, so)
	if streamDone != nil {
		// An HTTP/2 or HTTP/3 stream lives as long as its handler: this
		// goroutine stays, parked, until the connection is closed.
		release := watchExit()
		defer release()
		select {
		case <-streamDone:
		case <-r.Context().Done():
			conn.CloseNow()
			<-streamDone
		case <-exiting: // see streams.go
			conn.Close(roomhub.StatusGoingAway, "server shutting down")
			<-streamDone
		}
	}
	return nil
}

// authorizeDocument decides what a Hocuspocus document named name may do:
// the name is its room key, checked as keys from paths are, and on a jwt
// route its token (or, if the provider sent none, the request's) must
// grant it.
func (h *Handler) authorizeDocument(name, token, requestToken string) (roomhub.DocumentAccess, error) {
	if err := h.checkRoomKey(name); err != nil {
		return roomhub.DocumentAccess{}, fmt.Errorf("invalid document name: %w", err)
	}
	readOnly := h.ReadOnly
	if h.JWT != nil {
		if token == "" {
			token = requestToken
		}
		if token == "" {
			return roomhub.DocumentAccess{}, errors.New("missing token: set the provider's token to a room token")
		}
		g, aerr := h.JWT.check(token, name, time.Now())
		if aerr != nil {
			return roomhub.DocumentAccess{}, aerr
		}
		readOnly = readOnly || g.readOnly
	}
	return roomhub.DocumentAccess{
		Key:             name,
		ReadOnly:        readOnly,
		IgnoreAwareness: readOnly && h.ReadOnlyAwareness == "drop",
	}, nil
}

// roomKey computes the room key of a request.
func (h *Handler) roomKey(r *http.Request) string {
	if h.Room != "" {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		return repl.ReplaceAll(h.Room, "")
	}
	path := r.URL.Path
	// Caddy's path matcher is case-insensitive; strip what it matched.
	if len(path) >= len(h.PathPrefix) && strings.EqualFold(path[:len(h.PathPrefix)], h.PathPrefix) {
		return path[len(h.PathPrefix):]
	}
	if strings.EqualFold(path+"/", h.PathPrefix) {
		return "" // /rooms for /rooms/: a Hocuspocus provider's URL
	}
	return strings.TrimPrefix(path, "/")
}

func (h *Handler) checkRoomKey(key string) error {
	if len(key) > h.MaxRoomKeyLength {
		return fmt.Errorf("longer than %d bytes", h.MaxRoomKeyLength)
	}
	return storage.ValidateKey(key)
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
