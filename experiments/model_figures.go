package experiments

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// heatGrid is a grid of cell values for a heat map (gonum's GridXYZ): v[r][c]
// at column c (x = c) and row r (y = r), NaN where no result exists.
type heatGrid struct {
	v [][]float64
}

func (g heatGrid) Dims() (c, r int)   { return len(g.v[0]), len(g.v) }
func (g heatGrid) Z(c, r int) float64 { return g.v[r][c] }
func (g heatGrid) X(c int) float64    { return float64(c) }
func (g heatGrid) Y(r int) float64    { return float64(r) }

// redGreen is the colour scale of the paper's Fig. 6: red at 0, yellow at
// 0.5, green at 1, in n steps.
type redGreen int

func (n redGreen) Colors() []color.Color {
	stops := []color.RGBA{{215, 48, 39, 255}, {254, 224, 139, 255}, {26, 152, 80, 255}}
	cs := make([]color.Color, int(n))
	for i := range cs {
		t := float64(i) / float64(len(cs)-1) * 2 // 0..2 over the two segments
		j := min(int(t), 1)
		f := t - float64(j)
		a, b := stops[j], stops[j+1]
		lerp := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + f*(float64(y)-float64(x)))) }
		cs[i] = color.RGBA{lerp(a.R, b.R), lerp(a.G, b.G), lerp(a.B, b.B), 255}
	}
	return cs
}

var _ palette.Palette = redGreen(0)

// heatmapPanel draws z (rows by ys, columns by xs, values in [0, 1]) as a
// heat map on the red-yellow-green scale with each cell's value written in
// it; cells without a value are grey and marked "-".
func heatmapPanel(title, xLabel, yLabel string, xs, ys []string, z [][]float64) (*plot.Plot, error) {
	if len(xs) == 0 || len(ys) == 0 {
		return nil, fmt.Errorf("heat map %q: empty grid", title)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	h := plotter.NewHeatMap(heatGrid{v: z}, redGreen(21))
	h.Min, h.Max = 0, 1
	h.NaN = color.Gray{Y: 200}
	p.Add(h)
	var lab plotter.XYLabels
	for r := range ys {
		for c := range xs {
			lab.XYs = append(lab.XYs, plotter.XY{X: float64(c), Y: float64(r)})
			s := "-"
			if v := z[r][c]; !math.IsNaN(v) {
				s = fmt.Sprintf("%.2f", v)
			}
			lab.Labels = append(lab.Labels, s)
		}
	}
	labels, err := plotter.NewLabels(lab)
	if err != nil {
		return nil, err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign, labels.TextStyle[i].YAlign = text.XCenter, text.YCenter
		labels.TextStyle[i].Font.Size = vg.Points(8)
	}
	p.Add(labels)
	ticks := func(names []string) plot.ConstantTicks {
		var t plot.ConstantTicks
		for i, n := range names {
			t = append(t, plot.Tick{Value: float64(i), Label: n})
		}
		return t
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks(xs), ticks(ys)
	p.X.Min, p.X.Max = -0.5, float64(len(xs))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(ys))-0.5
	return p, nil
}
