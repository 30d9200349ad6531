package dataverse

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// Column types.
const (
	TypeString   = "String"
	TypeInteger  = "Integer"
	TypeDecimal  = "Decimal"
	TypeBoolean  = "Boolean"
	TypeDateTime = "DateTime"
	TypeFile     = "File"
)

var columnTypes = []string{TypeString, TypeInteger, TypeDecimal, TypeBoolean, TypeDateTime, TypeFile}

// maxColumns bounds a table's columns.
const maxColumns = 256

// nameRE is what table and column logical names look like: Dataverse's
// lower-case schema names.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// Column is a column definition.
type Column struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	DisplayName string `json:"displayName,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// TableDefinition is a table as the API shows and takes it.
type TableDefinition struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"displayName,omitempty"`
	PrimaryID   string    `json:"primaryIdAttribute"`
	Columns     []Column  `json:"columns"`
	CreatedAt   time.Time `json:"createdOn,omitzero"`
}

// schema is a table's columns by lower-case name.
type schema struct {
	table   string
	primary string
	cols    map[string]Column
	order   []Column
}

// reservedColumns are names every row has; a table may not define them.
var reservedColumns = map[string]bool{"createdon": true, "modifiedon": true, "versionnumber": true}

// reservedTables are path segments the API uses itself.
var reservedTables = map[string]bool{"tables": true, "$metadata": true, "$batch": true, "entitydefinitions": true}

// checkDefinition validates a table definition from a request and returns it
// with names lower-cased and types in their canonical spelling.
func checkDefinition(d TableDefinition) (TableDefinition, error) {
	d.Name = strings.ToLower(strings.TrimSpace(d.Name))
	if d.Name == "" {
		return d, badRequest("the table has no name")
	}
	if !nameRE.MatchString(d.Name) || reservedTables[d.Name] {
		return d, badRequest("the table name %q is not valid: use a letter or underscore, then up to 63 lower-case letters, digits or underscores", d.Name)
	}
	if len(d.Columns) > maxColumns {
		return d, badRequest("the table has %d columns; at most %d are allowed", len(d.Columns), maxColumns)
	}
	d.PrimaryID = d.Name + "id"
	seen := map[string]bool{}
	for i, c := range d.Columns {
		c.Name = strings.ToLower(strings.TrimSpace(c.Name))
		switch {
		case c.Name == "":
			return d, badRequest("column %d has no name", i+1)
		case !nameRE.MatchString(c.Name):
			return d, badRequest("the column name %q is not valid: use a letter or underscore, then up to 63 lower-case letters, digits or underscores", c.Name)
		case c.Name == d.PrimaryID || reservedColumns[c.Name]:
			return d, badRequest("the column name %q is reserved: every row has it", c.Name)
		case seen[c.Name]:
			return d, badRequest("the column %q is defined twice", c.Name)
		}
		seen[c.Name] = true
		typ := ""
		for _, t := range columnTypes {
			if strings.EqualFold(c.Type, t) {
				typ = t
			}
		}
		if typ == "" {
			return d, badRequest("the column %q has type %q; the types are %s", c.Name, c.Type, strings.Join(columnTypes, ", "))
		}
		c.Type = typ
		if typ == TypeFile && c.Required {
			return d, badRequest("the file column %q cannot be required: files are uploaded after the row exists", c.Name)
		}
		d.Columns[i] = c
	}
	if d.Columns == nil {
		d.Columns = []Column{}
	}
	return d, nil
}

// storedSchema is what Table.Schema holds.
type storedSchema struct {
	Columns []Column `json:"columns"`
}

func schemaOf(t *keyhold.Table) (*schema, error) {
	var st storedSchema
	if len(t.Schema) > 0 {
		if err := json.Unmarshal(t.Schema, &st); err != nil {
			return nil, keyhold.Internal("dataverse: table schema", err)
		}
	}
	name := strings.ToLower(t.Name)
	sc := &schema{table: name, primary: name + "id", cols: map[string]Column{}, order: st.Columns}
	for _, c := range st.Columns {
		sc.cols[c.Name] = c
	}
	return sc, nil
}

