package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// RunFile runs the experiment of the config file at path with the command
// line's overrides and returns its results directory. Progress and notes go
// to stderr. It is RunContext without cancellation.
func RunFile(path string, ov Overrides, stderr io.Writer) (outDir string, err error) {
	return RunContext(context.Background(), path, ov, stderr)
}

// Run is RunFile with the results root outRoot and progress on os.Stderr.
func Run(cfgPath string, ov Overrides, outRoot string) (outDir string, err error) {
	ov.Out = outRoot
	return RunFile(cfgPath, ov, os.Stderr)
}

// RunContext loads the config at path, applies ov, and computes every point of
// the sweep that is not already in the results directory, one worker per
// device; then it assembles the CSV, figures and results.json.
//
// The results directory is <ov.Out>/<name> (<ov.Out>/<name>.shard-i-of-n for
// a shard). Each finished point is stored at once (points/<key>.json, written
// atomically), so an interrupted run (ctx cancelled, Ctrl-C, kill -9) loses at
// most the points in flight; re-running the same config computes only the
// missing points. A directory that holds another config's results is refused
// with a *ConfigChangedError. When ctx is cancelled RunContext returns ctx's
// error without assembling. Points that fail are reported together in the
// error, after the others are finished and assembled. A shard that holds
// no point of the sweep (a job array with more tasks than points) makes no
// directory and returns "" and no error.
func RunContext(ctx context.Context, path string, ov Overrides, stderr io.Writer) (string, error) {
	exp, err := Load(path, ov)
	if err != nil {
		return "", err
	}
	return runExperiment(ctx, exp, ov, stderr, runHooks{})
}

// runHooks are test seams of runExperiment.
type runHooks struct {
	// afterPoint is called after each stored point with the number stored so
	// far in this run (tests cancel the context there to simulate Ctrl-C).
	afterPoint func(n int)
	// backends, when set, replaces OpenBackend.
	backends []Backend
}

// resultsDir returns the results directory of a config name under out.
func resultsDir(out, name string, sh Shard) string {
	if out == "" {
		out = "results"
	}
	if !sh.all() {
		name = fmt.Sprintf("%s.shard-%d-of-%d", name, sh.I, sh.N)
	}
	return filepath.Join(out, name)
}

// runExperiment runs exp's points that its results directory lacks and
// assembles the directory (RunContext). The directory is made when the run
// first has something to write into it (env.makeDir): a run that fails
// before that leaves none, so the corrected config runs under the same name.
func runExperiment(ctx context.Context, exp experiment, ov Overrides, stderr io.Writer, hooks runHooks) (string, error) {
	c := exp.common()
	dir := resultsDir(ov.Out, c.Name, ov.Shard)
	resolved, hash, err := identity(exp)
	if err != nil {
		return "", err
	}
	if err := checkConfig(dir, resolved, hash, false); err != nil {
		return "", err
	}
	bes := hooks.backends
	if bes == nil {
		for _, spec := range c.Devices {
			b, err := OpenBackend(spec)
			if err != nil {
				closeBackends(bes)
				return "", err
			}
			bes = append(bes, b)
		}
		defer closeBackends(bes)
	}
	if err := checkDevices(exp, bes); err != nil {
		return "", err
	}
	if fr, ok := exp.(fileReader); ok { // a model kind: every point reads its files
		f, train := fr.readsFiles()
		if err := f.check(train); err != nil {
			return "", err
		}
	}

	all := exp.points()
	var todo []point
	done, bad, err := readPoints(dir)
	if err != nil {
		return "", err
	}
	for _, b := range bad {
		fmt.Fprintf(stderr, "%s: ignoring unreadable point file %s (recomputing it)\n", c.Name, b)
	}
	inShard := 0
	for _, p := range all {
		if !ov.Shard.has(p.Index) {
			continue
		}
		inShard++
		if _, ok := done[p.key(hash)]; !ok {
			todo = append(todo, p)
		}
	}
	if inShard == 0 { // a job array with more tasks than the sweep has points
		fmt.Fprintf(stderr, "%s: shard %s holds none of the sweep's %d points: nothing to run, no results directory made\n", c.Name, ov.Shard, len(all))
		return "", nil
	}
	prog := newProgress(stderr, c.Name, inShard, inShard-len(todo))
	e := &env{dir: dir, stderr: stderr, made: sync.OnceValue(func() error { return checkConfig(dir, resolved, hash, true) })}
	defer func() {
		if st, ok := e.state(func() any { return nil }).(*accState); ok {
			st.in.release()
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan point)
	commit := gitCommit() // the build every point of this run records
	var (
		mu       sync.Mutex
		failures []error
		stored   int
	)
	var wg sync.WaitGroup
	for _, b := range bes {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for p := range queue {
				start := time.Now()
				rows, err := runPoint(ctx, exp, e, w, p)
				if err == nil {
					err = checkRows(exp.columns(), rows)
				}
				if err == nil {
					err = e.makeDir()
				}
				if err == nil {
					params, _ := json.Marshal(p.Params)
					info := w.backend.Device()
					err = writePoint(dir, &pointFile{Key: p.key(hash), Index: p.Index, Params: params,
						Columns: exp.columns(), Rows: rows, Device: w.backend.Name(), DeviceInfo: &info, Seconds: time.Since(start).Seconds(), Commit: commit})
				}
				if ctx.Err() != nil && err != nil {
					continue // interrupted: the point is simply not done
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, errPoint(p, err))
				} else {
					stored++
				}
				n := stored
				mu.Unlock()
				prog.point(err == nil, p.label())
				if err == nil && hooks.afterPoint != nil {
					hooks.afterPoint(n)
				}
			}
		}(newWorker(b, samplesOf(exp)))
	}
