package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeGraph answers Resource Graph queries over five rows, a page of $top
// rows at a time, with the offset as its skip token.
type fakeGraph struct {
	mu       sync.Mutex
	requests []map[string]any
}

func (f *fakeGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/providers/Microsoft.ResourceGraph/resources" ||
		r.URL.Query().Get("api-version") != APIVersionResourceGraph || r.Header.Get("Authorization") != "Bearer tok-"+AudienceARM {
		http.Error(w, `{"error":{"code":"Wrong","message":"wrong request"}}`, http.StatusBadRequest)
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.requests = append(f.requests, body)
	f.mu.Unlock()
	if strings.Contains(body["query"].(string), "=~~") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"code":"BadRequest","message":"Query is invalid: unexpected character '~' (line 1, column 26, at '~').","details":[{"code":"ParserFailure","line":1}]}}`))
		return
	}
	opts := body["options"].(map[string]any)
	top := int(opts["$top"].(float64))
	off, _ := strconv.Atoi(stringOr(opts["$skipToken"]))
	var rows [][]any
	for i := off; i < 5 && i < off+top; i++ {
		rows = append(rows, []any{"r" + strconv.Itoa(i), map[string]any{"n": i}})
	}
	resp := map[string]any{"totalRecords": 5, "count": len(rows), "resultTruncated": "false", "facets": []any{},
		"data": map[string]any{"columns": []map[string]string{{"name": "name", "type": "string"}, {"name": "properties", "type": "object"}}, "rows": rows}}
	if off+top < 5 {
		resp["$skipToken"] = strconv.Itoa(off + top)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}

func TestQueryResources(t *testing.T) {
	tests := []struct {
		first     int
		wantRows  string
		wantPages int
		wantTops  string
	}{
		{first: 0, wantRows: "r0,r1,r2,r3,r4", wantPages: 1, wantTops: "1000"},
		{first: 3, wantRows: "r0,r1,r2", wantPages: 1, wantTops: "3"},
		{first: 7, wantRows: "r0,r1,r2,r3,r4", wantPages: 1, wantTops: "7"},
	}
	for _, tt := range tests {
		f := &fakeGraph{}
		_, c := newServer(t, f)
		res, err := c.QueryResources(context.Background(), "resources | project name, properties", GraphQueryOptions{First: tt.first, Subscriptions: []string{"s1"}})
		if err != nil {
			t.Fatalf("first %d: %v", tt.first, err)
		}
		var got []string
		for _, o := range res.Objects() {
			got = append(got, o.Get("name").(string))
		}
		if strings.Join(got, ",") != tt.wantRows || res.TotalRecords != 5 || len(f.requests) != tt.wantPages {
			t.Errorf("first %d: rows %v, total %d, %d requests; want %s in %d", tt.first, got, res.TotalRecords, len(f.requests), tt.wantRows, tt.wantPages)
		}
		var tops []string
		for _, r := range f.requests {
			o := r["options"].(map[string]any)
			tops = append(tops, strconv.Itoa(int(o["$top"].(float64))))
			if o["resultFormat"] != "table" || r["query"] != "resources | project name, properties" || r["subscriptions"].([]any)[0] != "s1" {
				t.Errorf("request %v", r)
			}
		}
		if strings.Join(tops, ",") != tt.wantTops {
			t.Errorf("first %d: $top %v, want %s", tt.first, tops, tt.wantTops)
		}
	}
}

// pagedGraph is fakeGraph with two rows a page at most, so that the client
// must follow skip tokens.
type pagedGraph struct{ fakeGraph }

func (p *pagedGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	body["options"].(map[string]any)["$top"] = float64(min(2, int(body["options"].(map[string]any)["$top"].(float64))))
	b, _ := json.Marshal(body)
	r.Body = http.NoBody
	r2 := r.Clone(r.Context())
	r2.Body = readCloser{strings.NewReader(string(b))}
	p.fakeGraph.ServeHTTP(w, r2)
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestQueryResourcesFollowsSkipTokens(t *testing.T) {
	tests := []struct {
		first     int
		wantRows  string
		wantPages int
	}{
		{0, "r0,r1,r2,r3,r4", 3},
		{3, "r0,r1,r2", 2},
	}
	for _, tt := range tests {
		p := &pagedGraph{}
		_, c := newServer(t, p)
		res, err := c.QueryResources(context.Background(), "resources", GraphQueryOptions{First: tt.first})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, row := range res.Rows {
			got = append(got, row[0].(string))
		}
		if strings.Join(got, ",") != tt.wantRows || len(p.requests) != tt.wantPages {
			t.Errorf("first %d: rows %v in %d requests, want %s in %d", tt.first, got, len(p.requests), tt.wantRows, tt.wantPages)
		}
		if _, ok := p.requests[0]["subscriptions"]; ok {
			t.Errorf("subscriptions sent without being asked: %v", p.requests[0])
		}
	}
}

func TestQueryResourcesErrors(t *testing.T) {
	_, c := newServer(t, &fakeGraph{})
	_, err := c.QueryResources(context.Background(), "resources | where type =~~ 'x'", GraphQueryOptions{})
	if StatusCode(err) != 400 || !strings.Contains(err.Error(), "line 1, column 26") || !strings.Contains(err.Error(), "(BadRequest)") {
		t.Errorf("err = %v", err)
	}
	if _, err := c.QueryResources(context.Background(), "resources", GraphQueryOptions{First: -1}); err == nil {
		t.Error("a negative First was accepted")
	}
}

func TestGraphObjectJSONKeepsColumnOrder(t *testing.T) {
	res := &GraphResult{Columns: []GraphColumn{{Name: "zeta"}, {Name: "alpha"}, {Name: "identity_principalId"}}, Rows: [][]any{{"z", 1.0, nil}}}
	b, err := json.Marshal(res.Objects())
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"zeta":"z","alpha":1,"identity_principalId":null}]`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
