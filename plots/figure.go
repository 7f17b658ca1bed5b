package plots

import (
	"bytes"
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure lays out panels on a grid, row by row, Cols per row (a missing panel
// at the end leaves its tile empty).
type Figure struct {
	Panels []*plot.Plot
	Cols   int // panels per row; 0 means all in one row
	// PanelWidth and PanelHeight are the size of one tile; 0 means 4.5 x 3.5
	// inches.
	PanelWidth, PanelHeight vg.Length
}

// Formats lists the encodings Encode knows.
var Formats = []string{"png", "svg"}

// Encode renders the figure as "png" (150 dpi) or "svg" and returns the file's
// bytes. gonum/plot panics on some degenerate inputs; Encode turns a panic
// into an error so that no panic crosses this package's API.
func (f Figure) Encode(format string) (out []byte, err error) {
	if len(f.Panels) == 0 {
		return nil, fmt.Errorf("plots: figure without panels")
	}
	cols := f.Cols
	if cols <= 0 || cols > len(f.Panels) {
		cols = len(f.Panels)
	}
	rows := (len(f.Panels) + cols - 1) / cols
	pw, ph := f.PanelWidth, f.PanelHeight
	if pw == 0 {
		pw = 4.5 * vg.Inch
	}
	if ph == 0 {
		ph = 3.5 * vg.Inch
	}
	w, h := pw*vg.Length(cols), ph*vg.Length(rows)
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("plots: drawing the figure: %v", r)
		}
	}()
	var canvas vg.CanvasWriterTo
	switch format {
	case "png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(150))}
	case "svg":
		canvas = vgsvg.New(w, h)
	default:
		return nil, fmt.Errorf("plots: format %q, want one of %v", format, Formats)
	}
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		for c := range cols {
			if i := r*cols + c; i < len(f.Panels) {
				grid[r][c] = f.Panels[i]
			}
		}
	}
	tiles := draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6),
	}
	// Each panel draws in its own tile. (plot.Align would line the axes up
	// across tiles, but it clipped the top of a panel whose neighbour has a
	// log axis; separate tiles are always whole.)
	dc := draw.New(canvas)
	for r := range rows {
		for c := range cols {
			if grid[r][c] != nil {
				grid[r][c].Draw(tiles.At(dc, c, r))
			}
		}
	}
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plots: encoding %s: %w", format, err)
	}
	return buf.Bytes(), nil
}
