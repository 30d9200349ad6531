package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// sealedRow returns a row whose sealed bytes start with content and carry
// bytes that text handling would mangle.
func sealedRow(env, table, id string, gen int64, content string) *keyhold.SealedRow {
	return &keyhold.SealedRow{EnvironmentID: env, Table: table, ID: id, Generation: gen,
		Sealed:    append([]byte(content), 0x00, 0xff, '\'', '\\'),
		CreatedAt: t0, UpdatedAt: t0}
}

// content returns what sealedRow was given.
func content(r *keyhold.SealedRow) string {
	return strings.TrimSuffix(string(r.Sealed), "\x00\xff'\\")
}

// mustTables creates an environment with the given tables.
func mustTables(t *testing.T, s keyhold.Store, env string, tables ...string) {
	t.Helper()
	mustEnv(t, s, env)
	for _, name := range tables {
		must(t, s.CreateTable(context.Background(), &keyhold.Table{EnvironmentID: env, Name: name, CreatedAt: t0}))
	}
}

func rowIDs(rows []*keyhold.SealedRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Table+"/"+r.ID)
	}
	return out
}

func testTables(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	mustEnv(t, s, "env-b")
	acct := &keyhold.Table{EnvironmentID: "env-a", Name: "Account", DisplayName: "Accounts",
		Schema: json.RawMessage(`{"columns":[{"name":"name","type":"string"}]}`), CreatedAt: t0}
	must(t, s.CreateTable(ctx, acct))
	contact := &keyhold.Table{EnvironmentID: "env-a", Name: "contact", CreatedAt: t0}
	must(t, s.CreateTable(ctx, contact))
	must(t, s.CreateTable(ctx, &keyhold.Table{EnvironmentID: "env-b", Name: "account", CreatedAt: t0}))

	got, err := s.GetTable(ctx, "env-a", "ACCOUNT")
	must(t, err)
	same(t, "GetTable(other case)", got, acct)
	list, err := s.ListTables(ctx, "env-a")
	must(t, err)
	same(t, "ListTables", list, []*keyhold.Table{acct, contact})

	for _, tt := range []struct {
		name string
		tbl  *keyhold.Table
		code string
	}{
		{"taken, other case", &keyhold.Table{EnvironmentID: "env-a", Name: "CONTACT"}, keyhold.EConflict},
		{"no name", &keyhold.Table{EnvironmentID: "env-a"}, keyhold.EInvalid},
		{"bad schema", &keyhold.Table{EnvironmentID: "env-a", Name: "x", Schema: json.RawMessage(`{`)}, keyhold.EInvalid},
		{"no environment", &keyhold.Table{EnvironmentID: "env-nope", Name: "x"}, keyhold.ENotFound},
	} {
		wantCode(t, "CreateTable("+tt.name+")", s.CreateTable(ctx, tt.tbl), tt.code)
	}

	// DeleteTable takes the table's rows and files, and nothing else.
	for _, table := range []string{"account", "contact"} {
		must(t, s.PutRow(ctx, sealedRow("env-a", table, "r1", 1, "x"), -1))
	}
	must(t, s.PutRow(ctx, sealedRow("env-b", "account", "r1", 1, "x"), -1))
	f := commitFile(t, s, keyhold.FileRef{EnvironmentID: "env-a", Table: "account", RowID: "r1", Column: "doc"}, "up-1", 2, 1)
	must(t, s.DeleteTable(ctx, "env-a", "ACCOUNT"))
	_, err = s.GetTable(ctx, "env-a", "account")
	wantCode(t, "GetTable after delete", err, keyhold.ENotFound)
	_, err = s.GetRow(ctx, "env-a", "account", "r1")
	wantCode(t, "GetRow after DeleteTable", err, keyhold.ENotFound)
	_, err = s.GetFileSegment(ctx, f.UploadID, 0)
	wantCode(t, "GetFileSegment after DeleteTable", err, keyhold.ENotFound)
	for _, k := range [][2]string{{"env-a", "contact"}, {"env-b", "account"}} {
		_, err = s.GetRow(ctx, k[0], k[1], "r1")
		must(t, err)
	}
	wantCode(t, "DeleteTable(missing)", s.DeleteTable(ctx, "env-a", "account"), keyhold.ENotFound)
	// A table made again under the name starts empty.
	must(t, s.CreateTable(ctx, &keyhold.Table{EnvironmentID: "env-a", Name: "account"}))
	rows, err := s.ListRows(ctx, "env-a", "account", "", 0)
	must(t, err)
	same(t, "rows of the new table", rowIDs(rows), []string{})
}

func testRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "Account")

	r := sealedRow("env-a", "ACCOUNT", "Row-1", 1, "v1")
	must(t, s.PutRow(ctx, r, -1))
	if r.Version != 1 || r.Table != "account" {
		t.Errorf("PutRow(create): Version %d Table %q, want 1 and \"account\"", r.Version, r.Table)
	}
	got, err := s.GetRow(ctx, "env-a", "Account", "Row-1")
	must(t, err)
	same(t, "GetRow", got, r)
	_, err = s.GetRow(ctx, "env-a", "account", "row-1")
	wantCode(t, "GetRow(id in other case)", err, keyhold.ENotFound)

	// Each step writes content "v<n>"; created stays, updated moves.
	steps := []struct {
		name      string
		ifVersion int64
		code      string
		want      int64 // version after
	}{
		{"create again", -1, keyhold.EConflict, 1},
		{"replace any", 0, "", 2},
		{"replace at version", 2, "", 3},
		{"replace at stale version", 2, keyhold.EConflict, 3},
		{"replace at future version", 9, keyhold.EConflict, 3},
	}
	for i, st := range steps {
		w := sealedRow("env-a", "account", "Row-1", 2, fmt.Sprint("v", i+2))
		w.CreatedAt, w.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Duration(i+1)*time.Minute)
		err := s.PutRow(ctx, w, st.ifVersion)
		if st.code != "" {
			wantCode(t, "PutRow("+st.name+")", err, st.code)
		} else {
			must(t, err)
			if w.Version != st.want || !w.CreatedAt.Equal(t0) {
				t.Errorf("PutRow(%s): Version %d CreatedAt %v, want %d and the first write's %v",
					st.name, w.Version, w.CreatedAt, st.want, t0)
			}
		}
		got, err := s.GetRow(ctx, "env-a", "account", "Row-1")
		must(t, err)
		if got.Version != st.want {
			t.Errorf("after PutRow(%s): stored Version %d, want %d", st.name, got.Version, st.want)
		}
		if st.code == "" && (content(got) != content(w) || !got.UpdatedAt.Equal(w.UpdatedAt) || got.Generation != 2) {
			t.Errorf("after PutRow(%s): content %q updated %v gen %d, want %q %v 2",
				st.name, content(got), got.UpdatedAt, got.Generation, content(w), w.UpdatedAt)
		}
	}

	for _, tt := range []struct {
		name      string
		r         *keyhold.SealedRow
		ifVersion int64
		code      string
	}{
		{"at version, missing row", sealedRow("env-a", "account", "nope", 1, "x"), 1, keyhold.ENotFound},
		{"missing table", sealedRow("env-a", "contact", "r", 1, "x"), -1, keyhold.ENotFound},
		{"missing table, replace", sealedRow("env-a", "contact", "r", 1, "x"), 0, keyhold.ENotFound},
		{"missing environment", sealedRow("env-nope", "account", "r", 1, "x"), 0, keyhold.ENotFound},
		{"generation 0", sealedRow("env-a", "account", "r", 0, "x"), 0, keyhold.EInvalid},
		{"no content", &keyhold.SealedRow{EnvironmentID: "env-a", Table: "account", ID: "r", Generation: 1}, 0, keyhold.EInvalid},
		{"no id", sealedRow("env-a", "account", "", 1, "x"), 0, keyhold.EInvalid},
		{"no table", sealedRow("env-a", "", "r", 1, "x"), 0, keyhold.EInvalid},
		{"bad ifVersion", sealedRow("env-a", "account", "r", 1, "x"), -2, keyhold.EInvalid},
	} {
		wantCode(t, "PutRow("+tt.name+")", s.PutRow(ctx, tt.r, tt.ifVersion), tt.code)
	}
	_, err = s.GetRow(ctx, "env-a", "account", "nope")
	wantCode(t, "GetRow after failed PutRow", err, keyhold.ENotFound)

	// Deletes, conditional and not.
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "Row-2", 1, "x"), -1))
	for _, tt := range []struct {
		name      string
		id        string
		ifVersion int64
		code      string
	}{
		{"stale version", "Row-1", 2, keyhold.EConflict},
		{"negative version", "Row-1", -1, keyhold.EInvalid},
		{"at version", "Row-1", 3, ""},
		{"again", "Row-1", 0, keyhold.ENotFound},
		{"any version", "Row-2", 0, ""},
		{"missing at version", "Row-2", 1, keyhold.ENotFound},
	} {
		err := s.DeleteRow(ctx, "env-a", "ACCOUNT", tt.id, tt.ifVersion)
		if tt.code == "" {
			must(t, err)
		} else {
			wantCode(t, "DeleteRow("+tt.name+")", err, tt.code)
		}
	}
	rows, err := s.ListRows(ctx, "env-a", "account", "", 0)
	must(t, err)
	same(t, "rows after deletes", rowIDs(rows), []string{})
	// A deleted row can be created again, from version 1.
	again := sealedRow("env-a", "account", "Row-1", 1, "again")
	must(t, s.PutRow(ctx, again, -1))
	if again.Version != 1 {
		t.Errorf("PutRow(recreate): Version %d, want 1", again.Version)
	}
}

