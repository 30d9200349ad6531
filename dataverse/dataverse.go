// Package dataverse is an environment's data API: a small, Dataverse-like
// Web API of tables, rows and file columns at
//
//	/environments/{environment id}/api/data/v9.2/
//
// Every row and every file segment is sealed (package envelope) under the
// environment's active root-key generation before it reaches the store,
// bound to its environment, lower-cased table, row id and purpose, so that
// ciphertext moved to another row, table or environment does not open.
//
// The routes, relative to the base above:
//
//	GET    tables                       list tables: {"value":[table, ...]}
//	POST   tables                       create a table: {"name","displayName","columns":[{"name","type","displayName","required"}]}
//	GET    tables/{name}                one table
//	DELETE tables/{name}                delete a table with its rows and files (204)
//	POST   {table}                      create a row (201, OData-EntityId header, the row)
//	GET    {table}                      list rows by id; $top=N, Prefer: odata.maxpagesize=N, @odata.nextLink ($skiptoken)
//	GET    {table}({id})                one row, ETag W/"<version>"
//	PATCH  {table}({id})                update the given columns (upsert when the row does not exist);
//	                                    If-Match: W/"<version>" (412 on mismatch), If-Match: * (must exist),
//	                                    If-None-Match: * (must not exist); without either, last writer wins
//	DELETE {table}({id})                delete a row and its files (204); If-Match honoured
//	PUT    {table}({id})/{column}       upload a file column's value (PATCH too); streamed, sealed in
//	                                    1 MiB segments; x-ms-file-name names it; If-Match honoured
//	GET    {table}({id})/{column}       download it ($value may follow, as in Dataverse)
//	DELETE {table}({id})/{column}       delete it (204)
//
// Column types are String, Integer, Decimal, Boolean, DateTime and File; a
// row is a JSON object of its columns, plus "<table>id" (a GUID, generated
// when absent), "@odata.etag", "createdon" and "modifiedon". Unknown
// properties are refused, as Dataverse refuses them.
//
// Errors use the Dataverse shape {"error":{"code":"0x80040217","message":"..."}},
// with Dataverse's numeric codes (constants Code*), except Keyhold's own
// conditions, which keep their names: EnvironmentLocked (403) for a locked
// environment, with the reason, and RecordIntegrityFailure (409) for stored
// data that does not open where it is.
package dataverse

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/httpapi"
)

// APIPath is the version segment of the Web API's base path.
const APIPath = "/api/data/v9.2/"

// Defaults.
const (
	DefaultSegmentSize = 1 << 20 // plaintext bytes per sealed file segment
	DefaultMaxFileSize = 1 << 30
	DefaultPageSize    = 5000 // Dataverse's default and largest page
)

// Sealer seals and opens an environment's records; *environment.Env is one.
type Sealer interface {
	Seal(ctx context.Context, b envelope.Binding, plaintext []byte) ([]byte, int64, error)
	Open(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error)
}

// Handle is an open environment as the data API uses it.
type Handle struct {
	// ID is the environment's id as stored, which the store compares
	// exactly.
	ID string
	Sealer
}

// OpenFunc opens an environment for a caller, for reading or (write) for
// writing: it authorizes the caller and refuses a locked environment with an
// EForbidden error whose Detail is EnvironmentLocked and whose message says
// why. The server adapts (*environment.Service).Open to it (the package
// stays free of the environment package, whose Env it needs only as a
// Sealer).
type OpenFunc func(ctx context.Context, c *keyhold.Caller, environmentID string, write bool) (Handle, error)

// Config configures the data API.
type Config struct {
	Store keyhold.Store
	Open  OpenFunc
	// SegmentSize is the plaintext size of a file segment; default
	// DefaultSegmentSize. Sealed segments must fit keyhold.MaxSealedSegment.
	SegmentSize int
	// MaxFileSize bounds one file's plaintext; default DefaultMaxFileSize.
	MaxFileSize int64
	// Plaintext stores rows and segments unsealed. It exists only as the
	// baseline of benchmarks that measure what sealing costs; never set it
	// in a server.
	Plaintext bool
	// Rand makes row ids and upload ids; default crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the data API.
type Service struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	metrics *Metrics
}

