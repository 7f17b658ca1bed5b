package plots

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

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
	Cols   int // panels per row; 0 means all in one row (the legend's tile included)
	// PanelWidth and PanelHeight are the size of one tile; 0 means 4.5 x 3.5
	// inches.
	PanelWidth, PanelHeight vg.Length
	// Legend, when set, is a panel that holds only a legend (LegendPanel,
	// BarLegendPanel) shared by the panels: drawn in the grid's first free
	// tile, or, where the panels fill every row, in a strip LegendHeight
	// high and one tile wide below the grid, not in a row of its own.
	Legend *plot.Plot
	// LegendHeight is the strip's height (LegendSize gives it for a legend's
	// entries); 0 means a whole tile.
	LegendHeight vg.Length
}

// LegendSize is the height of a legend panel with a title and entries
// entries (LegendPanel's and BarLegendPanel's fonts), for
// Figure.LegendHeight.
func LegendSize(entries int) vg.Length {
	return vg.Points(26) + vg.Length(max(entries, 1))*vg.Points(11)
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
	tiles := len(f.Panels) // the panels, and the legend where it takes a tile
	if f.Legend != nil {
		tiles++
	}
	cols := f.Cols
	if cols <= 0 || cols > tiles {
		cols = tiles
	}
	pw, ph := cmp.Or(f.PanelWidth, 4.5*vg.Inch), cmp.Or(f.PanelHeight, 3.5*vg.Inch)
	panels := f.Panels
	strip := vg.Length(0) // the height of the legend's strip below the grid
	switch {
	case f.Legend == nil:
	case len(f.Panels)%cols != 0: // a free tile in the last row
		panels = append(slices.Clone(panels), f.Legend)
	default:
		strip = cmp.Or(f.LegendHeight, ph)
	}
	rows := (len(panels) + cols - 1) / cols
	w, h := pw*vg.Length(cols), ph*vg.Length(rows)+strip
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
			if i := r*cols + c; i < len(panels) {
				grid[r][c] = panels[i]
			}
		}
	}
	layout := draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6),
	}
	// Each panel draws in its own tile. (plot.Align would line the axes up
	// across tiles, but it clipped the top of a panel whose neighbour has a
	// log axis; separate tiles are always whole.)
	dc := draw.New(canvas)
	top := draw.Crop(dc, 0, 0, strip, 0) // the grid, above the legend's strip
	for r := range rows {
		for c := range cols {
			if grid[r][c] != nil {
				grid[r][c].Draw(layout.At(top, c, r))
			}
		}
	}
	if strip > 0 { // the strip: one tile wide, under the first column
		f.Legend.Draw(draw.Crop(dc, vg.Points(6), -(w - pw), vg.Points(6), -(h - strip)))
	}
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plots: encoding %s: %w", format, err)
	}
	return buf.Bytes(), nil
}
