package masterkey

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/seal"
)

// settings is an in-memory keyhold.SettingStore.
type settings struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *settings) GetSetting(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	if !ok {
		return nil, keyhold.Errorf(keyhold.ENotFound, "setting %q not found", name)
	}
	return v, nil
}

func (s *settings) PutSetting(_ context.Context, name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = v
	return nil
}

func (s *settings) CreateSetting(_ context.Context, name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[name]; ok {
		return keyhold.Errorf(keyhold.EConflict, "setting %q exists", name)
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = v
	return nil
}

func fixedKey(b byte) keyhold.Secret { return keyhold.NewSecret(bytes.Repeat([]byte{b}, 32)) }

func b64(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

// sameKey reports whether a and b are the same master key: what one seals the
// other opens.
func sameKey(t *testing.T, a, b *seal.Key) bool {
	t.Helper()
	_, err := b.Open("x", a.Seal("x", []byte("hello")))
	return err == nil
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "given.key")
	if err := os.WriteFile(keyFile, []byte(b64(1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rawFile := filepath.Join(dir, "raw.key")
	if err := os.WriteFile(rawFile, bytes.Repeat([]byte{3}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, FileName), []byte(b64(4)), 0o600); err != nil {
		t.Fatal(err)
	}
	want := func(b byte) *seal.Key {
		k, err := seal.NewKey(fixedKey(b))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	tests := []struct {
		name       string
		opts       Options
		wantKey    byte
		wantSource string
	}{
		{"file wins over env", Options{File: keyFile, DataDir: dataDir, Getenv: env(b64(2))}, 1, "--master-key-file " + keyFile},
		{"raw file", Options{File: rawFile}, 3, "--master-key-file " + rawFile},
		{"env wins over data dir", Options{DataDir: dataDir, Getenv: env(b64(2))}, 2, "environment variable " + EnvVar},
		{"data dir", Options{DataDir: dataDir, Getenv: env("")}, 4, filepath.Join(dataDir, FileName)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.Source != tt.wantSource {
				t.Errorf("Source = %q, want %q", got.Source, tt.wantSource)
			}
			if !sameKey(t, got.Key, want(tt.wantKey)) {
				t.Errorf("loaded key is not key %d", tt.wantKey)
			}
			if got.Created {
				t.Errorf("Created = true for an existing key")
			}
		})
	}
}

func env(v string) func(string) string {
	return func(name string) string {
		if name == EnvVar {
			return v
		}
		return ""
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("too short"))), 0o600)
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("this is !!! not base64 and not 32 bytes"), 0o600)

	tests := []struct {
		name     string
		opts     Options
		wantText []string
	}{
		{"missing file", Options{File: filepath.Join(dir, "nope")}, []string{"--master-key-file", "nope", "no such file"}},
		{"short file", Options{File: short}, []string{"--master-key-file", "32 bytes", "decodes to 9 bytes"}},
		{"garbage file", Options{File: garbage}, []string{"not valid base64"}},
		{"bad env", Options{Getenv: env("%%%"), DataDir: dir}, []string{"environment variable " + EnvVar, "not valid base64"}},
		{"nothing configured", Options{Getenv: env("")}, []string{"no master key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.opts)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "masterkey: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestLoadCreatesKeyFile(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	opts := Options{DataDir: dataDir, Getenv: env(""), Generate: func() keyhold.Secret { return fixedKey(7) }}
	first, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Error("Created = false on first start")
	}
	path := filepath.Join(dataDir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
	b, _ := os.ReadFile(path)
	if got, want := strings.TrimSpace(string(b)), b64(7); got != want {
		t.Errorf("file holds %q, want the base64 key", got)
	}

	opts.Generate = func() keyhold.Secret { t.Fatal("generated a second key"); return keyhold.Secret{} }
	second, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created || !sameKey(t, first.Key, second.Key) {
		t.Error("second start did not reuse the key file")
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	store := &settings{}
	k1, _ := seal.NewKey(fixedKey(1))
	k2, _ := seal.NewKey(fixedKey(2))

	if err := Check(ctx, store, k1, "first source"); err != nil {
		t.Fatalf("first Check: %v", err)
	}
	if _, err := store.GetSetting(ctx, CheckSetting); err != nil {
		t.Fatalf("check value not stored: %v", err)
	}
	if err := Check(ctx, store, k1, "first source"); err != nil {
		t.Fatalf("Check with the same key: %v", err)
	}
	err := Check(ctx, store, k2, "environment variable KEYHOLD_MASTER_KEY")
	if err == nil {
		t.Fatal("Check with another key succeeded")
	}
	if !strings.Contains(err.Error(), "environment variable KEYHOLD_MASTER_KEY") || !strings.Contains(err.Error(), "not the key") {
		t.Errorf("error %q does not name the source and the problem", err)
	}
}

func TestCheckConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	store := &settings{}
	k1, _ := seal.NewKey(fixedKey(1))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Check(ctx, store, k1, "src")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Check %d: %v", i, err)
		}
	}
}
