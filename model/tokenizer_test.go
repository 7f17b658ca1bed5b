package model

import (
	"testing"
)

// TestTokenizerRoundTrip checks the byte tokenizer as documented: Encode is
// BOS then one token per byte (any bytes, valid UTF-8 or not), EncodeBytes
// has no BOS, and Decode inverts both, dropping the special tokens.
func TestTokenizerRoundTrip(t *testing.T) {
	m := &Model{Config: Config{VocabSize: 258, BOSTokenID: 256, EOSTokenID: 257}}
	for _, s := range []string{"", "a", "The pass key is 31415.", "héllo, 世界", "\x00\xff\xfe\x80 bad utf-8 \xc3"} {
		toks := m.Encode(s)
		if len(toks) != len(s)+1 || toks[0] != 256 {
			t.Fatalf("Encode(%q) = %v, want BOS then %d bytes", s, toks, len(s))
		}
		for i := range len(s) {
			if toks[i+1] != int(s[i]) {
				t.Fatalf("Encode(%q)[%d] = %d, want byte %d", s, i+1, toks[i+1], s[i])
			}
		}
		if got := Decode(toks); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
		if b := EncodeBytes([]byte(s)); !equalInts(b, toks[1:]) {
			t.Errorf("EncodeBytes(%q) = %v, want Encode's tokens without BOS", s, b)
		}
		withEOS := append(append([]int{256}, toks...), 257, 256)
		if got := Decode(withEOS); got != s {
			t.Errorf("Decode(%v) = %q, want %q (specials dropped)", withEOS, got, s)
		}
	}
}
