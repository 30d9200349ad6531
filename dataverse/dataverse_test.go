package dataverse_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
)

const row1 = "11111111-1111-4111-8111-111111111111"

func TestTables(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)

	got := f.must(200, "GET", api(envA)+"tables/ACCOUNTS", "")
	if got["name"] != "accounts" || got["primaryIdAttribute"] != "accountsid" {
		t.Errorf("table = %v, want name accounts with primary id accountsid", got)
	}
	if cols := got["columns"].([]any); len(cols) != 6 || cols[1].(map[string]any)["type"] != "Decimal" {
		t.Errorf("columns = %v, want 6 with canonical types", cols)
	}
	w := f.doJSON("POST", api(envA)+"tables", `{"name":"accounts"}`)
	if code, _ := errorOf(t, w); w.Code != 409 || code != dataverse.CodeDuplicateRecord {
		t.Errorf("duplicate table: %d %s", w.Code, code)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"no name", `{"columns":[]}`, "no name"},
		{"bad name", `{"name":"1abc"}`, "not valid"},
		{"reserved", `{"name":"tables"}`, "not valid"},
		{"bad type", `{"name":"x","columns":[{"name":"a","type":"Money"}]}`, `type "Money"`},
		{"twice", `{"name":"x","columns":[{"name":"a","type":"String"},{"name":"A","type":"String"}]}`, "twice"},
		{"primary", `{"name":"x","columns":[{"name":"xid","type":"String"}]}`, "reserved"},
		{"required file", `{"name":"x","columns":[{"name":"f","type":"File","required":true}]}`, "cannot be required"},
		{"malformed", `{"name":`, "could not be deserialized"},
		{"empty", ``, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.doJSON("POST", api(envA)+"tables", tc.body)
			code, msg := errorOf(t, w)
			if w.Code != 400 || code != dataverse.CodeBadRequest || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %s %q, want 400 %s mentioning %q", w.Code, code, msg, dataverse.CodeBadRequest, tc.want)
			}
		})
	}
	f.must(201, "POST", api(envA)+"tables", `{"name":"contacts"}`)
	list := f.must(200, "GET", api(envA)+"tables", "")
	if n := len(list["value"].([]any)); n != 2 {
		t.Errorf("list has %d tables, want 2", n)
	}
	f.must(204, "DELETE", api(envA)+"tables/contacts", "")
	w = f.doJSON("GET", api(envA)+"tables/contacts", "")
	if code, _ := errorOf(t, w); w.Code != 404 || code != dataverse.CodeResourceNotFound {
		t.Errorf("deleted table: %d %s", w.Code, code)
	}
	w = f.doJSON("DELETE", api(envA)+"tables/contacts", "")
	if w.Code != 404 {
		t.Errorf("deleting a deleted table: %d", w.Code)
	}
	w = f.doJSON("PUT", api(envA)+"tables", `{}`)
	if w.Code != 405 || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("PUT tables: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestRows(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)
	base := api(envA) + "accounts"

	w := f.doJSON("POST", base, `{"accountsid":"`+strings.ToUpper(row1)+`","name":"Contoso","revenue":1.5,"employees":10,"active":true,"founded":"2001-02-03T04:05:06+01:00"}`)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body.String())
	}
	if got, want := w.Header().Get("OData-EntityId"), "http://example.com"+base+"("+row1+")"; got != want {
		t.Errorf("OData-EntityId = %q, want %q", got, want)
	}
	if got := w.Header().Get("ETag"); got != `W/"1"` {
		t.Errorf("ETag = %q", got)
	}
	got := f.must(200, "GET", base+"("+row1+")", "")
	for k, want := range map[string]any{"name": "Contoso", "revenue": 1.5, "employees": float64(10), "active": true,
		"founded": "2001-02-03T03:05:06Z", "accountsid": row1, "@odata.etag": `W/"1"`} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// A generated id.
	gen := f.must(201, "POST", base, `{"name":"Fabrikam"}`)
	if id, _ := gen["accountsid"].(string); len(id) != 36 {
		t.Errorf("generated id %q", id)
	}

	// PATCH at the right version merges; at a stale one it is refused.
	got = f.must(200, "PATCH", base+"("+row1+")", `{"employees":11,"revenue":null}`, "If-Match", `W/"1"`)
	if got["employees"] != float64(11) || got["name"] != "Contoso" || got["revenue"] != nil || got["@odata.etag"] != `W/"2"` {
		t.Errorf("patched row = %v", got)
	}
	for _, tc := range []struct {
		name       string
		method     string
		path, body string
		hdr        []string
		status     int
		code       string
	}{
		{"stale If-Match", "PATCH", base + "(" + row1 + ")", `{"employees":12}`, []string{"If-Match", `W/"1"`}, 412, dataverse.CodeVersionMismatch},
		{"stale delete", "DELETE", base + "(" + row1 + ")", ``, []string{"If-Match", `W/"1"`}, 412, dataverse.CodeVersionMismatch},
		{"If-None-Match on existing", "PATCH", base + "(" + row1 + ")", `{"employees":12}`, []string{"If-None-Match", "*"}, 412, dataverse.CodeVersionMismatch},
		{"If-Match * on missing", "PATCH", base + "(22222222-2222-4222-8222-222222222222)", `{"name":"x"}`, []string{"If-Match", "*"}, 404, dataverse.CodeRecordNotFound},
		{"bad If-Match", "PATCH", base + "(" + row1 + ")", `{}`, []string{"If-Match", `"abc"`}, 400, dataverse.CodeBadRequest},
		{"duplicate id", "POST", base, `{"accountsid":"` + row1 + `","name":"x"}`, nil, 409, dataverse.CodeDuplicateRecord},
		{"malformed JSON", "POST", base, `{"name":`, nil, 400, dataverse.CodeBadRequest},
		{"not an object", "POST", base, `[1]`, nil, 400, dataverse.CodeBadRequest},
		{"unknown property", "POST", base, `{"name":"x","color":"red"}`, nil, 400, dataverse.CodeBadRequest},
		{"wrong type", "POST", base, `{"name":5}`, nil, 400, dataverse.CodeBadRequest},
		{"fraction for integer", "POST", base, `{"name":"x","employees":1.5}`, nil, 400, dataverse.CodeBadRequest},
		{"bad date", "POST", base, `{"name":"x","founded":"yesterday"}`, nil, 400, dataverse.CodeBadRequest},
		{"file in JSON", "POST", base, `{"name":"x","logo":"abc"}`, nil, 400, dataverse.CodeBadRequest},
		{"required missing", "POST", base, `{"employees":1}`, nil, 400, dataverse.CodeBadRequest},
		{"required cleared", "PATCH", base + "(" + row1 + ")", `{"name":null}`, nil, 400, dataverse.CodeBadRequest},
		{"id not a GUID", "POST", base, `{"accountsid":"abc","name":"x"}`, nil, 400, dataverse.CodeBadRequest},
		{"URL id not a GUID", "GET", base + "(abc)", ``, nil, 400, dataverse.CodeBadRequest},
		{"body id differs", "PATCH", base + "(" + row1 + ")", `{"accountsid":"22222222-2222-4222-8222-222222222222"}`, nil, 400, dataverse.CodeBadRequest},
		{"unknown table", "GET", api(envA) + "widgets", ``, nil, 404, dataverse.CodeResourceNotFound},
		{"unknown row", "GET", base + "(22222222-2222-4222-8222-222222222222)", ``, nil, 404, dataverse.CodeRecordNotFound},
		{"unknown environment", "GET", api(envB) + "accounts", ``, nil, 404, "EnvironmentNotFound"},
		{"bad path", "GET", "/environments/" + envA + "/api/data/v9.1/accounts", ``, nil, 404, dataverse.CodeResourceNotFound},
		{"unsupported option", "GET", base + "?$filter=name%20eq%20'x'", ``, nil, 400, dataverse.CodeBadRequest},
		{"bad skiptoken", "GET", base + "?$skiptoken=zz", ``, nil, 400, dataverse.CodeBadRequest},
		{"method", "PUT", base + "(" + row1 + ")", `{}`, nil, 405, "0x8006088a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.doJSON(tc.method, tc.path, tc.body, tc.hdr...)
			code, msg := errorOf(t, w)
			if w.Code != tc.status || code != tc.code {
				t.Errorf("got %d %s (%s), want %d %s", w.Code, code, msg, tc.status, tc.code)
			}
			if strings.Contains(msg, "Contoso") {
				t.Errorf("message %q shows row content", msg)
			}
		})
	}
	// Nothing above changed the row.
	if got := f.must(200, "GET", base+"("+row1+")", ""); got["@odata.etag"] != `W/"2"` || got["employees"] != float64(11) {
		t.Errorf("after refused writes: %v", got)
	}
	// PATCH without If-Match upserts a missing row and updates an existing one.
	up := "33333333-3333-4333-8333-333333333333"
	f.must(201, "PATCH", base+"("+up+")", `{"name":"Upserted"}`)
	if got := f.must(200, "PATCH", base+"("+up+")", `{"employees":3}`, "If-Match", "*"); got["name"] != "Upserted" || got["employees"] != float64(3) {
		t.Errorf("upsert then update: %v", got)
	}
	f.must(204, "DELETE", base+"("+row1+")", "", "If-Match", `W/"2"`)
	if w := f.doJSON("GET", base+"("+row1+")", ""); w.Code != 404 {
		t.Errorf("deleted row: %d", w.Code)
	}
	if w := f.doJSON("DELETE", base+"("+row1+")", ""); w.Code != 404 {
		t.Errorf("deleting a deleted row: %d", w.Code)
	}
}