feed:
	for _, p := range todo {
		select {
		case queue <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return dir, fmt.Errorf("%s: interrupted after %d new points (finished points are kept; re-run to resume): %w", c.Name, stored, err)
	}
	devices := make([]DeviceRecord, len(bes))
	for i, b := range bes {
		devices[i] = DeviceRecord{Spec: b.Name(), DeviceInfo: b.Device()}
	}
	// The CSV, figures and results.json, from the points there are.
	var assembled error
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil { // a results directory, made now or before
		assembled = assemble(dir, exp, hash, ov.Shard, devices, stderr)
	}
	switch {
	case len(failures) > 0:
		return dir, fmt.Errorf("%s: %d of %d points failed:\n%w", c.Name, len(failures), len(todo), errors.Join(append(failures, assembled)...))
	case assembled != nil:
		return dir, fmt.Errorf("%s: every point is done (kept in %s), but assembling the results failed: %w", c.Name, filepath.Join(dir, "points"), assembled)
	}
	return dir, nil
}

// runPoint runs one point of exp, its panics (a bug, or an allocation no
// check foresaw) returned as the point's error: a worker's goroutine is
// outside main's recover, and the other points still finish.
func runPoint(ctx context.Context, exp experiment, e *env, w *worker, p point) (rows [][]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			rows, err = nil, fmt.Errorf("internal error: %v", r)
		}
	}()
	return exp.run(ctx, e, w, p)
}

// samplesOf returns how many prefilled methods a worker keeps: the
// evaluation steps of an accuracy kind (one prefill per step and method).
func samplesOf(exp experiment) int {
	type sampler interface{ samples() int }
	if s, ok := exp.(sampler); ok {
		return s.samples()
	}
	return 1
}

func (in *Input) samples() int { return in.Samples }

// checkRows verifies that every row has one value per column.
func checkRows(cols []string, rows [][]string) error {
	for i, r := range rows {
		if len(r) != len(cols) {
			return fmt.Errorf("row %d has %d values for %d columns", i, len(r), len(cols))
		}
	}
	return nil
}

// DeviceRecord is a device of results.json.
type DeviceRecord struct {
	Spec string `json:"spec"`
	DeviceInfo
}

// Record is the content of results.json.
type Record struct {
	Name        string          `json:"name"`
	Kind        string          `json:"kind"`
	Description string          `json:"description,omitempty"`
	ConfigHash  string          `json:"config_hash"`
	Config      json.RawMessage `json:"config"`
	Devices     []DeviceRecord  `json:"devices"`
	Commit      string          `json:"commit"` // the build that wrote this record
	// Commits are the builds that computed the stored points, in the order
	// of the points, where they are recorded: more than Commit's one when a
	// resume or a merge joined runs of different builds.
	Commits []string `json:"commits"`
	Date    string   `json:"date"`
	Shard   string   `json:"shard"`
	Points  int      `json:"points"`  // points of the sweep (of the shard)
	Done    int      `json:"done"`    // points with results
	Missing []int    `json:"missing"` // indices of points without results
	CSV     string   `json:"csv"`
	Figures []string `json:"figures"`
}

// union returns s with each of xs that it does not hold yet appended, in
// order; s's backing array is never written (the caller's devices).
func union[T comparable](s []T, xs ...T) []T {
	s = slices.Clip(s)
	for _, x := range xs {
		if !slices.Contains(s, x) {
			s = append(s, x)
		}
	}
	return s
}

