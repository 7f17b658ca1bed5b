package plots

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestLineFigureEncodes(t *testing.T) {
	budgets := []float64{0.4, 0.78, 1.56, 3.12, 6.25}
	var series []Series
	for i, name := range []string{"hata", "lsh", "loki", "quest", "my-variant"} {
		y := make([]float64, len(budgets))
		for j := range y {
			y[j] = 1 - math.Exp(-float64(j+1)/float64(i+1))
		}
		series = append(series, Series{Name: name, X: budgets, Y: y})
	}
	series[1].Y[2] = math.NaN() // a missing value is skipped, not a crash
	l := Line{Title: "recall", XLabel: "budget (% of N)", YLabel: "recall", LogX: true, XTicks: budgets, YMin: 0, YMax: 1, Series: series}
	p, err := l.Plot()
	if err != nil {
		t.Fatal(err)
	}
	l.NoLegend = true
	p2, _ := l.Plot()
	leg, err := LegendPanel("methods", []string{"hata", "lsh", "loki", "quest", "my-variant"}, true)
	if err != nil {
		t.Fatal(err)
	}
	fig := Figure{Panels: []*plot.Plot{p, p2, leg}, Cols: 2}
	b, err := fig.Encode("png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Encode(png) is not a PNG: %v", err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != 2*675 || h != 2*525 {
		t.Errorf("PNG is %dx%d pixels, want 1350x1050 (2x2 tiles of 4.5x3.5 in at 150 dpi)", w, h)
	}
	s, err := fig.Encode("svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "hata", "my-variant", "budget (% of N)"} {
		if !strings.Contains(string(s), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if _, err := fig.Encode("gif"); err == nil {
		t.Errorf("Encode(gif) = nil error, want unknown format")
	}
}

// TestFigureLegend checks where Figure.Legend goes: into the grid's free
// tile when the last row has one, else into a strip LegendHeight high below
// a full grid (not a row of its own), and into the row when Cols is 0; and
// that the strip holds the legend's entries (its SVG text).
func TestFigureLegend(t *testing.T) {
	l := Line{Title: "t", XLabel: "x", YLabel: "y", NoLegend: true, Series: []Series{{Name: "hata", X: []float64{1, 2}, Y: []float64{1, 2}}}}
	p, err := l.Plot()
	if err != nil {
		t.Fatal(err)
	}
	leg, err := LegendPanel("method", []string{"hata", "dense", "quest"}, true)
	if err != nil {
		t.Fatal(err)
	}
	strip := LegendSize(3)
	px := func(x vg.Length) int { return int(math.Round(float64(x/vg.Inch) * 150)) }
	for _, c := range []struct {
		panels, cols int
		w, h         int // pixels at 150 dpi
	}{
		{3, 2, 2 * 675, 2 * 525},           // the legend in the second row's free tile
		{4, 2, 2 * 675, 2*525 + px(strip)}, // a full grid: the strip below it
		{2, 2, 2 * 675, 525 + px(strip)},   // one full row: the strip
		{1, 0, 2 * 675, 525},               // all in one row, the legend's tile included
		{2, 3, 3 * 675, 525},               // a free tile in the only row
	} {
		var panels []*plot.Plot
		for range c.panels {
			panels = append(panels, p)
		}
		fig := Figure{Panels: panels, Cols: c.cols, Legend: leg, LegendHeight: strip}
		b, err := fig.Encode("png")
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != c.w || h != c.h {
			t.Errorf("%d panels, %d columns, a legend: %dx%d pixels, want %dx%d", c.panels, c.cols, w, h, c.w, c.h)
		}
		svg, err := fig.Encode("svg")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"method", "dense", "quest"} {
			if !strings.Contains(string(svg), want) {
				t.Errorf("%d panels, %d columns: the SVG lacks the legend's %q", c.panels, c.cols, want)
			}
		}
	}
}

func TestLogAxisRejectsNonPositive(t *testing.T) {
	l := Line{Title: "t", LogY: true, Series: []Series{{Name: "hata", X: []float64{1, 2}, Y: []float64{1, 0}}}}
	if _, err := l.Plot(); err == nil || !strings.Contains(err.Error(), "hata") {
		t.Errorf("Plot() = %v, want an error naming the series", err)
	}
}

// TestEmptyLogPanel: a panel with no point to draw (every series empty or
// missing) on log axes encodes as an empty panel titled so, instead of
// failing the figure (gonum/plot's log scale has no range without a point).
func TestEmptyLogPanel(t *testing.T) {
	for _, series := range [][]Series{nil, {{Name: "hata", X: []float64{1}, Y: []float64{math.NaN()}}}} {
		l := Line{Title: "speedup", LogX: true, LogY: true, XTicks: []float64{1024, 4096}, Series: series}
		p, err := l.Plot()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Title.Text, "no data") {
			t.Errorf("title %q: want it to say the panel has no data", p.Title.Text)
		}
		if _, err := (Figure{Panels: []*plot.Plot{p}}).Encode("png"); err != nil {
			t.Errorf("%d series: an empty log panel does not encode: %v", len(series), err)
		}
	}
}

// TestLogAxisOneValue: a log axis through a single value under 1 (one
// budget of 0.1%, one time of 0.5 us) draws; gonum/plot alone widens such a
// range by 1 either way, below 0.
func TestLogAxisOneValue(t *testing.T) {
	l := Line{Title: "recall", LogX: true, LogY: true, XTicks: []float64{0.001},
		Series: []Series{{Name: "hata", X: []float64{0.001}, Y: []float64{0.5}}, {Name: "quest", X: []float64{0.001}, Y: []float64{0.5}}}}
	p, err := l.Plot()
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min <= 0 || p.Y.Min <= 0 || p.X.Min >= p.X.Max || p.Y.Min >= p.Y.Max {
		t.Errorf("axes [%g, %g] x [%g, %g]: want positive ranges around the one value", p.X.Min, p.X.Max, p.Y.Min, p.Y.Max)
	}
	if _, err := (Figure{Panels: []*plot.Plot{p}}).Encode("png"); err != nil {
		t.Errorf("a log axis through one value does not draw: %v", err)
	}
}

func TestStackedEncodes(t *testing.T) {
	s := Stacked{Title: "breakdown", YLabel: "µs", Categories: []string{"naive", "fused"},
		Layers: []Series{{Name: "encode", Y: []float64{10, 8}}, {Name: "score", Y: []float64{50, 20}}}}
	p, err := s.Plot()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := (Figure{Panels: []*plot.Plot{p}}).Encode("png"); err != nil || len(b) < 1000 {
		t.Errorf("Encode(png) = %d bytes, %v; want a PNG", len(b), err)
	}
	s.NoLegend = true
	p, err = s.Plot()
	if err != nil {
		t.Fatal(err)
	}
	leg, err := BarLegendPanel("stage", []string{"encode", "score"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := (Figure{Panels: []*plot.Plot{p, leg}}).Encode("svg"); err != nil || !strings.Contains(string(b), "encode") {
		t.Errorf("Encode(svg) with a bar legend panel: %v", err)
	}
	bad := s
	bad.Layers = []Series{{Name: "encode", Y: []float64{1}}}
	if _, err := bad.Plot(); err == nil {
		t.Errorf("Plot() with a short layer = nil error")
	}
}

func TestStylesDiffer(t *testing.T) {
	for i := range 30 {
		a, b := StyleOf(i), StyleOf(i+1)
		if a.Color == b.Color {
			t.Errorf("slots %d and %d share a colour", i, i+1)
		}
	}
}

// TestTickLabel checks the x tick labels: context lengths in K and M, other
// values in %g.
func TestTickLabel(t *testing.T) {
	for x, want := range map[float64]string{
		8192: "8K", 262144: "256K", 1 << 20: "1M", 3 << 21: "6M", 1536: "1536",
		1000: "1000", 1.5625: "1.562", 0.39: "0.39", 100: "100",
	} {
		if got := tickLabel(x); got != want {
			t.Errorf("tickLabel(%v) = %q, want %q", x, got, want)
		}
	}
}
