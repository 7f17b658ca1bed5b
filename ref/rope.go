package ref

import (
	"fmt"
	"math"
)

// RoPE is Llama-style rotary position embedding in the non-interleaved ("rotate
// half") layout: channel i < D/2 is paired with channel i+D/2 and the pair is
// rotated by the angle pos * freq_i,
//
//	freq_i = Theta^(-2i/D)
//	x'_i       = x_i cos(a) - x_{i+D/2} sin(a)
//	x'_{i+D/2} = x_i sin(a) + x_{i+D/2} cos(a),     a = pos * freq_i
//
// which is what Hugging Face's apply_rotary_pos_emb computes for Llama.
type RoPE struct {
	D     int     // head dimension, even
	Theta float64 // base, 10000 for Llama-2, 500000 for Llama-3
	// Llama3 enables the Llama-3.1 frequency scaling (rope_type "llama3").
	Llama3 *Llama3Scaling
}

// Llama3Scaling is the frequency scaling of Llama-3.1's rope_scaling block. For a
// wavelength L = 2π/freq:
//
//	L < Orig/High:   freq unchanged
//	L > Orig/Low:    freq / Factor
//	otherwise:       (1-s) freq/Factor + s freq,  s = (Orig/L - Low) / (High - Low)
type Llama3Scaling struct {
	Factor float64 // 8 for Llama-3.1
	Low    float64 // low_freq_factor, 1
	High   float64 // high_freq_factor, 4
	Orig   float64 // original_max_position_embeddings, 8192
}

// Llama31 is the scaling of Meta-Llama-3.1-8B's config.json.
var Llama31 = Llama3Scaling{Factor: 8, Low: 1, High: 4, Orig: 8192}

// Frequencies returns freq_i for i in [0, D/2), after any scaling.
func (r RoPE) Frequencies() ([]float64, error) {
	if r.D < 2 || r.D%2 != 0 {
		return nil, fmt.Errorf("rope: head dim %d, want an even number >= 2", r.D)
	}
	if !(r.Theta > 1) {
		return nil, fmt.Errorf("rope: theta %v, want > 1", r.Theta)
	}
	f := make([]float64, r.D/2)
	for i := range f {
		f[i] = math.Pow(r.Theta, -2*float64(i)/float64(r.D))
		if s := r.Llama3; s != nil {
			wl := 2 * math.Pi / f[i]
			switch {
			case wl < s.Orig/s.High:
			case wl > s.Orig/s.Low:
				f[i] /= s.Factor
			default:
				t := (s.Orig/wl - s.Low) / (s.High - s.Low)
				f[i] = (1-t)*f[i]/s.Factor + t*f[i]
			}
		}
	}
	return f, nil
}

// Apply rotates x: [D] in place for position pos.
func (r RoPE) Apply(x []float32, pos int) error {
	f, err := r.Frequencies()
	if err != nil {
		return err
	}
	if len(x) != r.D {
		return fmt.Errorf("rope: len(x)=%d, want D=%d", len(x), r.D)
	}
	half := r.D / 2
	for i := range half {
		sin, cos := math.Sincos(float64(pos) * f[i])
		a, b := float64(x[i]), float64(x[i+half])
		x[i] = float32(a*cos - b*sin)
		x[i+half] = float32(a*sin + b*cos)
	}
	return nil
}
