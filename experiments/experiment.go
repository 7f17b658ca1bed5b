package experiments

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/hata-go/hata/plots"
)

// experiment is one kind of experiment: a config struct with documented
// defaults that enumerates its points, computes one point into rows, and
// draws its figures from the rows.
type experiment interface {
	common() *Common
	// validate reports the first value out of range as a keyError.
	validate() error
	// columns are the CSV header; every row has one value per column.
	columns() []string
	// points enumerates the sweep in a fixed order.
	points() []point
	// run computes point p on worker w's backend and returns its rows.
	run(ctx context.Context, e *env, w *worker, p point) ([][]string, error)
	// finish fills the columns derived across points (e.g. speedup over
	// dense) once the table is assembled.
	finish(t *Table)
	// figures draws the table.
	figures(t *Table) ([]figure, error)
}

// point is one element of a sweep. Params is a small struct of the kind,
// JSON-encoded into the point's file and hashed into its key.
type point struct {
	Index  int
	Params any
}

// key returns the point's file key: a hash of the config identity and the
// point's parameters, so that a point file can only ever be read back by the
// same config and point.
func (p point) key(configHash string) string {
	b, _ := json.Marshal(p.Params) // params are plain structs of numbers and strings
	sum := sha256.Sum256(append([]byte(configHash+"\n"), b...))
	return hex.EncodeToString(sum[:12])
}

// label is the point's parameters in compact JSON, for progress and errors.
func (p point) label() string {
	b, _ := json.Marshal(p.Params)
	return string(b)
}

// env is what the points of one run share: the results directory, the
// diagnostics writer, and lazily built inputs (samples, hash weights, ...).
type env struct {
	dir    string
	stderr io.Writer
	// made makes dir a results directory (config.json, points/) the
	// first time anything is to be written into it (nil: dir is made).
	made func() error

	mu   sync.Mutex
	data any // the kind's shared state, built on first use
}

// makeDir makes the results directory before the first file of a run is
// written into it: a run that fails before it has anything to keep leaves
// no directory, and never removes one that another run may be filling.
func (e *env) makeDir() error {
	if e.made == nil {
		return nil
	}
	return e.made()
}

// state returns the kind's shared state, built by init on the first call
// (workers call it concurrently).
func (e *env) state(init func() any) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.data == nil {
		e.data = init()
	}
	return e.data
}

// figure is one figure of a kind, written as <dir>/<Name>.png and .svg.
type figure struct {
	Name string
	Fig  plots.Figure
}

// Table is an assembled result table: the CSV's columns and rows.
type Table struct {
	Columns []string
	Rows    [][]string
}

// col returns the index of column name, or -1.
func (t *Table) col(name string) int { return slices.Index(t.Columns, name) }

// Str returns the value of column name in row i ("" when absent).
func (t *Table) Str(i int, name string) string {
	if c := t.col(name); c >= 0 && c < len(t.Rows[i]) {
		return t.Rows[i][c]
	}
	return ""
}

// Float returns the value of column name in row i as a number (NaN when
// absent or not a number).
func (t *Table) Float(i int, name string) float64 {
	f, err := strconv.ParseFloat(t.Str(i, name), 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// set writes v into column name of row i.
func (t *Table) set(i int, name, v string) {
	if c := t.col(name); c >= 0 && c < len(t.Rows[i]) {
		t.Rows[i][c] = v
	}
}

// series groups rows by the value of column by (in order of first
// appearance) and returns one plots.Series per group with x and y columns,
// its points in order of x (a line is drawn through its points in the order
// given, and a sweep's values, hence its rows, may be listed in any order).
func (t *Table) series(by, x, y string, keep func(i int) bool) []plots.Series {
	var out []plots.Series
	idx := map[string]int{}
	for i := range t.Rows {
		if keep != nil && !keep(i) {
			continue
		}
		name := t.Str(i, by)
		j, ok := idx[name]
		if !ok {
			j = len(out)
			idx[name] = j
			out = append(out, plots.Series{Name: name})
		}
		out[j].X = append(out[j].X, t.Float(i, x))
		out[j].Y = append(out[j].Y, t.Float(i, y))
	}
	for j, s := range out {
		idx := make([]int, len(s.X))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(s.X[a], s.X[b]) })
		xs, ys := make([]float64, len(idx)), make([]float64, len(idx))
		for i, k := range idx {
			xs[i], ys[i] = s.X[k], s.Y[k]
		}
		out[j].X, out[j].Y = xs, ys
	}
	return out
}

// fmtFloat formats a result value: the shortest representation that reads
// back exactly, so CSV files are deterministic and lossless.
func fmtFloat(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// fmtInt formats an integer column.
func fmtInt(x int) string { return strconv.Itoa(x) }

// errPoint wraps a point's error with its parameters.
func errPoint(p point, err error) error {
	return fmt.Errorf("point %d %s: %w", p.Index, p.label(), err)
}
