package plots

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Stacked is a stacked bar chart: one bar per category, each bar the sum of
// the layers (e.g. the stage times of one kernel variant).
type Stacked struct {
	Title      string
	YLabel     string   // with the unit, e.g. "time per decode step (µs)"
	Categories []string // the bars, left to right
	// Layers are stacked bottom to top; Layers[i].Y[j] is layer i's share of
	// bar j (its X is ignored). A NaN counts as 0.
	Layers []Series
}

// Plot builds the chart.
func (s Stacked) Plot() (*plot.Plot, error) {
	if len(s.Categories) == 0 {
		return nil, fmt.Errorf("plots: stacked chart %q has no categories", s.Title)
	}
	p := plot.New()
	p.Title.Text = s.Title
	p.Y.Label.Text = s.YLabel
	p.Legend.Top = true
	p.NominalX(s.Categories...)
	width := vg.Points(min(40, 300/float64(len(s.Categories))))
	var below *plotter.BarChart
	sl := slots{}
	for _, l := range s.Layers {
		if len(l.Y) != len(s.Categories) {
			return nil, fmt.Errorf("plots: layer %q has %d values for %d bars", l.Name, len(l.Y), len(s.Categories))
		}
		vs := make(plotter.Values, len(l.Y))
		for i, y := range l.Y {
			if !math.IsNaN(y) && !math.IsInf(y, 0) {
				vs[i] = y
			}
		}
		b, err := plotter.NewBarChart(vs, width)
		if err != nil {
			return nil, fmt.Errorf("plots: layer %q: %w", l.Name, err)
		}
		st := StyleOf(sl.of(l.Name))
		b.Color, b.LineStyle.Width = st.Color, vg.Points(0.5)
		if below != nil {
			b.StackOn(below)
		}
		below = b
		p.Add(b)
		p.Legend.Add(l.Name, b)
	}
	p.Y.Min = 0
	return p, nil
}
