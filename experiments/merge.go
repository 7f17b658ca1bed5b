package experiments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Merge joins the results directories dirs (the shards of one sweep, run
// with -shard i/n, possibly on several machines) into out: it checks that
// every directory holds the same resolved config (by identity hash; out too,
// if it already has results), copies their point files into out, and
// assembles out's CSV, figures and results.json as a run would. Where two
// directories hold the same point the first one's file is kept. When points
// of the sweep are still missing, everything present is assembled and the
// error says how many are missing (results.json lists them).
func Merge(out string, stderr io.Writer, dirs ...string) error {
	if len(dirs) == 0 {
		return fmt.Errorf("merge: no directories")
	}
	var exp experiment
	var resolved []byte
	var hash string
	var devices []DeviceRecord
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, configFile))
		if err != nil {
			return fmt.Errorf("merge: %s is not a results directory: %w", d, err)
		}
		e, err := decodeResolved(b)
		if err != nil {
			return fmt.Errorf("merge: %s: %w", filepath.Join(d, configFile), err)
		}
		_, h, err := identity(e)
		if err != nil {
			return err
		}
		if exp == nil {
			exp, resolved, hash = e, b, h
		} else if h != hash {
			return fmt.Errorf("merge: %s holds config %.12s, %s holds %.12s: shards of different configs cannot be merged",
				d, h, dirs[0], hash)
		}
		var rec Record
		if b, err := os.ReadFile(filepath.Join(d, resultsFile)); err == nil && json.Unmarshal(b, &rec) == nil {
			for _, dv := range rec.Devices {
				if !slices.Contains(devices, dv) {
					devices = append(devices, dv)
				}
			}
		}
	}
	if err := checkConfig(out, bytes.TrimSpace(resolved), hash, true); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	have, _, err := readPoints(out)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if same, _ := sameDir(d, out); same {
			continue
		}
		pts, bad, err := readPoints(d)
		if err != nil {
			return err
		}
		for _, b := range bad {
			fmt.Fprintf(stderr, "merge: skipping unreadable point file %s\n", b)
		}
		keys := make([]string, 0, len(pts))
		for k := range pts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if _, ok := have[k]; ok {
				continue
			}
			if err := writePoint(out, pts[k]); err != nil {
				return err
			}
			have[k] = pts[k]
		}
	}
	if err := assemble(out, exp, hash, Shard{}, devices, stderr); err != nil {
		return err
	}
	missing := 0
	for _, p := range exp.points() {
		if _, ok := have[p.key(hash)]; !ok {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("merge: %d of %d points are missing in %v (merged what there is into %s)", missing, len(exp.points()), dirs, out)
	}
	return nil
}

// sameDir reports whether a and b are the same directory.
func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
