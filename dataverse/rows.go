package dataverse

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/httpapi"
)

// maxPatchRetries bounds how often a PATCH without a version re-reads a row
// that a concurrent writer changed under it.
const maxPatchRetries = 32

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// parseRow parses a request body as a row of the table sc describes: a JSON
// object of columns. It returns the row id the body names ("" if none) and
// the column values, compacted, with null for a column to clear. Properties
// starting with "@" (annotations such as @odata.etag) and the read-only
// columns every row has are ignored, so that a row read can be written back.
// It returns an EInvalid error that says what is wrong, never the values.
func parseRow(sc *schema, body []byte) (string, map[string]json.RawMessage, error) {
	var in map[string]json.RawMessage
	if err := httpapi.Unmarshal(body, &in, CodeBadRequest); err != nil {
		return "", nil, err
	}
	if in == nil {
		return "", nil, badRequest("the request content must be a JSON object of the row's columns, not null")
	}
	id := ""
	out := make(map[string]json.RawMessage, len(in))
	for k, v := range in {
		if strings.HasPrefix(k, "@") {
			continue
		}
		name := strings.ToLower(k)
		if reservedColumns[name] {
			continue
		}
		if name == sc.primary {
			if err := json.Unmarshal(v, &id); err != nil {
				return "", nil, badRequest("the property '%s' must be a GUID string", sc.primary)
			}
			id = strings.ToLower(id)
			if !guidRE.MatchString(id) {
				return "", nil, badRequest("the property '%s' must be a GUID such as 00000000-0000-0000-0000-000000000001", sc.primary)
			}
			continue
		}
		col, ok := sc.cols[name]
		if !ok {
			return "", nil, badRequest("Invalid property '%s' was found in entity '%s': the table has no such column", truncate(k, 80), sc.table)
		}
		if _, dup := out[name]; dup {
			return "", nil, badRequest("the column '%s' is given twice", name)
		}
		val, err := checkValue(col, v)
		if err != nil {
			return "", nil, err
		}
		out[name] = val
	}
	return id, out, nil
}

var jsonNull = json.RawMessage("null")

// checkValue checks one column value against its type and returns it
// compacted; null passes (required columns are checked on the whole row).
func checkValue(col Column, v json.RawMessage) (json.RawMessage, error) {
	v = bytes.TrimSpace(v)
	if bytes.Equal(v, jsonNull) {
		return jsonNull, nil
	}
	wrong := func(want string) error {
		return badRequest("the column '%s' is of type %s and takes %s", col.Name, col.Type, want)
	}
	switch col.Type {
	case TypeFile:
		return nil, badRequest("the column '%s' is a file column: upload its value with PUT .../{table}({id})/%s", col.Name, col.Name)
	case TypeString:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, wrong("a string")
		}
		return json.Marshal(s)
	case TypeInteger:
		var n json.Number
		if json.Unmarshal(v, &n) != nil || v[0] == '"' {
			return nil, wrong("a whole number")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, wrong("a whole number between -9223372036854775808 and 9223372036854775807")
		}
		return json.RawMessage(strconv.FormatInt(i, 10)), nil
	case TypeDecimal:
		var f float64
		if v[0] == '"' || json.Unmarshal(v, &f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, wrong("a number")
		}
		return json.Marshal(f)
	case TypeBoolean:
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return nil, wrong("true or false")
		}
		return json.Marshal(b)
	case TypeDateTime:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, wrong("a date and time such as 2024-05-01T12:00:00Z")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, wrong("a date and time such as 2024-05-01T12:00:00Z")
		}
		return json.Marshal(t.UTC().Format(time.RFC3339Nano))
	}
	return nil, keyhold.Internal("dataverse", fmt.Errorf("dataverse: column %q has unknown type %q", col.Name, col.Type))
}