// testRowsInTx checks that the expected failures of row writes leave a
// transaction usable, and that a rolled-back write leaves no trace.
func testRowsInTx(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "x"), -1))
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		wantCode(t, "PutRow(exists) in tx", tx.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "y"), -1), keyhold.EConflict)
		wantCode(t, "PutRow(stale) in tx", tx.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "y"), 7), keyhold.EConflict)
		wantCode(t, "PutRow(no table) in tx", tx.PutRow(ctx, sealedRow("env-a", "nope", "r1", 1, "y"), 0), keyhold.ENotFound)
		wantCode(t, "DeleteRow(missing) in tx", tx.DeleteRow(ctx, "env-a", "account", "r9", 0), keyhold.ENotFound)
		return tx.PutRow(ctx, sealedRow("env-a", "account", "r2", 1, "z"), -1)
	})
	must(t, err)
	_, err = s.GetRow(ctx, "env-a", "account", "r2")
	must(t, err)

	errStop := errors.New("stop")
	err = s.InTx(ctx, func(tx keyhold.Store) error {
		must(t, tx.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "rolled back"), 0))
		must(t, tx.PutRow(ctx, sealedRow("env-a", "account", "r3", 1, "rolled back"), -1))
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: got %v, want fn's own error", err)
	}
	got, err := s.GetRow(ctx, "env-a", "account", "r1")
	must(t, err)
	if got.Version != 1 || content(got) != "x" {
		t.Errorf("after rollback: version %d content %q, want 1 \"x\"", got.Version, content(got))
	}
	_, err = s.GetRow(ctx, "env-a", "account", "r3")
	wantCode(t, "GetRow(rolled-back create)", err, keyhold.ENotFound)
}

func testListRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account", "contact")
	mustTables(t, s, "env-b", "account")
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("id-%02d", i)
		must(t, s.PutRow(ctx, sealedRow("env-a", "account", id, 1, id), -1))
		want = append(want, "account/"+id)
	}
	must(t, s.PutRow(ctx, sealedRow("env-a", "contact", "id-00", 1, "c"), -1))
	must(t, s.PutRow(ctx, sealedRow("env-b", "account", "id-99", 1, "b"), -1))

	var got []string
	after, pages := "", 0
	for {
		page, err := s.ListRows(ctx, "env-a", "ACCOUNT", after, 10)
		must(t, err)
		if len(page) == 0 {
			break
		}
		if len(page) > 10 {
			t.Fatalf("page of %d rows, limit 10", len(page))
		}
		got = append(got, rowIDs(page)...)
		after = page[len(page)-1].ID
		pages++
	}
	same(t, "ListRows pages", got, want)
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	all, err := s.ListRows(ctx, "env-a", "account", "", 0)
	must(t, err)
	if len(all) != 25 || content(all[7]) != "id-07" {
		t.Errorf("ListRows(no limit): %d rows, [7] = %q; want 25 and \"id-07\"", len(all), content(all[7]))
	}
	_, err = s.ListRows(ctx, "env-a", "nope", "", 10)
	wantCode(t, "ListRows(missing table)", err, keyhold.ENotFound)
	_, err = s.ListRows(ctx, "env-a", "account", "", -1)
	wantCode(t, "ListRows(negative limit)", err, keyhold.EInvalid)
	// Past the end of a table that exists is an empty page, not an error.
	end, err := s.ListRows(ctx, "env-a", "account", "zzz", 10)
	must(t, err)
	same(t, "ListRows past the end", rowIDs(end), []string{})
}