// assemble builds <kind>.csv from the stored points of dir (every point of
// the sweep that has a file, in sweep order), draws the figures and writes
// results.json. sh selects which points count as expected (missing).
// results.json's devices are devices, those its previous version named
// (the runs before a resume, which computed some of the points), and those
// the point files name (the runs interrupted before they assembled).
func assemble(dir string, exp experiment, hash string, sh Shard, devices []DeviceRecord, stderr io.Writer) error {
	c := exp.common()
	stored, _, err := readPoints(dir)
	if err != nil {
		return err
	}
	var before Record
	if b, err := os.ReadFile(filepath.Join(dir, resultsFile)); err == nil && json.Unmarshal(b, &before) == nil {
		devices = union(devices, before.Devices...)
	}
	t := &Table{Columns: exp.columns()}
	rec := Record{Name: c.Name, Kind: c.Kind, Description: c.Description, ConfigHash: hash,
		Devices: devices, Commit: gitCommit(), Date: time.Now().UTC().Format(time.RFC3339), Shard: sh.String(),
		CSV: c.Kind + ".csv", Missing: []int{}, Commits: []string{}}
	for _, p := range exp.points() {
		pf, ok := stored[p.key(hash)]
		if ok {
			if !slices.Equal(pf.Columns, t.Columns) {
				return fmt.Errorf("%s: point %d was stored with columns %v, want %v", dir, p.Index, pf.Columns, t.Columns)
			}
			t.Rows = append(t.Rows, pf.Rows...)
			rec.Done++
			if pf.DeviceInfo != nil {
				rec.Devices = union(rec.Devices, DeviceRecord{Spec: pf.Device, DeviceInfo: *pf.DeviceInfo})
			}
			if pf.Commit != "" {
				rec.Commits = union(rec.Commits, pf.Commit)
			}
		}
		if sh.has(p.Index) {
			rec.Points++
			if !ok {
				rec.Missing = append(rec.Missing, p.Index)
			}
		}
	}
	exp.finish(t)
	b, err := encodeCSV(t)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, rec.CSV), b); err != nil {
		return err
	}
	if rec.Config, err = os.ReadFile(filepath.Join(dir, configFile)); err != nil {
		return err
	}
	var figErr error
	if len(t.Rows) > 0 {
		rec.Figures, figErr = writeFigures(dir, exp, t)
	}
	j, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, resultsFile), append(j, '\n')); err != nil {
		return err
	}
	if len(rec.Missing) == 0 {
		fmt.Fprintf(stderr, "%s: %d points -> %s\n", c.Name, rec.Done, filepath.Join(dir, rec.CSV))
	} else {
		fmt.Fprintf(stderr, "%s: %d points done, %d missing -> %s\n", c.Name, rec.Done, len(rec.Missing), filepath.Join(dir, rec.CSV))
	}
	return figErr
}

// writeFigures draws the kind's figures as PNG and SVG and returns the file
// names written.
func writeFigures(dir string, exp experiment, t *Table) ([]string, error) {
	figs, err := exp.figures(t)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range figs {
		for _, format := range []string{"png", "svg"} {
			b, err := f.Fig.Encode(format)
			if err != nil {
				return names, fmt.Errorf("figure %s: %w", f.Name, err)
			}
			name := f.Name + "." + format
			if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
				return names, err
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// buildCommit is the commit a binary was built from, set at link time:
// go build -ldflags "-X github.com/hata-go/hata/experiments.buildCommit=$(git rev-parse HEAD)"
// (tools/gpu-run.sh's build lines).
var buildCommit string

// gitCommit returns the commit the running code was built from: buildCommit,
// else the binary's embedded VCS revision (go build in a git checkout records
// it unless -buildvcs=false, with "+dirty" for uncommitted changes), else the
// working directory's HEAD marked "(checkout HEAD)", else "unknown". The
// binary's own revision comes first because a binary built on one machine
// and run on another (tools/gpu-run.sh) may run in a checkout at another
// commit; the mark says when the record is only where the checkout stood
// (a binary built with -buildvcs=false, as GOFLAGS on this project's build
// machine sets, and without the link-time commit).
func gitCommit() string {
	if buildCommit != "" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "+dirty"
			}
			return rev
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return s + " (checkout HEAD)"
	}
	return "unknown"
}

// closeBackends releases the backends that hold a device.
func closeBackends(bes []Backend) {
	for _, b := range bes {
		if c, ok := b.(io.Closer); ok {
			c.Close()
		}
	}
}
