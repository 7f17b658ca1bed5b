package model

import (
	"encoding/json"
	"fmt"
	"os"
)

// Config is the model's config.json, as train/train.py writes it.
type Config struct {
	Architecture string  `json:"architecture"` // "llama" (or absent)
	DType        string  `json:"dtype"`        // the weights' type as trained: bfloat16, float16 or float32 (or absent)
	Dim          int     `json:"dim"`          // residual width
	NLayers      int     `json:"n_layers"`     // decoder layers
	NHeads       int     `json:"n_heads"`      // query heads Hq
	NKVHeads     int     `json:"n_kv_heads"`   // key/value heads Hkv; Hq is a multiple
	HeadDim      int     `json:"head_dim"`     // D, 128 as in the paper's models
	HiddenDim    int     `json:"hidden_dim"`   // SwiGLU inner width
	VocabSize    int     `json:"vocab_size"`   // 256 bytes + specials
	RopeTheta    float64 `json:"rope_theta"`   // RoPE base
	MaxSeqLen    int     `json:"max_seq_len"`  // training context
	NormEps      float64 `json:"norm_eps"`     // RMSNorm epsilon
	Tied         bool    `json:"tied"`         // output head = token embedding
	Tokenizer    string  `json:"tokenizer"`    // "bytes"
	BOSTokenID   int     `json:"bos_token_id"`
	EOSTokenID   int     `json:"eos_token_id"`
}

// LoadConfig reads and validates a config.json.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate reports whether c describes a model this package can run.
func (c Config) Validate() error {
	switch {
	case c.Dim < 1 || c.NLayers < 1 || c.HiddenDim < 1:
		return fmt.Errorf("config: dim=%d n_layers=%d hidden_dim=%d, want >= 1", c.Dim, c.NLayers, c.HiddenDim)
	case c.NHeads < 1 || c.NKVHeads < 1 || c.NHeads%c.NKVHeads != 0:
		return fmt.Errorf("config: n_heads=%d n_kv_heads=%d, want n_heads a positive multiple of n_kv_heads", c.NHeads, c.NKVHeads)
	case c.HeadDim < 2 || c.HeadDim%2 != 0:
		return fmt.Errorf("config: head_dim=%d, want an even number >= 2", c.HeadDim)
	case !(c.RopeTheta > 1):
		return fmt.Errorf("config: rope_theta=%v, want > 1", c.RopeTheta)
	case !(c.NormEps > 0):
		return fmt.Errorf("config: norm_eps=%v, want > 0", c.NormEps)
	case c.Tokenizer != "bytes":
		return fmt.Errorf("config: tokenizer %q, want \"bytes\" (the only one this package reads)", c.Tokenizer)
	case c.VocabSize < 256 || c.BOSTokenID < 256 || c.BOSTokenID >= c.VocabSize || c.EOSTokenID < 256 || c.EOSTokenID >= c.VocabSize:
		return fmt.Errorf("config: vocab_size=%d bos=%d eos=%d, want the 256 bytes then the specials", c.VocabSize, c.BOSTokenID, c.EOSTokenID)
	case c.Architecture != "" && c.Architecture != "llama":
		return fmt.Errorf("config: architecture %q, want \"llama\" (the only one this package runs)", c.Architecture)
	case c.DType != "" && c.DType != "bfloat16" && c.DType != "float16" && c.DType != "float32":
		return fmt.Errorf("config: dtype %q, want bfloat16, float16 or float32", c.DType)
	case c.MaxSeqLen < 1:
		return fmt.Errorf("config: max_seq_len=%d, want >= 1", c.MaxSeqLen)
	}
	return nil
}

// Group returns G = Hq/Hkv.
func (c Config) Group() int { return c.NHeads / c.NKVHeads }
