package plots

import (
	"image/color"

	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// known fixes the style of the series names that recur across figures (the
// methods of the paper and the two kinds of hashing), so that a method looks
// the same in every figure. Other names take the slots after these, in the
// order they appear.
var known = []string{"hata", "lsh", "loki", "quest", "streaming", "h2o", "magicpig", "topk", "dense"}

// aliases draw a name in the style of another: trained hashing is HATA,
// random hashing is the lsh baseline.
var aliases = map[string]string{"trained": "hata", "random": "lsh"}

// palette is a ten-colour qualitative palette (Tableau 10), readable on white
// and in greyscale prints together with the dashes.
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// glyphs are the markers, filled where gonum has a filled shape.
var glyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.PlusGlyph{}, draw.RingGlyph{},
}

// Style is how one series is drawn.
type Style struct {
	Color  color.Color
	Glyph  draw.GlyphDrawer
	Dashes []vg.Length
}

// StyleOf returns the style of slot i. Colours, markers and dashes cycle with
// periods 10, 8 and 9, so any two of the first 360 slots differ in at least
// one, and neighbouring slots in all three. Slot 0 (HATA) is drawn solid.
func StyleOf(i int) Style {
	i = max(i, 0)
	return Style{Color: palette[i%len(palette)], Glyph: glyphs[i%len(glyphs)], Dashes: plotutil.Dashes(i)}
}

// slots assigns style slots to the series names of one figure.
type slots map[string]int

// of returns the slot of name: its place in known, or the next free slot
// after them.
func (s slots) of(name string) int {
	if a, ok := aliases[name]; ok {
		name = a
	}
	for i, k := range known {
		if k == name {
			return i
		}
	}
	if i, ok := s[name]; ok {
		return i
	}
	i := len(known) + len(s)
	s[name] = i
	return i
}