func definitionOf(t *keyhold.Table) (TableDefinition, error) {
	sc, err := schemaOf(t)
	if err != nil {
		return TableDefinition{}, err
	}
	cols := sc.order
	if cols == nil {
		cols = []Column{}
	}
	return TableDefinition{Name: sc.table, DisplayName: t.DisplayName, PrimaryID: sc.primary, Columns: cols, CreatedAt: t.CreatedAt}, nil
}

// table reads a table and its schema; ENotFound in the Dataverse words for
// an unknown one.
func (s *Service) table(r *http.Request, envID, name string) (*schema, error) {
	t, err := s.cfg.Store.GetTable(r.Context(), envID, name)
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound,
			"Resource not found for the segment '%s': the environment has no table %q", name, name)
	}
	if err != nil {
		return nil, err
	}
	return schemaOf(t)
}

func (s *Service) serveTables(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Keyhold.Data/tables/read", "/environments/"+p.envID)
		tables, err := s.cfg.Store.ListTables(ctx, p.envID)
		if err != nil {
			return 0, err
		}
		out := struct {
			Value []TableDefinition `json:"value"`
		}{Value: []TableDefinition{}}
		for _, t := range tables {
			d, err := definitionOf(t)
			if err != nil {
				return 0, err
			}
			out.Value = append(out.Value, d)
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
		return http.StatusOK, nil
	case http.MethodPost:
		var d TableDefinition
		if err := httpapi.DecodeJSON(r, &d, CodeBadRequest); err != nil {
			return 0, err
		}
		d, err := checkDefinition(d)
		if err != nil {
			return 0, err
		}
		httpapi.Annotate(ctx, "Keyhold.Data/tables/write", "/environments/"+p.envID+"/tables/"+d.Name)
		raw, err := json.Marshal(storedSchema{Columns: d.Columns})
		if err != nil {
			return 0, keyhold.Internal("dataverse: table schema", err)
		}
		t := &keyhold.Table{EnvironmentID: p.envID, Name: d.Name, DisplayName: d.DisplayName, Schema: raw, CreatedAt: s.now().UTC()}
		if err := s.cfg.Store.CreateTable(ctx, t); err != nil {
			if keyhold.IsConflict(err) {
				return 0, keyhold.Errorc(keyhold.EConflict, CodeDuplicateRecord, "a table named %q already exists", d.Name)
			}
			return 0, err
		}
		d.CreatedAt = t.CreatedAt
		w.Header().Set("OData-EntityId", base(r, p.envID)+"tables/"+d.Name)
		httpapi.WriteJSON(w, http.StatusCreated, d)
		return http.StatusCreated, nil
	}
	return 0, methodNotAllowed(w, "GET, POST")
}

func (s *Service) serveTable(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	ctx := r.Context()
	scope := "/environments/" + p.envID + "/tables/" + p.defn
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Keyhold.Data/tables/read", scope)
		t, err := s.cfg.Store.GetTable(ctx, p.envID, p.defn)
		if keyhold.IsNotFound(err) {
			return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "the environment has no table %q", p.defn)
		}
		if err != nil {
			return 0, err
		}
		d, err := definitionOf(t)
		if err != nil {
			return 0, err
		}
		httpapi.WriteJSON(w, http.StatusOK, d)
		return http.StatusOK, nil
	case http.MethodDelete:
		httpapi.Annotate(ctx, "Keyhold.Data/tables/delete", scope)
		err := s.cfg.Store.DeleteTable(ctx, p.envID, p.defn)
		if keyhold.IsNotFound(err) {
			return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "the environment has no table %q", p.defn)
		}
		if err != nil {
			return 0, err
		}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	return 0, methodNotAllowed(w, "GET, DELETE")
}
