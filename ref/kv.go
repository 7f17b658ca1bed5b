package ref

import "fmt"

// KV is the key/value cache of one attention layer. Keys are stored after RoPE,
// as they enter the cache. Each (batch, KV head) row grows by one token per
// decode step, so the rows are kept as separate slices.
type KV struct {
	B, Hkv, D int
	N         int         // cached tokens, the same in every row
	K         [][]float32 // [B*Hkv] rows, each [N][D]; row b*Hkv+h
	V         [][]float32 // [B*Hkv] rows, each [N][D]
}

// NewKV copies a flat cache into a KV. k and v are [B][Hkv][N][D].
func NewKV(b, hkv, n, d int, k, v []float32) (*KV, error) {
	if b < 1 || hkv < 1 || n < 0 || d < 1 {
		return nil, fmt.Errorf("kv: bad shape B=%d Hkv=%d N=%d D=%d", b, hkv, n, d)
	}
	want := b * hkv * n * d
	if len(k) != want || len(v) != want {
		return nil, fmt.Errorf("kv: len(k)=%d len(v)=%d, want B*Hkv*N*D = %d*%d*%d*%d = %d",
			len(k), len(v), b, hkv, n, d, want)
	}
	c := &KV{B: b, Hkv: hkv, D: d, N: n, K: make([][]float32, b*hkv), V: make([][]float32, b*hkv)}
	for r := range c.K {
		c.K[r] = append([]float32(nil), k[r*n*d:(r+1)*n*d]...)
		c.V[r] = append([]float32(nil), v[r*n*d:(r+1)*n*d]...)
	}
	return c, nil
}

// Validate reports whether c is a cache that can be read: a shape of B, Hkv,
// D >= 1 and N >= 0, and B*Hkv rows of K and of V, each of N*D values. NewKV
// and Append keep it; every Prefill, and every function that reads a cache,
// checks a KV built by hand with it first.
func (c *KV) Validate() error {
	if c == nil {
		return fmt.Errorf("kv: nil cache")
	}
	if c.B < 1 || c.Hkv < 1 || c.N < 0 || c.D < 1 {
		return fmt.Errorf("kv: bad shape B=%d Hkv=%d N=%d D=%d", c.B, c.Hkv, c.N, c.D)
	}
	if len(c.K) != c.B*c.Hkv || len(c.V) != c.B*c.Hkv {
		return fmt.Errorf("kv: %d rows of K and %d of V, want B*Hkv = %d*%d = %d", len(c.K), len(c.V), c.B, c.Hkv, c.B*c.Hkv)
	}
	for r := range c.K {
		if len(c.K[r]) != c.N*c.D || len(c.V[r]) != c.N*c.D {
			return fmt.Errorf("kv: row %d holds %d values of K and %d of V, want N*D = %d*%d = %d", r, len(c.K[r]), len(c.V[r]), c.N, c.D, c.N*c.D)
		}
	}
	return nil
}

// Key returns key t of batch b, KV head h: [D], aliasing the cache.
func (c *KV) Key(b, h, t int) []float32 { return c.K[b*c.Hkv+h][t*c.D : (t+1)*c.D] }

// Value returns value t of batch b, KV head h: [D], aliasing the cache.
func (c *KV) Value(b, h, t int) []float32 { return c.V[b*c.Hkv+h][t*c.D : (t+1)*c.D] }

// Append adds one token to every row. k and v are [B][Hkv][D].
func (c *KV) Append(k, v []float32) error {
	want := c.B * c.Hkv * c.D
	if len(k) != want || len(v) != want {
		return fmt.Errorf("kv append: len(k)=%d len(v)=%d, want B*Hkv*D = %d", len(k), len(v), want)
	}
	for r := range c.K {
		c.K[r] = append(c.K[r], k[r*c.D:(r+1)*c.D]...)
		c.V[r] = append(c.V[r], v[r*c.D:(r+1)*c.D]...)
	}
	c.N++
	return nil
}

// Clone returns a deep copy of c, so that a method may append without touching
// the caller's cache.
func (c *KV) Clone() *KV {
	d := &KV{B: c.B, Hkv: c.Hkv, D: c.D, N: c.N, K: make([][]float32, len(c.K)), V: make([][]float32, len(c.V))}
	for r := range c.K {
		d.K[r] = append([]float32(nil), c.K[r]...)
		d.V[r] = append([]float32(nil), c.V[r]...)
	}
	return d
}

// Flat returns the cache as flat k and v tensors, each [B][Hkv][N][D].
func (c *KV) Flat() (k, v []float32) {
	k = make([]float32, 0, c.B*c.Hkv*c.N*c.D)
	v = make([]float32, 0, c.B*c.Hkv*c.N*c.D)
	for r := range c.K {
		k = append(k, c.K[r]...)
		v = append(v, c.V[r]...)
	}
	return k, v
}

// Shape returns the decode-step shape of c for queries with hq heads.
func (c *KV) Shape(hq int) Shape { return Shape{B: c.B, Hq: hq, Hkv: c.Hkv, N: c.N, D: c.D} }
