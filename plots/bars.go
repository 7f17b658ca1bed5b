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
	// NoLegend leaves the legend out (see BarLegendPanel).
	NoLegend bool
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
		if !s.NoLegend {
			p.Legend.Add(l.Name, b)
		}
	}
	p.Y.Min = 0
	return p, nil
}

// BarLegendPanel returns a panel that holds only the legend of a Stacked
// chart whose layers are named names, bottom to top; the legend lists them
// top to bottom, as they are stacked.
func BarLegendPanel(title string, names []string) (*plot.Plot, error) {
	p := plot.New()
	p.HideAxes()
	p.Title.Text = title
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	sl := slots{}
	for _, name := range names {
		sl.of(name) // the slots in stacking order, as Stacked assigns them
	}
	for i := len(names) - 1; i >= 0; i-- {
		b, err := plotter.NewBarChart(plotter.Values{0}, vg.Points(10))
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = StyleOf(sl.of(names[i])).Color, vg.Points(0.5)
		p.Legend.Add(names[i], b)
	}
	return p, nil
}
