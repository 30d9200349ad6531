package envelope

import (
	"bytes"
	"testing"

	"github.com/keyhold/keyhold"
)

// FuzzOpen feeds arbitrary bytes to the parser and the opener: they must
// never panic, every failure must be an *Error with a known code, and
// anything that opens must be what Seal wrote (the seeds are real records,
// so the success path is reached).
func FuzzOpen(f *testing.F) {
	root := testKey(0x42)
	b := RowBinding("env", "table", "row")
	seeds := [][]byte{nil, {Version}, {Version, 1}}
	for i, pt := range []string{"", "a", "a somewhat longer row of plain text"} {
		s, err := SealRand(bytes.NewReader(bytes.Repeat([]byte{byte(i)}, SaltSize+NonceSize)), root, int64(i+1), b, []byte(pt))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, s)
	}
	seeds = append(seeds, Seal(root, 300, b, []byte("generation with a two-byte varint")))
	for _, s := range seeds {
		f.Add(s)
	}
	lookup := func(int64) (keyhold.Secret, error) { return root, nil }
	f.Fuzz(func(t *testing.T, sealed []byte) {
		gen, gerr := GenerationOf(sealed)
		pt, err := Open(lookup, b, sealed)
		if err != nil {
			if pt != nil {
				t.Fatal("Open returned plaintext with an error")
			}
			if c := keyhold.ErrorCode(err); c != keyhold.EConflict {
				t.Fatalf("Open error code %q: %v", c, err)
			}
			return
		}
		if gerr != nil || gen < 1 {
			t.Fatalf("Open succeeded where GenerationOf fails: %d, %v", gen, gerr)
		}
		// What opens must re-seal, under the same salt and nonce, to the
		// very same bytes: nothing else authenticates.
		h, _ := parseHeader(sealed)
		again, err := SealRand(bytes.NewReader(append(bytes.Clone(h.salt), h.nonce...)), root, gen, b, pt)
		if err != nil || !bytes.Equal(again, sealed) {
			t.Fatalf("opened a value Seal would not write")
		}
	})
}