func testRowsBelowGeneration(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "Account", "contact")
	mustTables(t, s, "env-b", "account")
	// Generations 1, 2, 3 in turn over both tables.
	var below3 []string
	for i := range 12 {
		table := []string{"Account", "contact"}[i%2]
		gen := int64(i%3 + 1)
		id := fmt.Sprintf("r%02d", i)
		must(t, s.PutRow(ctx, sealedRow("env-a", table, id, gen, id), -1))
		if gen < 3 {
			below3 = append(below3, strings.ToLower(table)+"/"+id)
		}
	}
	must(t, s.PutRow(ctx, sealedRow("env-b", "account", "rb", 1, "b"), -1))
	// Sorted by (table, id): account rows first.
	var wantOrder []string
	for _, prefix := range []string{"account/", "contact/"} {
		for _, k := range below3 {
			if strings.HasPrefix(k, prefix) {
				wantOrder = append(wantOrder, k)
			}
		}
	}

	var got []string
	afterTable, afterID := "", ""
	for range 20 {
		page, err := s.ListRowsBelowGeneration(ctx, "env-a", 3, afterTable, afterID, 3)
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Generation >= 3 || r.EnvironmentID != "env-a" {
				t.Errorf("row %s/%s of %s under generation %d listed below 3", r.Table, r.ID, r.EnvironmentID, r.Generation)
			}
		}
		got = append(got, rowIDs(page)...)
		last := page[len(page)-1]
		afterTable, afterID = last.Table, last.ID
	}
	same(t, "ListRowsBelowGeneration pages", got, wantOrder)

	total, below, err := s.CountRows(ctx, "env-a", 3)
	must(t, err)
	if total != 12 || below != int64(len(below3)) {
		t.Errorf("CountRows(3): %d, %d; want 12, %d", total, below, len(below3))
	}
	for _, tt := range []struct {
		gen              int64
		total, wantBelow int64
	}{{1, 12, 0}, {2, 12, 4}, {4, 12, 12}} {
		total, below, err := s.CountRows(ctx, "env-a", tt.gen)
		must(t, err)
		if total != tt.total || below != tt.wantBelow {
			t.Errorf("CountRows(%d): %d, %d; want %d, %d", tt.gen, total, below, tt.total, tt.wantBelow)
		}
	}
	total, below, err = s.CountRows(ctx, "env-nope", 3)
	must(t, err)
	if total != 0 || below != 0 {
		t.Errorf("CountRows(unknown environment): %d, %d; want 0, 0", total, below)
	}
	// The cursor's table compares case-insensitively, as tables do.
	page, err := s.ListRowsBelowGeneration(ctx, "env-a", 3, "ACCOUNT", "r99", 0)
	must(t, err)
	same(t, "ListRowsBelowGeneration after ACCOUNT/r99", rowIDs(page), wantOrder[len(wantOrder)-4:])
	_, err = s.ListRowsBelowGeneration(ctx, "env-a", 3, "", "", -1)
	wantCode(t, "ListRowsBelowGeneration(negative limit)", err, keyhold.EInvalid)
}

