package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/storetest"
)

func open(t testing.TB, path string) keyhold.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keyhold.Store {
		s := open(t, filepath.Join(t.TempDir(), "keyhold.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	storetest.Persist(t, open(t, path), func() keyhold.Store { return open(t, path) })
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "keyhold.db")
	s := open(t, path)
	defer s.Close()
	if err := s.PutSetting(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), got, want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:"} {
		_, err := sqlite.Open(context.Background(), path)
		if got := keyhold.ErrorCode(err); got != keyhold.EInvalid {
			t.Errorf("Open(%q): got %v, want EInvalid", path, err)
		}
	}
	// A directory where the file should be is an internal error, not a panic.
	_, err := sqlite.Open(context.Background(), t.TempDir())
	if got := keyhold.ErrorCode(err); got != keyhold.EInternal {
		t.Errorf("Open(dir): got %v, want EInternal", err)
	}
}

// TestMigrationsIdempotent reopens a database several times, at once and in
// turn: each migration is recorded once and the schema is intact.
func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	for _, s := range storetest.OpenAtOnce(t, 4, func() (keyhold.Store, error) { return sqlite.Open(context.Background(), path) }) {
		s.Close()
	}
	s := open(t, path)
	defer s.Close()
	ms, err := sqlstore.LoadMigrations(os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.MigratedOnce(t, s.(*sqlstore.Store).DB(), len(ms), ms[len(ms)-1].Version)
}

// TestAuditAcrossProcesses appends through two separately opened stores on
// the same file, as two processes would: the chain stays whole.
func TestAuditAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	storetest.AuditAcrossStores(t, a, b)
}

// TestAwkwardPath opens a file whose path needs escaping in a SQLite URI.
func TestAwkwardPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b#c?d%20e")
	path := filepath.Join(dir, "key hold.db")
	s := open(t, path)
	if err := s.PutSetting(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "key hold.db") {
			t.Errorf("stray file %q next to the database", e.Name())
		}
	}
	s = open(t, path)
	defer s.Close()
	if v, err := s.GetSetting(context.Background(), "k"); err != nil || string(v) != "v" {
		t.Errorf("after reopen: %q, %v", v, err)
	}
}

// TestLeaseAcrossProcesses leases operations through two separately opened
// stores on one file, as two processes would.
func TestLeaseAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	storetest.LeaseAcrossStores(t, a, b)
}

// TestLargeFile round-trips a 100 MiB file in 1 MiB segments.
func TestLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB file: skipped with -short")
	}
	s := open(t, filepath.Join(t.TempDir(), "keyhold.db"))
	defer s.Close()
	storetest.LargeFile(t, s, 100<<20+12345, 1<<20)
}
