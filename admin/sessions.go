package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/seal"
)

// Sessions live in the store, so that every server process behind a load
// balancer sees the same ones: a person signed in through one is signed in
// on all, and signing out anywhere ends the session everywhere. Nothing is
// cached between requests; reading a session is one indexed row.
//
// A row holds the SHA-256 of the session id, never the id, so that a reader
// of the database cannot present a session; everything else (the tokens, the
// CSRF token, the user, the flash message) is one JSON value sealed under
// the master key with a label naming that hash, so that one row's contents
// do not open as another's.

// sessionLabel binds a session's sealed contents to its id hash.
func sessionLabel(idHash string) string { return "admin-session/" + idHash }

// hashID is the stored name of a session id.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// sealedSession is what a row's Sealed holds. ExpiresAt repeats the row's
// column under the seal: the earlier of the two counts, so that someone who
// can write the database cannot stretch a session.
type sealedSession struct {
	CSRF      string                  `json:"csrf"`
	UPN       string                  `json:"upn"`
	Name      string                  `json:"name,omitempty"`
	ObjectID  string                  `json:"objectId"`
	Roles     []string                `json:"roles,omitempty"`
	TenantID  string                  `json:"tenantId"`
	Tokens    map[string]client.Token `json:"tokens"`
	ExpiresAt time.Time               `json:"expiresAt"`
	Flash     string                  `json:"flash,omitempty"`
}

// sealSession returns the row that stores s.
func (a *Admin) sealSession(s *session) (*keyhold.AdminSession, error) {
	b, err := json.Marshal(sealedSession{CSRF: s.csrf, UPN: s.upn, Name: s.name, ObjectID: s.objectID, Roles: s.roles,
		TenantID: s.tenantID, Tokens: s.tokens, ExpiresAt: s.expiresAt, Flash: s.flash})
	if err != nil {
		return nil, fmt.Errorf("admin: encoding a session: %w", err)
	}
	sealed := a.key.Seal(sessionLabel(s.hash), b)
	clear(b)
	return &keyhold.AdminSession{IDHash: s.hash, Sealed: sealed, ExpiresAt: s.expiresAt, CreatedAt: s.createdAt, Version: s.version}, nil
}

// openSession returns the session row stores for the session id id.
func (a *Admin) openSession(id string, row *keyhold.AdminSession) (*session, error) {
	pt, err := a.key.Open(sessionLabel(row.IDHash), row.Sealed)
	if err != nil {
		return nil, err
	}
	defer pt.Wipe()
	var ss sealedSession
	if err := json.Unmarshal(pt.Reveal(), &ss); err != nil {
		return nil, errors.New("admin: a stored session is not valid JSON")
	}
	s := &session{id: id, hash: row.IDHash, version: row.Version, createdAt: row.CreatedAt,
		csrf: ss.CSRF, upn: ss.UPN, name: ss.Name, objectID: ss.ObjectID, roles: ss.Roles, tenantID: ss.TenantID,
		tokens: ss.Tokens, expiresAt: ss.ExpiresAt, flash: ss.Flash}
	if row.ExpiresAt.Before(s.expiresAt) {
		s.expiresAt = row.ExpiresAt
	}
	if s.tokens == nil {
		s.tokens = map[string]client.Token{}
	}
	return s, nil
}

// loadSession returns the live session named by the session id id, or nil
// when there is none: never created, signed out (perhaps through another
// process), expired, or not opening under this master key. An expired or
// unreadable row is deleted on the way.
func (a *Admin) loadSession(ctx context.Context, id string) (*session, error) {
	hash := hashID(id)
	row, err := a.sessions.GetAdminSession(ctx, hash)
	if keyhold.ErrorCode(err) == keyhold.ENotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := a.openSession(id, row)
	if err != nil {
		a.cfg.Logger.Warn("admin: a stored session does not open; it is deleted", "err", err.Error())
	}
	if err != nil || !a.cfg.Now().Before(s.expiresAt) {
		if err := a.sessions.DeleteAdminSession(ctx, hash); err != nil && keyhold.ErrorCode(err) != keyhold.ENotFound {
			return nil, err
		}
		return nil, nil
	}
	return s, nil
}

// session returns the request's live session, nil when it has none, or an
// error when the store cannot be read.
func (a *Admin) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	return a.loadSession(r.Context(), c.Value)
}

// createSession stores a new session, and sweeps the sessions that have
// expired: sign-in is rare enough to carry the sweep, and frequent enough
// that expired rows do not pile up.
func (a *Admin) createSession(ctx context.Context, s *session) error {
	s.hash, s.createdAt = hashID(s.id), a.cfg.Now()
	row, err := a.sealSession(s)
	if err != nil {
		return err
	}
	if err := a.sessions.CreateAdminSession(ctx, row); err != nil {
		return err
	}
	s.version = row.Version
	if n, err := a.sessions.DeleteExpiredAdminSessions(ctx, a.cfg.Now()); err != nil {
		a.cfg.Logger.Warn("admin: sweeping expired sessions failed", "err", err.Error())
	} else if n > 0 {
		a.cfg.Logger.Debug("admin: expired sessions swept", "count", n)
	}
	return nil
}