func testResealRow(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	orig := sealedRow("env-a", "account", "r1", 1, "plain")
	must(t, s.PutRow(ctx, orig, -1))
	read, err := s.GetRow(ctx, "env-a", "account", "r1")
	must(t, err)

	// A writer gets in between the job's read and its reseal: the job loses.
	w := sealedRow("env-a", "account", "r1", 2, "written")
	w.UpdatedAt = t0.Add(time.Minute)
	must(t, s.PutRow(ctx, w, 0))
	re := *read
	re.Generation, re.Sealed = 2, []byte("resealed plain")
	ok, err := s.ResealRow(ctx, &re)
	must(t, err)
	if ok {
		t.Error("ResealRow over a newer write reported true")
	}
	got, err := s.GetRow(ctx, "env-a", "account", "r1")
	must(t, err)
	if content(got) != "written" || got.Version != 2 {
		t.Errorf("after a lost reseal: %q at version %d, want the writer's \"written\" at 2", content(got), got.Version)
	}

	// At the current version it wins, and changes neither version nor time.
	re = *got
	re.Generation, re.Sealed = 3, []byte("resealed written")
	ok, err = s.ResealRow(ctx, &re)
	must(t, err)
	if !ok {
		t.Error("ResealRow at the current version reported false")
	}
	got, err = s.GetRow(ctx, "env-a", "account", "r1")
	must(t, err)
	want := *w
	want.Table, want.Version, want.Generation, want.Sealed, want.CreatedAt = "account", 2, 3, []byte("resealed written"), t0
	same(t, "after ResealRow", got, &want)

	ok, err = s.ResealRow(ctx, sealedRow("env-a", "account", "gone", 3, "x"))
	must(t, err)
	if ok {
		t.Error("ResealRow of a missing row reported true")
	}
	_, err = s.ResealRow(ctx, sealedRow("env-a", "account", "r1", 0, "x"))
	wantCode(t, "ResealRow(generation 0)", err, keyhold.EInvalid)

	// The batch: one stale row among three.
	for _, id := range []string{"b1", "b2", "b3"} {
		must(t, s.PutRow(ctx, sealedRow("env-a", "account", id, 1, id), -1))
	}
	page, err := s.ListRowsBelowGeneration(ctx, "env-a", 3, "account", "b", 3)
	must(t, err)
	same(t, "batch page", rowIDs(page), []string{"account/b1", "account/b2", "account/b3"})
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "b2", 3, "b2 rewritten"), 0))
	for _, r := range page {
		r.Generation, r.Sealed = 3, []byte("resealed "+content(r))
	}
	n, err := s.ResealRows(ctx, page)
	must(t, err)
	if n != 2 {
		t.Errorf("ResealRows: %d replaced, want 2", n)
	}
	for id, wantContent := range map[string]string{"b1": "resealed b1", "b2": "b2 rewritten", "b3": "resealed b3"} {
		got, err := s.GetRow(ctx, "env-a", "account", id)
		must(t, err)
		if c := strings.TrimSuffix(content(got), "\x00\xff'\\"); c != wantContent {
			t.Errorf("%s after ResealRows: %q, want %q", id, c, wantContent)
		}
	}
	// A bad row refuses the whole batch before anything is written.
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "b4", 1, "b4"), -1))
	b4, err := s.GetRow(ctx, "env-a", "account", "b4")
	must(t, err)
	b4.Generation = 3
	_, err = s.ResealRows(ctx, []*keyhold.SealedRow{b4, {EnvironmentID: "env-a", Table: "account", ID: "b1", Generation: 0, Sealed: []byte("x")}})
	wantCode(t, "ResealRows(bad row)", err, keyhold.EInvalid)
	got, err = s.GetRow(ctx, "env-a", "account", "b4")
	must(t, err)
	if got.Generation != 1 {
		t.Errorf("refused batch wrote b4 (generation %d)", got.Generation)
	}
	n, err = s.ResealRows(ctx, nil)
	if err != nil || n != 0 {
		t.Errorf("ResealRows(nil): %d, %v; want 0, nil", n, err)
	}
}

