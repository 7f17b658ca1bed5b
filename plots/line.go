package plots

import (
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Series is one named line: points (X[i], Y[i]), drawn in the order given.
type Series struct {
	Name string
	X, Y []float64
}

// Line is a line chart: one line with markers per series.
type Line struct {
	Title  string
	XLabel string // with the unit, e.g. "budget (% of cached tokens)"
	YLabel string
	LogX   bool // logarithmic x axis (every X must be > 0)
	LogY   bool // logarithmic y axis (every Y must be > 0)
	// XTicks, when set, puts the x ticks exactly at these values (the swept
	// parameter's values), labelled with %g.
	XTicks []float64
	// YMin, YMax fix the y range when YMax > YMin (e.g. 0..1 for a recall).
	YMin, YMax float64
	// NoMarkers draws lines only (for series of hundreds of points, such as
	// a loss per training step); the dashes still tell the series apart.
	NoMarkers bool
	// NoLegend leaves the legend out of the panel (see LegendPanel for a
	// legend shared by several panels).
	NoLegend bool
	// Names fixes the order in which names without a style of their own
	// (see StyleOf) take the free styles; give every panel of a figure the
	// same Names so a series looks the same in all of them. Empty: the order
	// of Series.
	Names  []string
	Series []Series
}

// Plot builds the chart. Non-finite points are skipped (a NaN in a result row
// is a missing value, not a crash); points off a log axis are an error.
func (l Line) Plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = l.Title
	p.X.Label.Text = l.XLabel
	p.Y.Label.Text = l.YLabel
	p.Legend.Top = true
	p.Legend.Left = false
	if l.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if l.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if len(l.XTicks) > 0 {
		var ts plot.ConstantTicks
		for _, x := range l.XTicks {
			ts = append(ts, plot.Tick{Value: x, Label: tickLabel(x)})
		}
		p.X.Tick.Marker = ts
	}
	sl := slots{}
	for _, n := range l.Names {
		sl.of(n)
	}
	drawn := 0 // series with a point on the panel
	for _, s := range l.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("plots: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		var xys plotter.XYs
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				continue
			}
			if (l.LogX && x <= 0) || (l.LogY && y <= 0) {
				return nil, fmt.Errorf("plots: series %q point (%g, %g) is not positive on a log axis (%q)", s.Name, x, y, l.Title)
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
		}
		if len(xys) == 0 {
			continue
		}
		drawn++
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("plots: series %q: %w", s.Name, err)
		}
		st := StyleOf(sl.of(s.Name))
		line.Color, line.Dashes, line.Width = st.Color, st.Dashes, vg.Points(1.5)
		points.Color, points.Shape, points.Radius = st.Color, st.Glyph, vg.Points(3)
		switch {
		case l.NoMarkers:
			p.Add(line)
			if !l.NoLegend {
				p.Legend.Add(s.Name, line)
			}
		default:
			p.Add(line, points)
			if !l.NoLegend {
				p.Legend.Add(s.Name, line, points)
			}
		}
	}
	// A log axis through one value (a single budget, every time equal) has
	// no range; gonum/plot would widen it by 1 either way, below 0 for a
	// value under 1. Widen it by a factor of 2 instead.
	for _, a := range []struct {
		log bool
		ax  *plot.Axis
	}{{l.LogX, &p.X}, {l.LogY, &p.Y}} {
		if a.log && drawn > 0 && a.ax.Min == a.ax.Max {
			a.ax.Min, a.ax.Max = a.ax.Min/2, a.ax.Max*2
		}
	}
	if l.YMax > l.YMin {
		p.Y.Min, p.Y.Max = l.YMin, l.YMax
	}
	if drawn == 0 {
		// Nothing to draw (a speed sweep of dense alone has no speedups): an
		// empty panel that says so, on linear axes, since a log axis
		// without a point has no range to draw.
		p.Title.Text += " (no data)"
		p.X.Scale, p.Y.Scale = plot.LinearScale{}, plot.LinearScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.DefaultTicks{}, plot.DefaultTicks{}
	}
	return p, nil
}

// LegendPanel returns a panel that holds only a legend: one entry per name,
// drawn in the style the name has in every Line of the same names. Put it in
// a Figure beside panels built with NoLegend, so no legend covers a line.
func LegendPanel(title string, names []string, markers bool) (*plot.Plot, error) {
	p := plot.New()
	p.HideAxes()
	p.Title.Text = title
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	p.Legend.ThumbnailWidth = vg.Points(40)
	sl := slots{} // names in the order the panels' Names give them
	dummy := plotter.XYs{{X: 0, Y: 0}}
	for _, name := range names {
		line, points, err := plotter.NewLinePoints(dummy)
		if err != nil {
			return nil, err
		}
		st := StyleOf(sl.of(name))
		line.Color, line.Dashes, line.Width = st.Color, st.Dashes, vg.Points(1.5)
		points.Color, points.Shape, points.Radius = st.Color, st.Glyph, vg.Points(3)
		if markers {
			p.Legend.Add(name, line, points)
		} else {
			p.Legend.Add(name, line)
		}
	}
	return p, nil
}

// tickLabel writes an x tick: multiples of 1024 from 1024 on as "8K", "256K"
// (context lengths; multiples of 1024*1024 as "1M"), others in %g with 4
// significant digits ("1.56"), so that swept token counts stay short enough
// not to run into each other on a log axis.
func tickLabel(x float64) string {
	switch {
	case x >= 1<<20 && math.Mod(x, 1<<20) == 0:
		return strconv.FormatFloat(x/(1<<20), 'g', -1, 64) + "M"
	case x >= 1<<10 && math.Mod(x, 1<<10) == 0:
		return strconv.FormatFloat(x/(1<<10), 'g', -1, 64) + "K"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}
