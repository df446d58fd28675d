package roomhub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// Backends take part in rooms without a WebSocket: they read a room's
// document (or what a state vector lacks), write an update, and list its
// awareness (the Caddy handler's HTTP API), and hear about changes (its
// webhooks, through an Observer).

// Errors of the backend calls.
var (
	// ErrInvalidUpdate wraps why an update or a state vector was refused.
	ErrInvalidUpdate = errors.New("roomhub: invalid update")
	// ErrDocumentTooLarge is an update refused by MaxDocumentSize.
	ErrDocumentTooLarge = errDocumentTooLarge
)

// RoomState is a room's document as a backend reads it.
type RoomState struct {
	// Update is the whole document as one v1 update, or, when the read
	// gave a state vector, only what that state vector lacks.
	Update []byte
	// StateVector is the document's state vector.
	StateVector []byte
}

// ReadRoom returns the document of the room of key (loading a stored room
// if needed), or what clientSV lacks when clientSV is not nil. A room that
// is not stored is ErrRoomNotFound: reading creates nothing.
func (h *Hub) ReadRoom(key string, clientSV []byte) (RoomState, error) {
	if clientSV != nil {
		if _, err := yproto.ValidateStateVector(clientSV); err != nil {
			return RoomState{}, fmt.Errorf("%w: state vector: %w", ErrInvalidUpdate, err)
		}
	}
	var st RoomState
	err := h.withRoom(key, func(r *room) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		state, err := r.stateLocked()
		if err != nil {
			return err
		}
		sv, err := r.stateVectorLocked()
		if err != nil {
			return err
		}
		st = RoomState{Update: state, StateVector: sv}
		return nil
	})
	if err != nil || clientSV == nil {
		return st, err
	}
	diff, err := yproto.DiffUpdate(st.Update, clientSV)
	if err != nil {
		return RoomState{}, err
	}
	st.Update = diff
	return st, nil
}

// WriteRoom applies a v1 update to the room of key, creating the room if it
// has none, as if a client had sent it: validated, stored, relayed to every
// connection. It returns once the update is stored under the fsync policy
// (appended; fsynced under fsync always; in the shared log in cluster
// mode), with the room's state vector then. An update the room has already
// is stored again by no one and answered at once.
func (h *Hub) WriteRoom(ctx context.Context, key string, update []byte) ([]byte, error) {
	info, err := yproto.ValidateUpdate(update, yproto.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidUpdate, err)
	}
	bt := &backendTransport{stored: make(chan struct{}), closed: make(chan struct{})}
	c := newConn(bt, backendCodec{}, false, h)
	s, err := h.enter(key, c)
	if err != nil {
		return nil, bt.err()
	}
	defer s.leave()
	if !yproto.IsEmptyUpdate(update) {
		// As a step 2: only what the room lacks is stored.
		if _, err := s.r.refreshState(true); err != nil {
			return nil, err
		}
		if err := s.r.applyUpdate(c, update, info, nil, true); err != nil {
			return nil, err
		}
		select {
		case <-bt.stored:
		case <-bt.closed:
			return nil, bt.err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.r.stateVectorLocked()
}

// RoomAwareness returns the current awareness states of the room of key,
// sorted by client ID: none when the room is stored but not loaded (no
// one is in it), ErrRoomNotFound when it is not stored.
func (h *Hub) RoomAwareness(key string) ([]yproto.AwarenessEntry, error) {
	h.mu.Lock()
	r := h.rooms[key]
	h.mu.Unlock()
	if r == nil {
		exists, err := h.roomExists(key)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, ErrRoomNotFound
		}
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.awarenessEntriesLocked(), nil
}

// backendCodec is a backend's side of a room: it is sent nothing (the
// room's messages are not for it) but the acknowledgement of its update.
type backendCodec struct{}

// backendStored is the acknowledgement a backend's transport waits for.
var backendStored = []byte("stored")

func (backendCodec) Decode([]byte) (Op, error)                          { return Op{}, errors.New("backend: no messages") }
func (backendCodec) Kind([]byte) MessageKind                            { return KindOther }
func (backendCodec) AppendSyncStep1(dst, _ []byte) []byte               { return dst }
func (backendCodec) AppendSyncStep2(dst, _ []byte) []byte               { return dst }
func (backendCodec) AppendUpdate(dst, _ []byte) []byte                  { return dst }
func (backendCodec) AppendAwareness(dst, _ []byte) []byte               { return dst }
func (backendCodec) AppendPermissionDenied(dst []byte, _ string) []byte { return dst }
func (backendCodec) AppendStateless(dst, _ []byte) []byte               { return dst }
func (backendCodec) AppendSyncStatus(dst []byte, applied bool) []byte {
	if applied {
		return append(dst, backendStored...)
	}
	return dst
}
func (backendCodec) Protocol() Protocol { return ProtocolHTTP }

// backendTransport receives what the room sends a backend's conn: its
// acknowledgement, and its close with a code when the update could not be
// stored.
type backendTransport struct {
	once      sync.Once
	stored    chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
	code      StatusCode
	reason    string
}

func (t *backendTransport) ReadMessage(context.Context) (MessageType, []byte, error) {
	return 0, nil, errors.New("backend: no reader")
}

func (t *backendTransport) WriteMessages(msgs [][]byte, _ time.Duration) error {
	for _, m := range msgs {
		if len(m) > 0 {
			t.once.Do(func() { close(t.stored) })
		}
	}
	return nil
}

func (t *backendTransport) Ping(context.Context) error { return nil }

func (t *backendTransport) Close(code StatusCode, reason string) error {
	t.closeOnce.Do(func() {
		t.code, t.reason = code, reason
		close(t.closed)
	})
	return nil
}

func (t *backendTransport) CloseNow() error { return t.Close(StatusGoingAway, "") }

// err says why the room closed the backend's conn.
func (t *backendTransport) err() error {
	select {
	case <-t.closed:
	default:
		return errors.New("roomhub: backend write ended")
	}
	return &BackendError{Code: t.code, Reason: t.reason}
}

// BackendError is a write the room refused, with the close code and
// reason a WebSocket client would have got.
type BackendError struct {
	Code   StatusCode
	Reason string
}

func (e *BackendError) Error() string { return fmt.Sprintf("roomhub: %d %s", e.Code, e.Reason) }

// Observer hears about rooms: a room's accepted updates, its loads and its
// unloads. Its methods are called on hot paths, some under a room's lock:
// they must return at once, never block, and never call back into the hub.
type Observer interface {
	Changed(room string, updates int)
	Loaded(room string)
	Unloaded(room string)
}

// Observe adds o to the hub's observers until the returned stop is called.
func (h *Hub) Observe(o Observer) (stop func()) {
	h.observersMu.Lock()
	defer h.observersMu.Unlock()
	h.setObserversLocked(append(h.observerList(), o))
	var once sync.Once
	return func() {
		once.Do(func() {
			h.observersMu.Lock()
			defer h.observersMu.Unlock()
			var kept []Observer
			for _, x := range h.observerList() {
				if x != o {
					kept = append(kept, x)
				}
			}
			h.setObserversLocked(kept)
		})
	}
}

func (h *Hub) observerList() []Observer {
	if l := h.observers.Load(); l != nil {
		return *l
	}
	return nil
}

// setObserversLocked replaces the list whole: readers on hot paths load it
// without a lock.
func (h *Hub) setObserversLocked(l []Observer) {
	l = append([]Observer(nil), l...)
	h.observers.Store(&l)
}
