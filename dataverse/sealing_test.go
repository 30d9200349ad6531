package dataverse_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
)

const row2 = "22222222-2222-4222-8222-222222222222"

// TestMovedCiphertextFailsToOpen tampers with the store directly: a row's
// sealed content copied to another row, table or environment, or a file's
// segments copied to another row, does not open there, and the error names
// the place, never the content.
func TestMovedCiphertextFailsToOpen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withSegmentSize(8))
	f.addEnv(envA, keyhold.WrapPlatform)
	f.addEnv(envB, keyhold.WrapPlatform)
	for _, env := range []string{envA, envB} {
		f.accountsTable(env)
		f.must(201, "POST", api(env)+"tables", `{"name":"contacts","columns":[{"name":"name","type":"String"},{"name":"logo","type":"File"}]}`)
	}
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"Secret Contoso"}`)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row2+`","name":"Plain Fabrikam"}`)
	src, err := f.store.GetRow(ctx, envA, "accounts", row1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name              string
		env, table, rowID string
	}{
		{"another row", envA, "accounts", row2},
		{"another table", envA, "contacts", row1},
		{"another environment", envB, "accounts", row1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moved := &keyhold.SealedRow{EnvironmentID: tc.env, Table: tc.table, ID: tc.rowID, Generation: src.Generation,
				Sealed: src.Sealed, CreatedAt: t0, UpdatedAt: t0}
			if err := f.store.PutRow(ctx, moved, 0); err != nil {
				t.Fatal(err)
			}
			w := f.doJSON("GET", api(tc.env)+tc.table+"("+tc.rowID+")", "")
			code, msg := errorOf(t, w)
			if w.Code != 409 || code != envelope.DetailIntegrity {
				t.Errorf("moved row: %d %s %q, want 409 %s", w.Code, code, msg, envelope.DetailIntegrity)
			}
			if strings.Contains(w.Body.String(), "Secret") || !strings.Contains(msg, tc.rowID) {
				t.Errorf("message %q must name the row and never its content", msg)
			}
			// The list fails the same way rather than show the moved row.
			if w := f.doJSON("GET", api(tc.env)+tc.table, ""); w.Code != 409 || strings.Contains(w.Body.String(), "Secret") {
				t.Errorf("list with a moved row: %d %s", w.Code, w.Body.String())
			}
		})
	}
	// The original still opens.
	if got := f.must(200, "GET", api(envA)+"accounts("+row1+")", ""); got["name"] != "Secret Contoso" {
		t.Errorf("original row: %v", got)
	}

	// A file's segments copied into an upload for another row.
	f.must(201, "POST", api(envA)+"contacts", `{"contactsid":"`+row2+`","name":"x"}`)
	f.must(201, "POST", api(envB)+"accounts", `{"accountsid":"`+row2+`","name":"y"}`)
	f.must(200, "PUT", api(envA)+"accounts("+row1+")/logo", "segment one, segment two")
	fi, err := f.store.GetFile(ctx, keyhold.FileRef{EnvironmentID: envA, Table: "accounts", RowID: row1, Column: "logo"})
	if err != nil {
		t.Fatal(err)
	}
	segs, err := f.store.ListFileSegments(ctx, fi.UploadID, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, dst := range []keyhold.FileRef{
		{EnvironmentID: envA, Table: "accounts", RowID: row2, Column: "logo"},
		{EnvironmentID: envA, Table: "contacts", RowID: row2, Column: "logo"},
		{EnvironmentID: envB, Table: "accounts", RowID: row2, Column: "logo"},
	} {
		up := &keyhold.File{FileRef: dst, UploadID: "moved-" + string(rune('a'+i)), SegmentSize: fi.SegmentSize, CreatedAt: t0}
		if err := f.store.BeginFileUpload(ctx, up); err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if err := f.store.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: up.UploadID, Index: s.Index, Generation: s.Generation, Sealed: s.Sealed}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.store.CommitFileUpload(ctx, up.UploadID, fi.Size, 0, t0); err != nil {
			t.Fatal(err)
		}
		w := f.do("GET", api(dst.EnvironmentID)+dst.Table+"("+dst.RowID+")/logo", nil)
		if code, _ := errorOf(t, w); w.Code != 409 || code != envelope.DetailIntegrity || strings.Contains(w.Body.String(), "segment") && strings.Contains(w.Body.String(), "segment one") {
			t.Errorf("moved file to %s/%s: %d %s", dst.Table, dst.EnvironmentID, w.Code, w.Body.String())
		}
	}
	// Segments swapped within a file do not open either.
	up := &keyhold.File{FileRef: fi.FileRef, UploadID: "swapped", SegmentSize: fi.SegmentSize, CreatedAt: t0}
	if err := f.store.BeginFileUpload(ctx, up); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if err := f.store.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: up.UploadID, Index: (s.Index + 1) % int64(len(segs)), Generation: s.Generation, Sealed: s.Sealed}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.store.CommitFileUpload(ctx, up.UploadID, fi.Size, 0, t0); err != nil {
		t.Fatal(err)
	}
	if w := f.do("GET", api(envA)+"accounts("+row1+")/logo", nil); w.Code != 409 {
		t.Errorf("swapped segments: %d %q", w.Code, w.Body.String())
	}
}

