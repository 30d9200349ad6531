package dataverse_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestConcurrentPatchesLoseNothing: writers patching different columns of
// one row at once, without If-Match, each re-apply their columns when they
// lose a race, so the row ends with every writer's last value.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapCustomer)
	const writers, writes = 6, 15
	var cols []string
	for w := range writers {
		cols = append(cols, fmt.Sprintf(`{"name":"c%d","type":"Integer"}`, w))
	}
	f.must(201, "POST", api(envA)+"tables", `{"name":"counters","columns":[`+strings.Join(cols, ",")+`]}`)
	row := api(envA) + "counters(" + row1 + ")"
	f.must(201, "PATCH", row, `{}`)
	var wg sync.WaitGroup
	errs := make(chan string, writers*writes)
	for w := range writers {
		wg.Go(func() {
			for i := 1; i <= writes; i++ {
				rec := f.doJSON("PATCH", row, fmt.Sprintf(`{"c%d":%d}`, w, i))
				if rec.Code != 200 {
					errs <- fmt.Sprintf("writer %d write %d: %d %s", w, i, rec.Code, rec.Body.String())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := f.must(200, "GET", row, "")
	for w := range writers {
		if v := got[fmt.Sprintf("c%d", w)]; v != float64(writes) {
			t.Errorf("c%d = %v, want %d: an update was lost", w, v, writes)
		}
	}
	if v := got["versionnumber"]; v != float64(1+writers*writes) {
		t.Errorf("versionnumber = %v, want %d", v, 1+writers*writes)
	}
}