// errSignedOut is updateSession's answer when the session ended meanwhile.
var errSignedOut = errors.New("admin: the session has ended")

// updateSession applies change to s and stores the result. Requests of one
// session may run at once in different processes; when another stored its
// change first, s is read again and change applied to that, so that
// neither change is lost. change reports whether it changed anything.
func (a *Admin) updateSession(ctx context.Context, s *session, change func(*session) bool) error {
	for range 5 {
		if !change(s) {
			return nil
		}
		row, err := a.sealSession(s)
		if err != nil {
			return err
		}
		err = a.sessions.UpdateAdminSession(ctx, row)
		switch keyhold.ErrorCode(err) {
		case "":
			s.version = row.Version
			return nil
		case keyhold.ENotFound:
			return errSignedOut
		case keyhold.EConflict:
		default:
			return err
		}
		fresh, err := a.loadSession(ctx, s.id)
		if err != nil {
			return err
		}
		if fresh == nil {
			return errSignedOut
		}
		*s = *fresh
	}
	return errors.New("admin: the session kept changing under this request")
}

// deleteSession ends s everywhere; a session already gone is not an error.
func (a *Admin) deleteSession(ctx context.Context, s *session) error {
	if err := a.sessions.DeleteAdminSession(ctx, s.hash); err != nil && keyhold.ErrorCode(err) != keyhold.ENotFound {
		return err
	}
	return nil
}

// flash leaves msg for the next page the session renders, in whichever
// process renders it. Handlers call it just before redirecting, so the write
// does not stop with a request whose client has gone.
func (a *Admin) flash(s *session, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.updateSession(ctx, s, func(s *session) bool {
		s.flash = msg
		return true
	})
	if err != nil && !errors.Is(err, errSignedOut) {
		a.cfg.Logger.Error("admin: saving a page message failed", "err", err.Error())
	}
}

// popFlash returns the session's message and clears it in the store, unless
// another request has left a newer one there, which the next page shows.
func (a *Admin) popFlash(ctx context.Context, s *session) string {
	shown := s.flash
	if shown == "" {
		return ""
	}
	err := a.updateSession(ctx, s, func(s *session) bool {
		if s.flash != shown {
			return false
		}
		s.flash = ""
		return true
	})
	if err != nil && !errors.Is(err, errSignedOut) {
		a.cfg.Logger.Warn("admin: clearing a shown page message failed", "err", err.Error())
	}
	return shown
}

// memSessions keeps sessions in this process's memory, for an Admin given
// no store (unit tests). It behaves as the SQL store does.
type memSessions struct {
	mu sync.Mutex
	m  map[string]keyhold.AdminSession
}

func newMemSessions() *memSessions { return &memSessions{m: map[string]keyhold.AdminSession{}} }

func copySession(s *keyhold.AdminSession) keyhold.AdminSession {
	c := *s
	c.Sealed = append([]byte(nil), s.Sealed...)
	return c
}

func (m *memSessions) CreateAdminSession(_ context.Context, s *keyhold.AdminSession) error {
	if s.IDHash == "" || len(s.Sealed) == 0 {
		return keyhold.Errorf(keyhold.EInvalid, "admin: a session needs its id hash and sealed contents")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[s.IDHash]; ok {
		return keyhold.Errorf(keyhold.EConflict, "admin: session already exists")
	}
	s.Version = 1
	m.m[s.IDHash] = copySession(s)
	return nil
}

func (m *memSessions) GetAdminSession(_ context.Context, idHash string) (*keyhold.AdminSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[idHash]
	if !ok {
		return nil, keyhold.Errorf(keyhold.ENotFound, "admin: session not found")
	}
	c := copySession(&s)
	return &c, nil
}

func (m *memSessions) UpdateAdminSession(_ context.Context, s *keyhold.AdminSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.m[s.IDHash]
	switch {
	case !ok:
		return keyhold.Errorf(keyhold.ENotFound, "admin: session not found")
	case old.Version != s.Version:
		return keyhold.Errorf(keyhold.EConflict, "admin: session is not at version %d", s.Version)
	}
	s.Version++
	c := copySession(s)
	c.CreatedAt = old.CreatedAt
	m.m[s.IDHash] = c
	return nil
}

func (m *memSessions) DeleteAdminSession(_ context.Context, idHash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[idHash]; !ok {
		return keyhold.Errorf(keyhold.ENotFound, "admin: session not found")
	}
	delete(m.m, idHash)
	return nil
}

func (m *memSessions) DeleteExpiredAdminSessions(_ context.Context, now time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for h, s := range m.m {
		if !s.ExpiresAt.After(now) {
			delete(m.m, h)
			n++
		}
	}
	return n, nil
}

// memKey is the sealing key of an Admin given no store: made fresh, since
// its sessions end with the process anyway.
func memKey() (*seal.Key, error) {
	return seal.NewKey(seal.GenerateMasterKey())
}
