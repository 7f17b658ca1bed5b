package ref

import (
	"fmt"
	"math"
)

// Recall returns the mean, over (batch, KV head) rows, of the fraction of the
// oracle's tokens that a method selected:
//
//	recall = mean_r |selected_r ∩ oracle_r| / |oracle_r|
//
// selected and oracle are [B*Hkv] rows of token indices; an empty oracle row
// is an error (its recall would be 0/0).
func Recall(selected, oracle [][]int32) (float64, error) {
	if len(selected) != len(oracle) || len(oracle) == 0 {
		return 0, fmt.Errorf("recall: %d selected rows, %d oracle rows", len(selected), len(oracle))
	}
	var sum float64
	for r := range oracle {
		if len(oracle[r]) == 0 {
			return 0, fmt.Errorf("recall: oracle row %d is empty", r)
		}
		in := make(map[int32]bool, len(selected[r]))
		for _, t := range selected[r] {
			in[t] = true
		}
		hit := 0
		for _, t := range oracle[r] {
			if in[t] {
				hit++
			}
		}
		sum += float64(hit) / float64(len(oracle[r]))
	}
	return sum / float64(len(oracle)), nil
}

// MassRecall returns the mean, over query heads, of the true dense softmax mass
// that falls on the tokens the head attended to:
//
//	mass = mean_{b,h} sum_{t in selected[b][h/G]} p[b][h][t]
//
// p: [B][Hq][N] from Probabilities; selected: [B*Hkv] rows, one set for the
// G heads of a group (Result.Selected), or [B*Hq] rows, one set per head
// (HeadSelector; the two agree when Hq = Hkv). 1 means the method kept every
// bit of attention; dense attention has mass 1 by definition.
func MassRecall(p []float64, selected [][]int32, b, hq, hkv, n int) (float64, error) {
	if len(p) != b*hq*n || len(selected) != b*hkv && len(selected) != b*hq {
		return 0, fmt.Errorf("mass recall: len(p)=%d want %d, %d selected rows want %d (B*Hkv) or %d (B*Hq)", len(p), b*hq*n, len(selected), b*hkv, b*hq)
	}
	g := hq / hkv
	if len(selected) == b*hq {
		g, hkv = 1, hq // a set per head
	}
	var sum float64
	for bb := range b {
		for h := range hq {
			row := p[(bb*hq+h)*n : (bb*hq+h+1)*n]
			for _, t := range selected[bb*hkv+h/g] {
				sum += row[t]
			}
		}
	}
	return sum / float64(b*hq), nil
}

// RelL2 returns the relative L2 error of an output against the dense output:
//
//	||got - want||_2 / ||want||_2
//
// over the whole [B][Hq][D] tensor (0 when both are zero).
func RelL2(got, want []float32) (float64, error) {
	if len(got) != len(want) {
		return 0, fmt.Errorf("rel L2: len(got)=%d, len(want)=%d", len(got), len(want))
	}
	var num, den float64
	for i := range got {
		e := float64(got[i]) - float64(want[i])
		num += e * e
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num), nil
	}
	return math.Sqrt(num / den), nil
}
