package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// The HTTP API (`http_api`): backends read and write a room at the room's
// own path on the route, under the route's access rules.
//
//	GET  <room>   Accept: application/json          the document as JSON
//	GET  <room>   (otherwise)                       the document as one v1 update; ETag, If-None-Match
//	GET  <room>?sv=<base64 state vector>            what that state vector lacks
//	GET  <room>?awareness=1                         the current awareness states
//	POST <room>   Content-Type: application/octet-stream, a v1 update
//	OPTIONS       CORS preflight

// apiWriteTimeout bounds how long a POST waits for its update to be stored.
const apiWriteTimeout = 30 * time.Second

// apiStatus is an HTTP API refusal: a status and a reason, sent as JSON.
type apiStatus struct {
	status int
	reason string
}

func (e *apiStatus) Error() string { return e.reason }

func refuse(status int, format string, args ...any) *apiStatus {
	return &apiStatus{status, fmt.Sprintf(format, args...)}
}

// serveAPI serves one HTTP API request.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) error {
	if err := h.handleAPI(w, r); err != nil {
		var st *apiStatus
		if !errors.As(err, &st) {
			h.logger.Error("http api", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
			st = refuse(http.StatusInternalServerError, "internal error")
		}
		if st.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, HEAD, POST, OPTIONS")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(st.status)
		return json.NewEncoder(w).Encode(map[string]string{"error": st.reason})
	}
	return nil
}

func (h *Handler) handleAPI(w http.ResponseWriter, r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" {
		if !h.originAllowed(r, origin) {
			return refuse(http.StatusForbidden, "origin %s is not allowed (origins)", origin)
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Access-Control-Expose-Headers", "ETag")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", "GET, HEAD, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	key := h.roomKey(r)
	if err := h.checkRoomKey(key); err != nil {
		return refuse(http.StatusBadRequest, "invalid room key: %v", err)
	}
	readOnly := h.ReadOnly
	if h.JWT != nil {
		raw := bearerToken(r)
		if raw == "" {
			raw, _ = tokenOf(r)
		}
		if raw == "" {
			return refuse(http.StatusUnauthorized, "missing token: pass Authorization: Bearer <jwt> or ?token=")
		}
		g, aerr := h.JWT.check(raw, key, time.Now())
		if aerr != nil {
			return refuse(aerr.status, "%s", aerr.reason)
		}
		readOnly = readOnly || g.readOnly
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.apiRead(w, r, key)
	case http.MethodPost:
		if readOnly {
			return refuse(http.StatusForbidden, "read-only: this route or token does not allow writes")
		}
		return h.apiWrite(w, r, key)
	}
	return refuse(http.StatusMethodNotAllowed, "%s is not supported: use GET or POST", r.Method)
}

// apiRead answers a GET: the awareness states, the document as JSON, or
// the document (or a diff) as an update.
func (h *Handler) apiRead(w http.ResponseWriter, r *http.Request, key string) error {
	q := r.URL.Query()
	if q.Has("awareness") {
		entries, err := h.hub.RoomAwareness(key)
		if err != nil {
			return roomAPIError(err)
		}
		type state struct {
			ClientID uint64          `json:"client_id"`
			Clock    uint64          `json:"clock"`
			State    json.RawMessage `json:"state"`
		}
		states := make([]state, 0, len(entries))
		for _, e := range entries {
			states = append(states, state{e.ClientID, e.Clock, json.RawMessage(e.State)})
		}
		return writeJSON(w, map[string]any{"room": key, "awareness": states})
	}
	var clientSV []byte
	if s := q.Get("sv"); s != "" {
		sv, err := decodeBase64(s)
		if err != nil {
			return refuse(http.StatusBadRequest, "sv: not base64: %v", err)
		}
		clientSV = sv
	}
	st, err := h.hub.ReadRoom(key, clientSV)
	if err != nil {
		return roomAPIError(err)
	}
	sum := sha256.Sum256(st.StateVector)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if wantsJSON(r.Header.Get("Accept")) {
		doc, err := ydoc.ToJSON(st.Update)
		if err != nil {
			return fmt.Errorf("rendering room %s: %w", key, err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, err = w.Write(doc)
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-WireDB-State-Vector", base64.StdEncoding.EncodeToString(st.StateVector))
	_, err = w.Write(st.Update)
	return err
}

// apiWrite answers a POST of an update once it is stored.
func (h *Handler) apiWrite(w http.ResponseWriter, r *http.Request, key string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/octet-stream" {
		return refuse(http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream (a Yjs v1 update)")
	}
	if err := h.hub.Healthy(); err != nil {
		w.Header().Set("Retry-After", "5")
		return refuse(http.StatusServiceUnavailable, "room service unavailable: %v", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxMessageSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return refuse(http.StatusRequestEntityTooLarge, "update larger than max_message_size (%d bytes)", h.MaxMessageSize)
		}
		return refuse(http.StatusBadRequest, "reading the body: %v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiWriteTimeout)
	defer cancel()
	sv, err := h.hub.WriteRoom(ctx, key, body)
	if err != nil {
		return roomAPIError(err)
	}
	return writeJSON(w, map[string]any{"room": key, "state_vector": base64.StdEncoding.EncodeToString(sv)})
}

// roomAPIError maps a hub error to a status.
func roomAPIError(err error) error {
	var be *roomhub.BackendError
	switch {
	case errors.Is(err, roomhub.ErrRoomNotFound):
		return refuse(http.StatusNotFound, "no such room")
	case errors.Is(err, roomhub.ErrInvalidUpdate), errors.Is(err, yproto.ErrMalformed), errors.Is(err, yproto.ErrTruncated):
		return refuse(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "roomhub: "))
	case errors.Is(err, roomhub.ErrDocumentTooLarge):
		return refuse(http.StatusRequestEntityTooLarge, "update refused: document size limit reached (max_document_size)")
	case errors.Is(err, context.DeadlineExceeded):
		return refuse(http.StatusServiceUnavailable, "the update was not stored in time")
	case errors.As(err, &be):
		if be.Code == roomhub.StatusTryAgainLater {
			return refuse(http.StatusServiceUnavailable, "%s", be.Reason)
		}
		return refuse(http.StatusInternalServerError, "%s", be.Reason)
	}
	return err
}

// bearerToken is the token of an "Authorization: Bearer <jwt>" header.
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// originAllowed applies the WebSocket's origin rules to a browser's API
// request: the request's own host, a host matching `origins`, or any with
// insecure_skip_origin_check.
func (h *Handler) originAllowed(r *http.Request, origin string) bool {
	if h.InsecureSkipOriginCheck {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range h.Origins {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// wantsJSON reports whether an Accept header prefers JSON to bytes: the
// one of the two with the higher q wins (the first listed on a tie);
// neither listed means bytes.
func wantsJSON(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" && mt != "application/octet-stream" {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "application/json" && bestQ > 0
}

func etagMatches(ifNoneMatch, etag string) bool {
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// decodeBase64 reads base64 in the URL-safe or the standard alphabet,
// padded or not.
func decodeBase64(s string) ([]byte, error) {
	// A "+" that was not escaped in a query reads as a space.
	s = strings.TrimRight(strings.ReplaceAll(s, " ", "+"), "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