func TestRowPaging(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)
	base := api(envA) + "accounts"
	const n = 25
	for i := range n {
		f.must(201, "POST", base, fmt.Sprintf(`{"accountsid":"00000000-0000-4000-8000-%012d","name":"row %d"}`, i, i))
	}
	for _, tc := range []struct {
		name  string
		query string
		page  int
		want  []int // page sizes
	}{
		{"all", "", 0, []int{25}},
		{"pages of 10", "", 10, []int{10, 10, 5}},
		{"top 15 in pages of 10", "?$top=15", 10, []int{10, 5}},
		{"top 7", "?$top=7", 0, []int{7}},
		{"top 0", "?$top=0", 0, []int{0}},
		{"pages of 25", "", 25, []int{25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.page > 0 {
				hdr = []string{"Prefer", fmt.Sprintf("odata.include-annotations=*, odata.maxpagesize=%d", tc.page)}
			}
			var sizes []int
			seen := 0
			next := base + tc.query
			for next != "" {
				got := f.must(200, "GET", next, "", hdr...)
				rows := got["value"].([]any)
				sizes = append(sizes, len(rows))
				for _, r := range rows {
					want := fmt.Sprintf("row %d", seen)
					if r.(map[string]any)["name"] != want {
						t.Fatalf("row %d is %v, want %s", seen, r, want)
					}
					seen++
				}
				next, _ = got["@odata.nextLink"].(string)
				next = strings.TrimPrefix(next, "http://example.com")
				if len(sizes) > 10 {
					t.Fatal("paging does not end")
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.want) {
				t.Errorf("pages %v, want %v", sizes, tc.want)
			}
		})
	}
}

