package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-wiredb/wiredb/internal/ydoc"
	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.wiredb module: the rooms of every wiredb data
// directory, on Caddy's admin endpoint.
//
//	GET  /wiredb/rooms                  every loaded room
//	GET  /wiredb/rooms/<key>            the room's document as JSON
//	GET  /wiredb/rooms/<key>/update     the merged Yjs v1 update (a backup)
//	POST /wiredb/rooms/<key>/compact    compact the room's file now (cluster
//	                                    mode: checkpoint it; 409 if another
//	                                    instance holds its lease)
//	POST /wiredb/rooms/<key>/close      close every connection (1012)
//
// <key> is one path segment: escape its slashes (notes%2F42). With more
// than one data directory, ?data_dir= picks one.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wiredb",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/wiredb/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/wiredb/rooms")
	if !ok {
		return apiError(http.StatusNotFound, fmt.Errorf("no such endpoint: %s", r.URL.Path))
	}
	if rest == "" || rest == "/" {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
		}
		return a.listRooms(w)
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	if len(parts) > 2 {
		return apiError(http.StatusNotFound, errors.New("a room key is one path segment: escape its slashes as %2F"))
	}
	key, err := url.PathUnescape(parts[0])
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("room key: %w", err))
	}
	if err := storage.ValidateKey(key); err != nil {
		return apiError(http.StatusBadRequest, err)
	}
	hub, err := pickHub(r.URL.Query().Get("data_dir"))
	if err != nil {
		return err
	}
	action := ""
	if len(parts) == 2 {
		action = parts[1]
	}
	want := map[string]string{"": http.MethodGet, "update": http.MethodGet, "compact": http.MethodPost, "close": http.MethodPost}
	method, known := want[action]
	if !known {
		return apiError(http.StatusNotFound, fmt.Errorf("unknown room action %q", action))
	}
	if r.Method != method {
		return apiError(http.StatusMethodNotAllowed, fmt.Errorf("%s /wiredb/rooms/<key>/%s: use %s", r.Method, action, method))
	}

	switch action {
	case "":
		update, err := hub.RoomUpdate(key)
		if err != nil {
			return roomError(err)
		}
		// A fresh y-crdt doc, under recover, never the room's own state.
		doc, err := ydoc.ToJSON(update)
		if err != nil {
			return apiError(http.StatusInternalServerError, fmt.Errorf("rendering room %s: %w", key, err))
		}
		w.Header().Set("Content-Type", "application/json")
		_, err = w.Write(doc)
		return err
	case "update":
		update, err := hub.RoomUpdate(key)
		if err != nil {
			return roomError(err)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filenameOf(key)+".update"))
		_, err = w.Write(update)
		return err
	case "compact":
		if err := hub.CompactRoom(key); err != nil {
			return roomError(err)
		}
		return writeJSON(w, map[string]any{"compacted": key})
	default: // close
		n, err := hub.CloseRoom(key, "closed by the administrator")
		if err != nil {
			return roomError(err)
		}
		return writeJSON(w, map[string]any{"closed": n})
	}
}

func filenameOf(key string) string {
	name, err := storage.FileName(key)
	if err != nil {
		return "room"
	}
	return strings.TrimSuffix(name, ".y")
}

func roomError(err error) error {
	if errors.Is(err, roomhub.ErrRoomNotFound) {
		return apiError(http.StatusNotFound, err)
	}
	if errors.Is(err, roomhub.ErrBusy) {
		return apiError(http.StatusServiceUnavailable, err)
	}
	if errors.Is(err, roomhub.ErrNotLeaseHolder) || errors.Is(err, roomhub.ErrStaleCheckpoint) {
		// Cluster mode: another instance checkpoints the room (ask it),
		// or did past this point already.
		return apiError(http.StatusConflict, err)
	}
	return apiError(http.StatusInternalServerError, err)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// dataDirRooms is one data directory's rooms in GET /wiredb/rooms.
type dataDirRooms struct {
	DataDir string             `json:"data_dir"`
	Rooms   []roomhub.RoomInfo `json:"rooms"`
}

func (a *AdminAPI) listRooms(w http.ResponseWriter) error {
	var out []dataDirRooms
	for dir, hub := range loadedHubs() {
		out = append(out, dataDirRooms{DataDir: dir, Rooms: hub.Rooms()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DataDir < out[j].DataDir })
	if out == nil {
		out = []dataDirRooms{}
	}
	return writeJSON(w, out)
}

// loadedHubs returns the hub of every data directory in use.
func loadedHubs() map[string]*roomhub.Hub {
	found := map[string]*roomhub.Hub{}
	hubs.Range(func(k, v any) bool {
		if e, ok := v.(hubEntry); ok {
			found[k.(string)] = e.hub
		}
		return true
	})
	return found
}

// pickHub finds the hub of dataDir, or the only one when dataDir is empty.
func pickHub(dataDir string) (*roomhub.Hub, error) {
	all := loadedHubs()
	if dataDir != "" {
		if hub, ok := all[dataDir]; ok {
			return hub, nil
		}
		return nil, apiError(http.StatusNotFound, fmt.Errorf("no wiredb route uses data_dir %s", dataDir))
	}
	switch len(all) {
	case 0:
		return nil, apiError(http.StatusNotFound, errors.New("no wiredb route is configured"))
	case 1:
		for _, hub := range all {
			return hub, nil
		}
	}
	return nil, apiError(http.StatusBadRequest, errors.New("several data directories are in use: pick one with ?data_dir="))
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