// merge applies a patch to stored columns: null clears a column. It returns
// an EInvalid error if a required column would be left without a value.
func merge(sc *schema, stored, patch map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(stored)+len(patch))
	for k, v := range stored {
		out[k] = v
	}
	for k, v := range patch {
		if bytes.Equal(v, jsonNull) {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	for _, c := range sc.order {
		if _, ok := out[c.Name]; c.Required && !ok {
			return nil, badRequest("the column '%s' is required and has no value", c.Name)
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// readBody reads a JSON request body up to httpapi.MaxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, httpapi.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, keyhold.Errorc(keyhold.EInvalid, CodeBadRequest, "the request body is larger than %d bytes", httpapi.MaxBodyBytes)
		}
		return nil, badRequest("the request body could not be read")
	}
	return b, nil
}

// seal seals a row's content (or, for the benchmark baseline, does not).
func (s *Service) seal(ctx context.Context, b envelope.Binding, content []byte) ([]byte, int64, error) {
	if s.cfg.Plaintext {
		// A copy, as Seal's output is: the caller wipes content.
		return bytes.Clone(content), 1, nil
	}
	return handleFrom(ctx).Seal(ctx, b, content)
}

func (s *Service) open(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error) {
	if s.cfg.Plaintext {
		return sealed, nil
	}
	return handleFrom(ctx).Open(ctx, b, sealed)
}

// openRow opens a stored row into its columns.
func (s *Service) openRow(ctx context.Context, sc *schema, row *keyhold.SealedRow) (map[string]json.RawMessage, error) {
	pt, err := s.open(ctx, envelope.RowBinding(row.EnvironmentID, sc.table, row.ID), row.Sealed)
	if err != nil {
		return nil, err
	}
	var cols map[string]json.RawMessage
	if err := json.Unmarshal(pt, &cols); err != nil {
		return nil, keyhold.Internal("dataverse: stored row", errors.New("dataverse: a row's content is not a JSON object"))
	}
	return cols, nil
}

// putRow seals cols as row id and stores it at ifVersion (PutRow's rules).
func (s *Service) putRow(ctx context.Context, envID string, sc *schema, id string, cols map[string]json.RawMessage, ifVersion int64) (*keyhold.SealedRow, error) {
	content, err := json.Marshal(cols)
	if err != nil {
		return nil, keyhold.Internal("dataverse: encode a row", err)
	}
	sealed, gen, err := s.seal(ctx, envelope.RowBinding(envID, sc.table, id), content)
	clear(content)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	row := &keyhold.SealedRow{EnvironmentID: envID, Table: sc.table, ID: id, Generation: gen, Sealed: sealed, CreatedAt: now, UpdatedAt: now}
	if err := s.cfg.Store.PutRow(ctx, row, ifVersion); err != nil {
		return nil, err
	}
	return row, nil
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// rowJSON renders a row as the API shows it.
func rowJSON(sc *schema, row *keyhold.SealedRow, cols map[string]json.RawMessage, context string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(cols)+6)
	for k, v := range cols {
		out[k] = v
	}
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	if context != "" {
		out["@odata.context"] = str(context)
	}
	out["@odata.etag"] = str(etag(row.Version))
	out[sc.primary] = str(row.ID)
	out["versionnumber"] = json.RawMessage(strconv.FormatInt(row.Version, 10))
	if !row.CreatedAt.IsZero() {
		out["createdon"] = str(row.CreatedAt.UTC().Format(time.RFC3339))
	}
	if !row.UpdatedAt.IsZero() {
		out["modifiedon"] = str(row.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return out
}

// precondition is a parsed If-Match / If-None-Match pair.
type precondition struct {
	version  int64 // If-Match W/"n": only at version n
	exists   bool  // If-Match: *
	notExist bool  // If-None-Match: *
}

func parsePrecondition(r *http.Request) (precondition, error) {
	var p precondition
	if v := strings.TrimSpace(r.Header.Get("If-None-Match")); v != "" {
		if v != "*" {
			return p, badRequest("If-None-Match takes only *: create the row only if it does not exist")
		}
		p.notExist = true
	}
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	switch {
	case v == "":
	case v == "*":
		p.exists = true
	default:
		n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil || n < 1 {
			return p, badRequest(`If-Match %q is not an ETag of this API; send the row's @odata.etag, such as W/"3", or *`, truncate(v, 40))
		}
		p.version, p.exists = n, true
	}
	if p.exists && p.notExist {
		return p, badRequest("If-Match and If-None-Match: * exclude each other")
	}
	return p, nil
}

func rowNotFound(sc *schema, id string) error {
	return keyhold.Errorc(keyhold.ENotFound, CodeRecordNotFound, "%s with id = %s does not exist", sc.table, id)
}

func (s *Service) rowScope(p request, table, id string) string {
	return "/environments/" + p.envID + "/tables/" + table + "/rows/" + id
}

// serveRows lists (GET) and creates (POST) rows of a table.
func (s *Service) serveRows(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	ctx := r.Context()
	sc, err := s.table(r, p.envID, p.table)
	if err != nil {
		return 0, err
	}
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Keyhold.Data/rows/read", "/environments/"+p.envID+"/tables/"+sc.table)
		return s.listRows(w, r, p, sc)
	case http.MethodPost:
	default:
		return 0, methodNotAllowed(w, "GET, POST")
	}
	body, err := readBody(r)
	if err != nil {
		return 0, err
	}
	id, cols, err := parseRow(sc, body)
	clear(body)
	if err != nil {
		return 0, err
	}
	if id == "" {
		if id, err = s.newID(); err != nil {
			return 0, err
		}
	}
	httpapi.Annotate(ctx, "Keyhold.Data/rows/write", s.rowScope(p, sc.table, id))
	if cols, err = merge(sc, nil, cols); err != nil {
		return 0, err
	}
	row, err := s.putRow(ctx, p.envID, sc, id, cols, -1)
	switch {
	case keyhold.IsConflict(err):
		return 0, keyhold.Errorc(keyhold.EConflict, CodeDuplicateRecord, "A record with matching key values already exists: %s %s", sc.table, id)
	case keyhold.IsNotFound(err):
		return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "the environment has no table %q", sc.table)
	case err != nil:
		return 0, err
	}
	w.Header().Set("OData-EntityId", base(r, p.envID)+sc.table+"("+id+")")
	w.Header().Set("ETag", etag(row.Version))
	httpapi.WriteJSON(w, http.StatusCreated, rowJSON(sc, row, cols, base(r, p.envID)+"$metadata#"+sc.table+"/$entity"))
	return http.StatusCreated, nil
}

// newID returns a random version 4 GUID.
func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", keyhold.Internal("dataverse: make an id", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// pageToken is what $skiptoken carries: the last id of the page before.
func encodeToken(afterID string) string { return base64.RawURLEncoding.EncodeToString([]byte(afterID)) }

func decodeToken(t string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || !guidRE.Match(b) {
		return "", badRequest("the $skiptoken is not one this API made; follow @odata.nextLink as it is")
	}
	return string(b), nil
}

// pageSize reads Prefer: odata.maxpagesize=N.
func pageSize(r *http.Request) (int, bool, error) {
	for _, h := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(v), `"`))
			if err != nil || n < 1 {
				return 0, false, badRequest("Prefer: odata.maxpagesize takes a positive number")
			}
			return min(n, DefaultPageSize), true, nil
		}
	}
	return DefaultPageSize, false, nil
}