// New returns the data API. It panics if cfg has no Store or Open, a wiring
// bug.
func New(cfg Config) *Service {
	if cfg.Store == nil || cfg.Open == nil {
		panic("dataverse: Config needs a Store and an Open")
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.SegmentSize+envelope.MinOverhead+16 > keyhold.MaxSealedSegment {
		panic("dataverse: SegmentSize does not fit keyhold.MaxSealedSegment once sealed")
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand, metrics: NewMetrics()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	return s
}

// Metrics returns the data API's request counter.
func (s *Service) Metrics() *Metrics { return s.metrics }

// IsFileRequest reports whether path addresses a file column
// (/environments/{id}/api/data/v9.2/{table}({id})/{column}), whose upload
// body may be far larger than the server's global body limit.
func IsFileRequest(path string) bool {
	p, ok := parsePath(path)
	return ok && p.column != ""
}

// request is a parsed data API path.
type request struct {
	envID  string
	rest   string // after the base, unescaped
	table  string // lower case
	rowID  string // lower case GUID, for {table}({id})
	column string // lower case, for {table}({id})/{column}
	value  bool   // the path ended in /$value
	meta   string // "tables" for table definitions
	defn   string // the table of tables/{name}
}

// parsePath splits /environments/{id}/api/data/v9.2/{rest}.
func parsePath(p string) (request, bool) {
	var r request
	rest, ok := strings.CutPrefix(p, "/environments/")
	if !ok {
		return r, false
	}
	env, rest, ok := strings.Cut(rest, "/")
	if !ok || env == "" {
		return r, false
	}
	r.envID = env
	rest, ok = strings.CutPrefix("/"+rest, APIPath)
	if !ok {
		if "/"+rest+"/" == APIPath {
			return r, true
		}
		return r, false
	}
	r.rest = rest
	if rest == "" {
		return r, true
	}
	segs := strings.Split(rest, "/")
	if strings.EqualFold(segs[0], "tables") {
		r.meta = "tables"
		switch len(segs) {
		case 1:
		case 2:
			r.defn = strings.ToLower(segs[1])
		default:
			return r, false
		}
		return r, true
	}
	head := segs[0]
	if i := strings.IndexByte(head, '('); i >= 0 {
		if !strings.HasSuffix(head, ")") {
			return r, false
		}
		r.rowID = strings.ToLower(strings.Trim(head[i+1:len(head)-1], "'"))
		head = head[:i]
		if r.rowID == "" {
			return r, false
		}
	}
	r.table = strings.ToLower(head)
	switch {
	case len(segs) == 1:
	case r.rowID == "":
		return r, false
	case len(segs) == 2 && segs[1] != "":
		r.column = strings.ToLower(segs[1])
	case len(segs) == 3 && segs[2] == "$value" && segs[1] != "":
		r.column, r.value = strings.ToLower(segs[1]), true
	default:
		return r, false
	}
	return r, r.table != ""
}

// Handler returns the data API's handler for /environments/... . It expects
// the caller in the request context (keyhold.WithCaller).
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	op := "unknown"
	status, locked := 0, false
	defer func() {
		s.metrics.observe(op, status, locked)
	}()
	fail := func(err error) {
		locked = keyhold.ErrorDetail(err) == CodeEnvironmentLocked
		status = writeError(w, r, err)
	}

	p, ok := parsePath(r.URL.Path)
	if !ok {
		fail(keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound,
			"the path '%s' is not part of the environment data API, whose base is /environments/{id}%s", r.URL.Path, APIPath))
		return
	}
	c := keyhold.CallerFrom(r.Context())
	if c == nil || c.Principal == nil {
		fail(keyhold.Errorf(keyhold.EUnauthenticated, "the request carries no valid access token"))
		return
	}
	var h func(http.ResponseWriter, *http.Request, request) (int, error)
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	switch {
	case p.rest == "":
		op, h = "service", s.serveServiceDocument
	case p.meta == "tables" && p.defn == "":
		op, h = "tables", s.serveTables
	case p.meta == "tables":
		op, h = "table", s.serveTable
	case p.column != "":
		op, h = "file", s.serveFile
	case p.rowID != "":
		op, h = "row", s.serveRow
	default:
		op, h = "rows", s.serveRows
	}
	op += "_" + strings.ToLower(r.Method)
	env, err := s.cfg.Open(r.Context(), c, p.envID, write)
	if err != nil {
		fail(err)
		return
	}
	p.envID = env.ID
	ctx := withHandle(r.Context(), env)
	st, err := h(w, r.WithContext(ctx), p)
	if err != nil {
		if st != 0 {
			// The response had begun; all that is left is to cut it.
			status = st
			s.log.Warn("data response cut short", "op", op, "err", err.Error())
			panic(http.ErrAbortHandler)
		}
		fail(err)
		return
	}
	status = st
}

type handleKey struct{}

func withHandle(ctx context.Context, h Handle) context.Context {
	return context.WithValue(ctx, handleKey{}, h)
}

func handleFrom(ctx context.Context) Handle {
	h, _ := ctx.Value(handleKey{}).(Handle)
	return h
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return keyhold.Errorc(keyhold.EInvalid, CodeMethodNotAllowed, "the method is not allowed here; use %s", allow)
}

// base returns the absolute base URL of the environment's Web API, for
// OData-EntityId and @odata.nextLink.
func base(r *http.Request, envID string) string {
	scheme := "https"
	if r.TLS == nil && !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: "/environments/" + envID + APIPath}
	return u.String()
}

func (s *Service) serveServiceDocument(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	if r.Method != http.MethodGet {
		return 0, methodNotAllowed(w, "GET")
	}
	tables, err := s.cfg.Store.ListTables(r.Context(), p.envID)
	if err != nil {
		return 0, err
	}
	type set struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
		URL  string `json:"url"`
	}
	out := struct {
		Context string `json:"@odata.context"`
		Value   []set  `json:"value"`
	}{Context: base(r, p.envID) + "$metadata", Value: []set{}}
	for _, t := range tables {
		out.Value = append(out.Value, set{Name: t.Name, Kind: "EntitySet", URL: t.Name})
	}
	httpapi.Annotate(r.Context(), "Keyhold.Data/tables/read", "/environments/"+p.envID)
	httpapi.WriteJSON(w, http.StatusOK, out)
	return http.StatusOK, nil
}
