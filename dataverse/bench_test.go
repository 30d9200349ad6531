package dataverse_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/kms"
)

// benchRows is how many rows a read benchmark reads among.
const benchRows = 1000

// row1KiB is a 1 KiB row body.
func row1KiB(i int) string {
	return fmt.Sprintf(`{"name":"%s","employees":%d}`, strings.Repeat("n", 1000), i)
}

// BenchmarkDataAPI measures 1 KiB row writes (POST) and reads (GET) through
// the handler on SQLite, under a platform key and under a CMK, each
// interleaved with the same operation of a handler over the same store with
// sealing switched off. sealed/plain-throughput is the plain time over the
// sealed time: the share of the unsealed throughput that sealing keeps
// (target >= 0.9).
func BenchmarkDataAPI(b *testing.B) {
	for _, kind := range []string{keyhold.WrapPlatform, keyhold.WrapCustomer} {
		for _, op := range []string{"write", "read"} {
			b.Run(op+"/"+map[string]string{keyhold.WrapPlatform: "platform", keyhold.WrapCustomer: "cmk"}[kind], func(b *testing.B) {
				f := newFixture(b)
				f.addEnv(envA, kind)
				f.accountsTable(envA)
				plain := dataverse.New(dataverse.Config{Store: f.store, Open: f.envs.Open, Plaintext: true}).Handler()
				sealed := f.h
				f.must(201, "POST", api(envA)+"tables", `{"name":"plain","columns":[{"name":"name","type":"String"},{"name":"employees","type":"Integer"}]}`)
				ids := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
				if op == "read" {
					for i := range benchRows {
						f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+ids(i)+`",`+row1KiB(i)[1:])
						f.h = plain
						f.must(201, "POST", api(envA)+"plain", `{"plainid":"`+ids(i)+`",`+row1KiB(i)[1:])
						f.h = sealed
					}
				}
				// Warm the key cache, as a running server's is.
				f.must(200, "GET", api(envA)+"tables", "")
				f.must(201, "POST", api(envA)+"accounts", row1KiB(-1))
				callsBefore := f.calls.Calls(kms.CallUnwrap)
				var tSealed, tPlain time.Duration
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					for _, side := range []struct {
						h     bool
						table string
						d     *time.Duration
					}{{false, "accounts", &tSealed}, {true, "plain", &tPlain}} {
						f.h = sealed
						if side.h {
							f.h = plain
						}
						start := time.Now()
						var code int
						if op == "write" {
							code = f.doJSON("POST", api(envA)+side.table, row1KiB(i)).Code
						} else {
							code = f.doJSON("GET", api(envA)+side.table+"("+ids(i%benchRows)+")", "").Code
						}
						*side.d += time.Since(start)
						if code >= 300 {
							b.Fatalf("%s %s: %d", op, side.table, code)
						}
					}
					i++
				}
				f.h = sealed
				b.ReportMetric(float64(tSealed.Nanoseconds())/float64(i), "sealed-ns/req")
				b.ReportMetric(float64(tPlain.Nanoseconds())/float64(i), "plain-ns/req")
				b.ReportMetric(float64(tPlain)/float64(tSealed), "sealed/plain-throughput")
				b.ReportMetric(float64(f.calls.Calls(kms.CallUnwrap)-callsBefore), "vault-calls")
			})
		}
	}
}

// BenchmarkVaultCallsWarm counts vault calls per 10,000 data requests (a
// mix of reads, updates, creates and lists) once the environment's key is
// cached under a CMK (target 0).
func BenchmarkVaultCallsWarm(b *testing.B) {
	f := newFixture(b)
	f.addEnv(envA, keyhold.WrapCustomer)
	f.accountsTable(envA)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"warm"}`)
	total := func() uint64 {
		return f.calls.Calls(kms.CallUnwrap) + f.calls.Calls(kms.CallWrap) + f.calls.Calls(kms.CallCheck)
	}
	before := total()
	n := 0
	for b.Loop() {
		var code int
		switch n % 4 {
		case 0:
			code = f.doJSON("GET", api(envA)+"accounts("+row1+")", "").Code
		case 1:
			code = f.doJSON("PATCH", api(envA)+"accounts("+row1+")", `{"employees":1}`).Code
		case 2:
			code = f.doJSON("POST", api(envA)+"accounts", row1KiB(n)).Code
		case 3:
			code = f.doJSON("GET", api(envA)+"accounts?$top=5", "").Code
		}
		if code >= 300 {
			b.Fatalf("request %d: %d", n, code)
		}
		n++
	}
	b.ReportMetric(float64(total()-before)*10000/float64(n), "vault-calls/10k-req")
}