func (s *Service) listRows(w http.ResponseWriter, r *http.Request, p request, sc *schema) (int, error) {
	ctx := r.Context()
	q := r.URL.Query()
	top := -1
	after := ""
	for k, vs := range q {
		v := vs[0]
		switch k {
		case "$top":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return 0, badRequest("$top takes a number of rows, 0 or more")
			}
			top = n
		case "$skiptoken":
			a, err := decodeToken(v)
			if err != nil {
				return 0, err
			}
			after = a
		default:
			if strings.HasPrefix(k, "$") {
				return 0, badRequest("the query option %s is not supported by this data API; it supports $top and $skiptoken (with Prefer: odata.maxpagesize)", truncate(k, 40))
			}
		}
	}
	size, preferred, err := pageSize(r)
	if err != nil {
		return 0, err
	}
	limit := size
	if top >= 0 && top < limit {
		limit = top
	}
	var rows []*keyhold.SealedRow
	if limit > 0 {
		rows, err = s.cfg.Store.ListRows(ctx, p.envID, sc.table, after, limit+1)
		if keyhold.IsNotFound(err) {
			return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "the environment has no table %q", sc.table)
		}
		if err != nil {
			return 0, err
		}
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	value := make([]map[string]json.RawMessage, 0, len(rows))
	for _, row := range rows {
		cols, err := s.openRow(ctx, sc, row)
		if err != nil {
			return 0, err
		}
		value = append(value, rowJSON(sc, row, cols, ""))
	}
	out := struct {
		Context  string                       `json:"@odata.context"`
		Value    []map[string]json.RawMessage `json:"value"`
		NextLink string                       `json:"@odata.nextLink,omitempty"`
	}{Context: base(r, p.envID) + "$metadata#" + sc.table, Value: value}
	if more && (top < 0 || top > limit) {
		next := url.Values{"$skiptoken": {encodeToken(rows[len(rows)-1].ID)}}
		if top > 0 {
			next.Set("$top", strconv.Itoa(top-limit))
		}
		out.NextLink = base(r, p.envID) + sc.table + "?" + next.Encode()
	}
	if preferred {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return http.StatusOK, nil
}

