package roomhub

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrRoomNotFound is returned for a room that is neither loaded nor stored.
var ErrRoomNotFound = errors.New("roomhub: no such room")

// RoomInfo describes a loaded room.
type RoomInfo struct {
	Key            string    `json:"key"`
	Connections    int       `json:"connections"`
	SnapshotBytes  int       `json:"snapshot_bytes"`
	TailBytes      int       `json:"tail_bytes"`
	TailUpdates    int       `json:"tail_updates"`
	PendingUpdates int       `json:"pending_updates"` // waiting for an fsync
	FileBytes      int64     `json:"file_bytes"`
	Path           string    `json:"path"`
	LastUpdate     time.Time `json:"last_update,omitzero"`
}

// Rooms describes every loaded room, sorted by key.
func (h *Hub) Rooms() []RoomInfo {
	rooms := h.loadedRooms()
	infos := make([]RoomInfo, 0, len(rooms))
	for _, r := range rooms {
		if info, ok := r.info(); ok {
			infos = append(infos, info)
		}
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	return infos
}

func (r *room) info() (RoomInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		return RoomInfo{}, false
	}
	return RoomInfo{
		Key:            r.key,
		Connections:    len(r.conns),
		SnapshotBytes:  len(r.snapshot),
		TailBytes:      r.tailBytes,
		TailUpdates:    len(r.tail),
		PendingUpdates: len(r.pending),
		FileBytes:      r.storedBytes(),
		Path:           r.where(),
		LastUpdate:     r.lastUpdate,
	}, true
}

// withRoom runs f on the room of key, loading it if it is stored but not
// loaded (it then unloads after the idle timeout as usual). A key with no
// file is ErrRoomNotFound: looking must not create rooms.
func (h *Hub) withRoom(key string, f func(*room) error) error {
	h.mu.Lock()
	_, loaded := h.rooms[key]
	h.mu.Unlock()
	if !loaded {
		exists, err := h.roomExists(key)
		if err != nil {
			return err
		}
		if !exists {
			return ErrRoomNotFound
		}
	}
	r, err := h.acquire(key)
	if err != nil {
		return err
	}
	defer h.release(r)
	return f(r)
}

// RoomUpdate returns the room's whole document as one merged v1 update
// (for backups and inspection). Updates still waiting for an fsync under
// fsync always are not included: no one has seen them yet.
func (h *Hub) RoomUpdate(key string) ([]byte, error) {
	var state []byte
	err := h.withRoom(key, func(r *room) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		s, err := r.stateLocked()
		state = s
		return err
	})
	return state, err
}

// ErrBusy is returned when a room stays too busy for an operation.
var ErrBusy = errors.New("roomhub: room busy")

// compactWait bounds how long CompactRoom waits for a moment with no update
// waiting for its fsync (fsync always); each wait is at most one fsync.
const compactWait = 5 * time.Second

// CompactRoom compacts the room's file now.
func (h *Hub) CompactRoom(key string) error {
	return h.withRoom(key, func(r *room) error {
		if h.cluster != nil {
			return r.checkpointNow()
		}
		deadline := time.Now().Add(compactWait)
		for {
			done, err := r.compactIfIdle()
			if done || err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: updates kept waiting for an fsync for %v", ErrBusy, compactWait)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// compactIfIdle compacts unless updates wait for their fsync (those are in
// the file but not in the room's state, so a compaction would drop them) or
// a compaction runs already.
func (r *room) compactIfIdle() (done bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		return true, ErrRoomNotFound
	}
	if len(r.pending) > 0 || r.running[jobCompaction] {
		return false, nil
	}
	return true, r.compactNowLocked()
}

// CloseRoom closes every connection of a loaded room with 1012 (service
// restart: y-websocket clients reconnect and resync) and returns how many
// it closed.
func (h *Hub) CloseRoom(key, reason string) (int, error) {
	h.mu.Lock()
	r := h.rooms[key]
	h.mu.Unlock()
	if r == nil {
		return 0, ErrRoomNotFound
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.conns)
	for c := range r.conns {
		c.close(StatusServiceRestart, reason)
	}
	return n, nil
}

// roomExists reports whether key has a stored room (in cluster mode, state
// in the shared log), without creating one.
func (h *Hub) roomExists(key string) (bool, error) {
	if h.cluster != nil {
		ctx, cancel := h.sharedContext()
		defer cancel()
		return h.cluster.Exists(ctx, key)
	}
	return h.store.Exists(key)
}