func TestLockedEnvironmentRefused(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapCustomer)
	f.accountsTable(envA)
	base := api(envA) + "accounts"
	f.must(201, "POST", base, `{"accountsid":"`+row1+`","name":"Contoso"}`)
	f.lock(envA, "the key k1 in vault v1 is disabled")
	if s := f.ring.Stats(); s.Keys != 0 {
		t.Errorf("keys in memory after the lock: %d", s.Keys)
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", base + "(" + row1 + ")", ""},
		{"GET", base, ""},
		{"POST", base, `{"name":"x"}`},
		{"PATCH", base + "(" + row1 + ")", `{"name":"y"}`},
		{"DELETE", base + "(" + row1 + ")", ""},
		{"GET", api(envA) + "tables", ""},
		{"PUT", base + "(" + row1 + ")/logo", "bytes"},
		{"GET", base + "(" + row1 + ")/logo", ""},
	} {
		w := f.doJSON(req.method, req.path, req.body)
		code, msg := errorOf(t, w)
		if w.Code != http.StatusForbidden || code != dataverse.CodeEnvironmentLocked || !strings.Contains(msg, "k1 in vault v1 is disabled") {
			t.Errorf("%s %s on a locked environment: %d %s %q", req.method, req.path, w.Code, code, msg)
		}
	}
	if got := f.svc.Metrics().Count(dataverse.OutcomeLocked); got != 8 {
		t.Errorf("locked requests counted: %d, want 8", got)
	}
	// Nothing is lost: unlocked, the row reads as it was.
	f.unlock(envA)
	if got := f.must(200, "GET", base+"("+row1+")", ""); got["name"] != "Contoso" {
		t.Errorf("after unlock: %v", got)
	}
}

func TestMetricsByOutcome(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)
	f.doJSON("GET", api(envA)+"accounts("+row1+")", "")
	f.doJSON("POST", api(envA)+"accounts", `{`)
	for _, tc := range []struct {
		outcome string
		want    uint64
	}{{dataverse.OutcomeOK, 1}, {dataverse.OutcomeNotFound, 1}, {dataverse.OutcomeInvalid, 1}, {dataverse.OutcomeLocked, 0}} {
		if got := f.svc.Metrics().Count(tc.outcome); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.outcome, got, tc.want)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapPlatform)
	f.caller = nil
	w := f.doJSON("GET", api(envA)+"tables", "")
	if w.Code != 401 {
		t.Errorf("no caller: %d", w.Code)
	}
}

func TestIsFileRequest(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/environments/e/api/data/v9.2/accounts(" + row1 + ")/logo", true},
		{"/environments/e/api/data/v9.2/accounts(" + row1 + ")/logo/$value", true},
		{"/environments/e/api/data/v9.2/accounts(" + row1 + ")", false},
		{"/environments/e/api/data/v9.2/accounts", false},
		{"/environments/e/api/data/v9.2/tables/accounts", false},
		{"/environments/e/other/accounts(1)/logo", false},
	} {
		if got := dataverse.IsFileRequest(tc.path); got != tc.want {
			t.Errorf("IsFileRequest(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
