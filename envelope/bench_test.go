package envelope

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

func benchSizes() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}
}

func BenchmarkSeal(b *testing.B) {
	root, bind := testKey(1), RowBinding("env", "table", "row")
	for _, sz := range benchSizes() {
		b.Run(sz.name, func(b *testing.B) {
			pt := make([]byte, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				Seal(root, 1, bind, pt)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	root, bind := testKey(1), RowBinding("env", "table", "row")
	lookup := func(int64) (keyhold.Secret, error) { return root, nil }
	for _, sz := range benchSizes() {
		b.Run(sz.name, func(b *testing.B) {
			sealed := Seal(root, 1, bind, make([]byte, sz.n))
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(lookup, bind, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKeyringGetWarm(b *testing.B) {
	kr := NewKeyring(gensFor("env", keyhold.GenerationActive), &fakeUnwrapper{})
	ctx := context.Background()
	if _, err := kr.Get(ctx, "env", 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k, err := kr.Get(ctx, "env", 1)
			if err != nil {
				b.Fatal(err)
			}
			k.Wipe()
		}
	})
	if s := kr.Stats(); s.Unwraps != 1 {
		b.Fatalf("warm Get unwrapped %d times", s.Unwraps)
	}
}
