package keyvault_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/identity"
)

// BenchmarkUnwrapKey measures unwrapKey (RSA-2048, RSA-OAEP-256) through the
// whole HTTP API — TLS with keep-alive, token verification, vault lookup,
// access-policy check, key lookup, the key cache, JSON — with parallel
// clients against server.Start, and crypto/rsa.DecryptOAEP in-process with
// the same parallelism in the same run. "ratio" is HTTP ops/s divided by
// in-process ops/s: how much of the raw RSA throughput the API keeps.
//
//	go test ./keyvault -run '^$' -bench UnwrapKey -benchtime 2000x
func BenchmarkUnwrapKey(b *testing.B) {
	e := newE2E(b)
	vaultURL := e.createVault(b, "kv-bench", nil)
	tok := e.token(b, e.sp, identity.AudienceVault)
	created := must(b, e.do(b, "POST", vaultURL+"/keys/cmk/create?api-version=7.6", tok, `{"kty":"RSA","key_size":2048}`), 200).json(b)
	key := created["key"].(map[string]any)
	n, _ := base64.RawURLEncoding.DecodeString(key["n"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	cek := bytes.Repeat([]byte{0x42}, 32)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": base64.RawURLEncoding.EncodeToString(wrapped)})
	url := vaultURL + "/keys/cmk/unwrapkey?api-version=7.6"

	// A local private key of the same size for the in-process baseline.
	local, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	localCT, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &local.PublicKey, cek, nil)

	workers := runtime.GOMAXPROCS(0) * 2
	// Warm the connections and the key cache.
	parallel(workers, workers*4, func() error { return unwrapOnce(e.HTTP, url, tok, body, cek) })

	b.ResetTimer()
	start := time.Now()
	if err := parallel(workers, b.N, func() error { return unwrapOnce(e.HTTP, url, tok, body, cek) }); err != nil {
		b.Fatal(err)
	}
	httpTime := time.Since(start)
	b.StopTimer()

	start = time.Now()
	if err := parallel(workers, b.N, func() error {
		pt, err := rsa.DecryptOAEP(sha256.New(), nil, local, localCT, nil)
		if err == nil && !bytes.Equal(pt, cek) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	localTime := time.Since(start)

	httpOps := float64(b.N) / httpTime.Seconds()
	localOps := float64(b.N) / localTime.Seconds()
	b.ReportMetric(httpOps, "http-ops/s")
	b.ReportMetric(localOps, "inproc-ops/s")
	b.ReportMetric(httpOps/localOps, "ratio")
}

// parallel runs n calls of fn on workers goroutines and returns the first
// error.
func parallel(workers, n int, fn func() error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := fn(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func unwrapOnce(hc *http.Client, url, tok string, body, want []byte) error {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var out struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return &http.ProtocolError{ErrorString: "unwrap answered " + res.Status}
	}
	got, err := base64.RawURLEncoding.DecodeString(out.Value)
	if err != nil || !bytes.Equal(got, want) {
		return io.ErrUnexpectedEOF
	}
	return nil
}