// serveRow reads, updates and deletes one row.
func (s *Service) serveRow(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	ctx := r.Context()
	sc, err := s.table(r, p.envID, p.table)
	if err != nil {
		return 0, err
	}
	if !guidRE.MatchString(p.rowID) {
		return 0, badRequest("the row id %q is not a GUID", truncate(p.rowID, 40))
	}
	scope := s.rowScope(p, sc.table, p.rowID)
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Keyhold.Data/rows/read", scope)
		row, err := s.cfg.Store.GetRow(ctx, p.envID, sc.table, p.rowID)
		if keyhold.IsNotFound(err) {
			return 0, rowNotFound(sc, p.rowID)
		}
		if err != nil {
			return 0, err
		}
		cols, err := s.openRow(ctx, sc, row)
		if err != nil {
			return 0, err
		}
		w.Header().Set("ETag", etag(row.Version))
		httpapi.WriteJSON(w, http.StatusOK, rowJSON(sc, row, cols, base(r, p.envID)+"$metadata#"+sc.table+"/$entity"))
		return http.StatusOK, nil
	case http.MethodPatch:
		httpapi.Annotate(ctx, "Keyhold.Data/rows/write", scope)
		return s.patchRow(w, r, p, sc)
	case http.MethodDelete:
		httpapi.Annotate(ctx, "Keyhold.Data/rows/delete", scope)
		pre, err := parsePrecondition(r)
		if err != nil {
			return 0, err
		}
		err = s.cfg.Store.DeleteRow(ctx, p.envID, sc.table, p.rowID, pre.version)
		switch {
		case keyhold.IsNotFound(err):
			return 0, rowNotFound(sc, p.rowID)
		case keyhold.IsConflict(err):
			return 0, versionMismatch("row", pre.version, 0)
		case err != nil:
			return 0, err
		}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	return 0, methodNotAllowed(w, "GET, PATCH, DELETE")
}

// patchRow updates the columns a PATCH names, or creates the row (upsert)
// when it does not exist and no If-Match says it must. Without a version in
// If-Match the last writer wins, column by column: a write that lost a race
// re-reads and re-applies its columns, so no concurrent update is lost.
func (s *Service) patchRow(w http.ResponseWriter, r *http.Request, p request, sc *schema) (int, error) {
	ctx := r.Context()
	pre, err := parsePrecondition(r)
	if err != nil {
		return 0, err
	}
	body, err := readBody(r)
	if err != nil {
		return 0, err
	}
	id, patch, err := parseRow(sc, body)
	clear(body)
	if err != nil {
		return 0, err
	}
	if id != "" && id != p.rowID {
		return 0, badRequest("the body's %s %s is not the id in the URL, %s", sc.primary, id, p.rowID)
	}
	for range maxPatchRetries {
		row, err := s.cfg.Store.GetRow(ctx, p.envID, sc.table, p.rowID)
		if keyhold.IsNotFound(err) {
			if pre.exists {
				return 0, rowNotFound(sc, p.rowID)
			}
			cols, err := merge(sc, nil, patch)
			if err != nil {
				return 0, err
			}
			row, err := s.putRow(ctx, p.envID, sc, p.rowID, cols, -1)
			if keyhold.IsConflict(err) {
				continue // created meanwhile: update it instead
			}
			if keyhold.IsNotFound(err) {
				return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "the environment has no table %q", sc.table)
			}
			if err != nil {
				return 0, err
			}
			w.Header().Set("OData-EntityId", base(r, p.envID)+sc.table+"("+p.rowID+")")
			w.Header().Set("ETag", etag(row.Version))
			httpapi.WriteJSON(w, http.StatusCreated, rowJSON(sc, row, cols, base(r, p.envID)+"$metadata#"+sc.table+"/$entity"))
			return http.StatusCreated, nil
		}
		if err != nil {
			return 0, err
		}
		if pre.notExist {
			return 0, keyhold.Errorc(keyhold.EConflict, detailVersionMismatch, "%s %s already exists and If-None-Match: * allows only creating it", sc.table, p.rowID)
		}
		if pre.version > 0 && row.Version != pre.version {
			return 0, versionMismatch("row", pre.version, row.Version)
		}
		stored, err := s.openRow(ctx, sc, row)
		if err != nil {
			return 0, err
		}
		cols, err := merge(sc, stored, patch)
		if err != nil {
			return 0, err
		}
		updated, err := s.putRow(ctx, p.envID, sc, p.rowID, cols, row.Version)
		if keyhold.IsConflict(err) || keyhold.IsNotFound(err) {
			if pre.version > 0 {
				return 0, versionMismatch("row", pre.version, 0)
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		w.Header().Set("ETag", etag(updated.Version))
		httpapi.WriteJSON(w, http.StatusOK, rowJSON(sc, updated, cols, base(r, p.envID)+"$metadata#"+sc.table+"/$entity"))
		return http.StatusOK, nil
	}
	return 0, keyhold.Errorf(keyhold.ETooManyRequests, "%s %s is being written too often to apply this update; retry", sc.table, p.rowID)
}
