package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/dataverse/dataversetest"
)

const dataEnv = "00000000-0000-0000-0000-0000000000e1"

type audienceTokens struct{}

func (audienceTokens) Token(_ context.Context, aud string) (string, error) {
	return "token-for " + aud, nil
}

// newDataClient serves the real data API, accepting only tokens for the
// data audience.
func newDataClient(t *testing.T) (*client.Client, *dataversetest.Envs) {
	envs := dataversetest.New(t)
	envs.Add(t, dataEnv, "t1", keyhold.WrapCustomer)
	h := envs.Service().Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer token-for "+client.AudienceData {
			w.WriteHeader(401)
			return
		}
		c := &keyhold.Caller{Principal: &keyhold.Principal{ID: "u1", TenantID: "t1"}, TenantID: "t1"}
		h.ServeHTTP(w, r.WithContext(keyhold.WithCaller(r.Context(), c)))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Server: srv.URL, HTTPClient: srv.Client(), Tokens: audienceTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	return c, envs
}

func TestDataClient(t *testing.T) {
	ctx := context.Background()
	c, envs := newDataClient(t)
	tbl, err := c.CreateTable(ctx, dataEnv, client.DataTable{Name: "Notes", Columns: []client.DataColumn{
		{Name: "title", Type: "String", Required: true}, {Name: "n", Type: "Integer"}, {Name: "body", Type: "File"}}})
	if err != nil || tbl.Name != "notes" || tbl.PrimaryID != "notesid" || len(tbl.Columns) != 3 {
		t.Fatalf("CreateTable = %+v, %v", tbl, err)
	}
	if ts, err := c.ListTables(ctx, dataEnv); err != nil || len(ts) != 1 {
		t.Fatalf("ListTables = %v, %v", ts, err)
	}
	var ids []string
	for i := range 7 {
		r, err := c.CreateRow(ctx, dataEnv, "notes", client.DataRow{"title": "note", "n": i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r["notesid"].(string))
	}
	rows, err := c.ListRows(ctx, dataEnv, "notes", 0, 3)
	if err != nil || len(rows) != 7 {
		t.Fatalf("ListRows in pages of 3 = %d rows, %v", len(rows), err)
	}
	if rows, err := c.ListRows(ctx, dataEnv, "notes", 5, 2); err != nil || len(rows) != 5 {
		t.Fatalf("ListRows top 5 = %d rows, %v", len(rows), err)
	}
	r, err := c.GetRow(ctx, dataEnv, "notes", ids[0])
	if err != nil || r.ETag() != `W/"1"` {
		t.Fatalf("GetRow = %v, %v", r, err)
	}
	r, err = c.UpdateRow(ctx, dataEnv, "notes", ids[0], client.DataRow{"title": "changed"}, r.ETag())
	if err != nil || r["title"] != "changed" || r.ETag() != `W/"2"` {
		t.Fatalf("UpdateRow = %v, %v", r, err)
	}
	_, err = c.UpdateRow(ctx, dataEnv, "notes", ids[0], client.DataRow{"title": "lost"}, `W/"1"`)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 412 || ce.Code != "0x80060882" {
		t.Errorf("stale UpdateRow: %v", err)
	}

	content := bytes.Repeat([]byte("file content "), 100_000)
	f, err := c.UploadFile(ctx, dataEnv, "notes", ids[0], "body", bytes.NewReader(content), int64(len(content)), "body.txt", "text/plain", "")
	if err != nil || f.Size != int64(len(content)) || f.FileName != "body.txt" {
		t.Fatalf("UploadFile = %+v, %v", f, err)
	}
	var got bytes.Buffer
	f, err = c.DownloadFile(ctx, dataEnv, "notes", ids[0], "body", &got)
	if err != nil || !bytes.Equal(got.Bytes(), content) || f.FileName != "body.txt" || f.Version != 1 || f.Size != int64(len(content)) {
		t.Fatalf("DownloadFile = %+v, %d bytes, %v", f, got.Len(), err)
	}

	if err := c.DeleteRow(ctx, dataEnv, "notes", ids[0], ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRow(ctx, dataEnv, "notes", ids[0]); !client.IsNotFound(err) {
		t.Errorf("deleted row: %v", err)
	}
	if _, err := c.DownloadFile(ctx, dataEnv, "notes", ids[0], "body", &got); !client.IsNotFound(err) {
		t.Errorf("file of a deleted row: %v", err)
	}
	envs.Lock(dataEnv, "the key was disabled")
	_, err = c.GetRow(ctx, dataEnv, "notes", ids[1])
	if !errors.As(err, &ce) || ce.StatusCode != 403 || ce.Code != "EnvironmentLocked" || !strings.Contains(ce.Message, "the key was disabled") {
		t.Errorf("locked: %v", err)
	}
	envs.Unlock(dataEnv)
	if err := c.DeleteTable(ctx, dataEnv, "notes"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTable(ctx, dataEnv, "notes"); !client.IsNotFound(err) {
		t.Errorf("deleted table: %v", err)
	}
}
