package experiments

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hata-go/hata/internal/atomicfile"
)

// The layout of a results directory <out>/<name>:
//
//	config.json         the resolved config, written first (when the run first
//	                    has something to keep: env.makeDir); its identity hash
//	                    guards the directory against another config's points
//	points/<key>.json   one finished point each: parameters, rows, device
//	<kind>.csv          the rows of every finished point, in sweep order
//	<figure>.png, .svg  the figures drawn from the CSV
//	results.json        what was run: config, devices, commit, date, figures
//	W*.npy              trained hash weights (accuracy kinds), reused on resume
//
// Every file is written atomically (temporary file in the same directory,
// fsync, rename), so an interrupted run leaves each file complete or absent.
const (
	configFile  = "config.json"
	pointsDir   = "points"
	resultsFile = "results.json"
	tempPrefix  = ".tmp-"
)

// writeFileAtomic writes data to path so that path is either its old content
// or all of data, even if the process is killed: it writes a temporary file
// in the same directory (named with tempPrefix, which the points reader
// skips), syncs it, renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteBytes(path, tempPrefix+filepath.Base(path)+"-*", data)
}

// pointFile is the content of points/<key>.json.
type pointFile struct {
	Key     string          `json:"key"`
	Index   int             `json:"index"`
	Params  json.RawMessage `json:"params"`
	Columns []string        `json:"columns"`
	Rows    [][]string      `json:"rows"`
	Device  string          `json:"device"`
	// DeviceInfo describes the device that computed the point, so that
	// results.json names it though the run that computed it was
	// interrupted before it wrote results.json (nil in files written
	// before it was recorded).
	DeviceInfo *DeviceInfo `json:"device_info,omitempty"`
	Seconds    float64     `json:"seconds"`
	// Commit is the build that computed the point (gitCommit), so that
	// results.json names every commit behind its CSV (empty in files
	// written before it was recorded).
	Commit string `json:"commit,omitempty"`
}

// writePoint stores a finished point.
func writePoint(dir string, pf *pointFile) error {
	b, err := json.MarshalIndent(pf, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, pointsDir, pf.Key+".json"), append(b, '\n'))
}

// readPoints returns the point files of dir by key. Files that do not parse,
// or whose key does not match their name, are reported in bad and left in
// place (the point is recomputed and the file then replaced); temporary files
// of interrupted writes are removed.
func readPoints(dir string) (points map[string]*pointFile, bad []string, err error) {
	points = map[string]*pointFile{}
	entries, err := os.ReadDir(filepath.Join(dir, pointsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return points, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, pointsDir, name)
		if strings.HasPrefix(name, tempPrefix) {
			os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		var pf pointFile
		if err := json.Unmarshal(b, &pf); err != nil || pf.Key+".json" != name {
			bad = append(bad, path)
			continue
		}
		points[pf.Key] = &pf
	}
	return points, bad, nil
}

// encodeCSV renders a table as CSV.
func encodeCSV(t *Table) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(t.Columns); err != nil {
		return nil, err
	}
	if err := w.WriteAll(t.Rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadCSV reads a results CSV back into a Table.
func ReadCSV(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty CSV", path)
	}
	return &Table{Columns: recs[0], Rows: recs[1:]}, nil
}

// checkConfig checks that dir may hold the results of the config with
// identity hash and, with create, makes it their directory (config.json, and
// points/) where it is not yet. A directory holding another config's
// results is an error, and so is one without config.json that holds
// anything (a user's files, or results this program did not write): results
// are never mixed and nothing a user wrote is overwritten.
func checkConfig(dir string, resolved []byte, hash string, create bool) error {
	path := filepath.Join(dir, configFile)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if held, err := foreignEntry(dir); err != nil {
			return err
		} else if held != "" {
			return fmt.Errorf("%s holds %s but no %s: not a results directory this program wrote; use another -out or name, or remove it", dir, held, configFile)
		}
		if !create {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(dir, pointsDir), 0o755); err != nil {
			return err
		}
		return writeFileAtomic(path, append(resolved, '\n'))
	case err != nil:
		return err
	}
	oldExp, err := decodeResolved(old)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	_, oldHash, err := identity(oldExp)
	if err != nil {
		return err
	}
	if oldHash != hash {
		return &ConfigChangedError{Dir: dir, Old: oldHash, New: hash}
	}
	if !create {
		return nil
	}
	return os.MkdirAll(filepath.Join(dir, pointsDir), 0o755)
}

// foreignEntry returns the first entry of dir (a path) that a new results
// directory may not hold, or "" where dir is absent or holds only empty
// directories and, in points/, temporary files of interrupted writes (a run
// stopped before it wrote config.json leaves an empty points/).
func foreignEntry(dir string) (string, error) {
	held := ""
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist) && path == dir:
			return filepath.SkipAll
		case err != nil:
			return err
		case d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) && filepath.Dir(path) == filepath.Join(dir, pointsDir):
			return nil
		}
		held = path
		return filepath.SkipAll
	})
	return held, err
}

// ConfigChangedError is returned when a results directory holds the points of
// a different resolved config: re-running a changed config never mixes its
// results with the old ones. Use another name (or -out), or remove the
// directory to start over.
type ConfigChangedError struct {
	Dir      string
	Old, New string // identity hashes
}

// Error says which directory holds another config's results and what to do.
func (e *ConfigChangedError) Error() string {
	return fmt.Sprintf("%s holds results of a different config (identity %.12s, this config %.12s): "+
		"give this config another name (-set name=...) or -out, or remove %s to start over",
		e.Dir, e.Old, e.New, e.Dir)
}