// TestNoPlaintextAtRest writes rows and a file with a marker and looks for
// it in the SQLite main file and WAL, before and after a checkpoint. The
// same run with sealing switched off must find it, or the search proves
// nothing.
func TestNoPlaintextAtRest(t *testing.T) {
	const marker = "MARKER-7f3a9c-do-not-store"
	for _, tc := range []struct {
		name      string
		plaintext bool
	}{{"sealed", false}, {"plaintext baseline", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *dataverse.Config) { c.Plaintext = tc.plaintext })
			f.addEnv(envA, keyhold.WrapPlatform)
			f.accountsTable(envA)
			for i := range 50 {
				f.must(201, "POST", api(envA)+"accounts", `{"name":"`+marker+`","employees":`+string(rune('0'+i%10))+`}`)
			}
			f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"x"}`)
			f.must(200, "PUT", api(envA)+"accounts("+row1+")/logo", strings.Repeat(marker, 100))

			found := func() []string {
				var in []string
				for _, p := range []string{f.dbPath, f.dbPath + "-wal"} {
					b, err := os.ReadFile(p)
					if err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
					if bytes.Contains(b, []byte(marker)) {
						in = append(in, p)
					}
				}
				return in
			}
			before := found()
			db, err := sql.Open("sqlite", f.dbPath)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				t.Fatal(err)
			}
			db.Close()
			after := found()
			if tc.plaintext {
				if len(before) == 0 || len(after) == 0 {
					t.Fatalf("the baseline stores plaintext, yet the marker was not found (before %v, after %v): the search is broken", before, after)
				}
				return
			}
			if len(before)+len(after) > 0 {
				t.Errorf("row content found at rest: before the checkpoint in %v, after it in %v", before, after)
			}
		})
	}
}

// TestWarmPathMakesNoVaultCalls: once an environment's key is cached, data
// requests of every kind call no vault.
func TestWarmPathMakesNoVaultCalls(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapCustomer)
	f.accountsTable(envA)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"warm"}`)
	if got := f.calls.Calls(kms.CallUnwrap); got != 1 {
		t.Fatalf("the first write unwrapped %d times, want 1", got)
	}
	for i := range 1000 {
		switch i % 4 {
		case 0:
			f.must(200, "GET", api(envA)+"accounts("+row1+")", "")
		case 1:
			f.must(200, "PATCH", api(envA)+"accounts("+row1+")", `{"employees":1}`)
		case 2:
			f.must(201, "POST", api(envA)+"accounts", `{"name":"n"}`)
		case 3:
			f.must(200, "GET", api(envA)+"accounts?$top=5", "")
		}
	}
	if got := f.calls.Calls(kms.CallUnwrap) + f.calls.Calls(kms.CallWrap) + f.calls.Calls(kms.CallCheck); got != 1 {
		t.Errorf("vault calls after 1000 warm requests: %d, want still 1", got)
	}
}

func FuzzRowBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"Contoso","revenue":1.5,"employees":10,"active":true,"founded":"2001-02-03T04:05:06Z"}`,
		`{"accountsid":"11111111-1111-4111-8111-111111111111","name":null}`,
		`{"@odata.etag":"W/\"1\"","createdon":"x","name":"a"}`,
		`{"employees":1e3}`, `{"employees":"1"}`, `[]`, `null`, `{"name":"\ud800"}`, `{"NAME":"a","name":"b"}`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	sc := dataverse.AccountsSchema()
	f.Fuzz(func(t *testing.T, body []byte) {
		id, cols, err := dataverse.ParseRow(sc, body)
		if err != nil {
			if keyhold.ErrorCode(err) != keyhold.EInvalid {
				t.Fatalf("error code %q for %q: %v", keyhold.ErrorCode(err), body, err)
			}
			return
		}
		if id != "" && len(id) != 36 {
			t.Fatalf("id %q", id)
		}
		// What was accepted is canonical: it parses again to itself.
		again, err := json.Marshal(cols)
		if err != nil {
			t.Fatal(err)
		}
		_, cols2, err := dataverse.ParseRow(sc, again)
		if err != nil {
			t.Fatalf("accepted %q but not its own canonical form %q: %v", body, again, err)
		}
		if b2, _ := json.Marshal(cols2); !bytes.Equal(b2, again) {
			t.Fatalf("canonical form changed: %q -> %q", again, b2)
		}
	})
}