// testPutRowConcurrent has 8 goroutines increment one counter row with
// read-modify-write under ifVersion, retrying on conflict: no update is lost.
func testPutRowConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "counter", 1, "0"), -1))
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				r, err := s.GetRow(ctx, "env-a", "account", "counter")
				if err != nil {
					errs <- err
					return
				}
				n, err := strconv.Atoi(content(r))
				if err != nil {
					errs <- err
					return
				}
				next := sealedRow("env-a", "account", "counter", 1, strconv.Itoa(n+1))
				err = s.PutRow(ctx, next, r.Version)
				switch keyhold.ErrorCode(err) {
				case "":
					done++
				case keyhold.EConflict:
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	got, err := s.GetRow(ctx, "env-a", "account", "counter")
	must(t, err)
	if content(got) != strconv.Itoa(workers*each) || got.Version != 1+workers*each {
		t.Errorf("counter %q at version %d, want %d at %d", content(got), got.Version, workers*each, 1+workers*each)
	}
}

// testResealRowConcurrent runs a writer and a re-encryption job on the same
// rows at once: a reseal never undoes a write. The job reseals content c as
// "r:"+c, so every row must end as the writer's last content, or that
// content resealed.
func testResealRowConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	const rows, writes = 4, 25
	for i := range rows {
		must(t, s.PutRow(ctx, sealedRow("env-a", "account", fmt.Sprint("r", i), 1, "w0"), -1))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(1)
	go func() { // the job
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range rows {
				r, err := s.GetRow(ctx, "env-a", "account", fmt.Sprint("r", i))
				if err != nil {
					errs <- err
					return
				}
				if strings.HasPrefix(content(r), "r:") {
					continue
				}
				r.Generation, r.Sealed = 2, []byte("r:"+content(r)+"\x00\xff'\\")
				if _, err := s.ResealRow(ctx, r); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for w := 1; w <= writes; w++ {
		for i := range rows {
			if err := s.PutRow(ctx, sealedRow("env-a", "account", fmt.Sprint("r", i), 2, fmt.Sprint("w", w)), 0); err != nil {
				t.Fatalf("writer: %v", err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("job: %v", err)
	}
	last := fmt.Sprint("w", writes)
	for i := range rows {
		got, err := s.GetRow(ctx, "env-a", "account", fmt.Sprint("r", i))
		must(t, err)
		if c := content(got); c != last && c != "r:"+last {
			t.Errorf("r%d ends as %q, want %q or %q", i, c, last, "r:"+last)
		}
		if got.Version != writes+1 {
			t.Errorf("r%d at version %d, want %d (reseals do not bump it)", i, got.Version, writes+1)
		}
	}
}

// testResealRowsLarge reseals a batch larger than any driver's chunk, with
// rows a writer changed scattered through it: exactly the others move.
func testResealRowsLarge(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	const n = 1201
	must(t, s.InTx(ctx, func(tx keyhold.Store) error {
		for i := range n {
			if err := tx.PutRow(ctx, sealedRow("env-a", "account", fmt.Sprintf("r%04d", i), 1, "old"), -1); err != nil {
				return err
			}
		}
		return nil
	}))
	page, err := s.ListRowsBelowGeneration(ctx, "env-a", 2, "", "", 0)
	must(t, err)
	if len(page) != n {
		t.Fatalf("listed %d rows, want %d", len(page), n)
	}
	written := 0
	for i := 0; i < n; i += 97 {
		must(t, s.PutRow(ctx, sealedRow("env-a", "account", fmt.Sprintf("r%04d", i), 2, "new"), 0))
		written++
	}
	for _, r := range page {
		r.Generation, r.Sealed = 2, []byte("resealed")
	}
	got, err := s.ResealRows(ctx, page)
	must(t, err)
	if got != n-written {
		t.Errorf("ResealRows: %d replaced, want %d", got, n-written)
	}
	all, err := s.ListRows(ctx, "env-a", "account", "", 0)
	must(t, err)
	for i, r := range all {
		want := "resealed"
		if i%97 == 0 {
			want = "new"
		}
		if c := content(r); c != want || r.Generation != 2 {
			t.Errorf("%s: %q under %d, want %q under 2", r.ID, c, r.Generation, want)
		}
	}
	total, below, err := s.CountRows(ctx, "env-a", 2)
	must(t, err)
	if total != n || below != 0 {
		t.Errorf("CountRows(2): %d, %d; want %d, 0", total, below, n)
	}
}
