package model

// The tokenizer is byte-level: token t < 256 is the byte t, and the ids from
// 256 on are specials (BOS, EOS; config.json names them). At this model's size
// a byte vocabulary is the honest choice: no merge table to train or ship, every
// string encodes, and a pass key of five digits is exactly five tokens.

// Encode returns BOS followed by the bytes of s.
func (m *Model) Encode(s string) []int {
	t := make([]int, 0, len(s)+1)
	t = append(t, m.Config.BOSTokenID)
	for i := 0; i < len(s); i++ {
		t = append(t, int(s[i]))
	}
	return t
}

// EncodeBytes returns the tokens of b with no BOS.
func EncodeBytes(b []byte) []int {
	t := make([]int, len(b))
	for i, c := range b {
		t[i] = int(c)
	}
	return t
}

// Decode returns the bytes of tokens as a string, dropping special tokens.
func Decode(tokens []int) string {
	b := make([]byte, 0, len(tokens))
	for _, t := range tokens {
		if t >= 0 && t < 256 {
			b = append(b, byte(t))
		}
	}
	return string(b)
}
