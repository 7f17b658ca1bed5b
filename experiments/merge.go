package experiments

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
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
// error says how many are missing (results.json lists them). Shards of a
// model kind must have read the same checkpoint and texts (their inputs.json
// agree); out keeps that record and the hash weights the shards trained, so
// that a run resumed in out checks and reuses them as it would in a shard.
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
			devices = union(devices, rec.Devices...)
		}
	}
	inputs, err := sameInputs(append([]string{out}, dirs...))
	if err != nil {
		return err
	}
	if err := checkConfig(out, bytes.TrimSpace(resolved), hash, true); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := copyKept(out, inputs, dirs, stderr); err != nil {
		return err
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

// sameInputs returns the inputs.json (a model run's record of the checkpoint
// and texts it read, checkInputs) that the directories that have one hold,
// or an error where two disagree: shards that read another checkpoint or
// text than each other cannot be merged, as a resume would refuse them. nil:
// none has one (the kinds without a model).
func sameInputs(dirs []string) ([]byte, error) {
	var first []byte
	var firstDir string
	var want map[string]string
	for _, d := range dirs {
		b, sums, err := readInputsFile(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if want == nil {
			first, firstDir, want = b, d, sums
			continue
		}
		if !maps.Equal(want, sums) {
			return nil, fmt.Errorf("merge: %s and %s read different model inputs (their %s differ: another checkpoint or text); shards of one sweep must read the same files",
				firstDir, d, inputsFile)
		}
	}
	return first, nil
}

// copyKept writes into out what a run keeps beside its points and out lacks:
// inputs (the shards' inputs.json, or nil), and the hash weights the shards
// trained (W.npy, W_rbit<r>.npy, hash/hash_weight_layer_LL.npy), the first
// shard's where several trained them, so that a resumed run in out reuses
// them as it would in a shard.
func copyKept(out string, inputs []byte, dirs []string, stderr io.Writer) error {
	if inputs != nil {
		if _, err := os.Stat(filepath.Join(out, inputsFile)); errors.Is(err, fs.ErrNotExist) {
			if err := writeFileAtomic(filepath.Join(out, inputsFile), inputs); err != nil {
				return fmt.Errorf("merge: %w", err)
			}
		}
	}
	for _, d := range dirs {
		if same, _ := sameDir(d, out); same {
			continue
		}
		var files []string
		for _, pat := range []string{"W.npy", "W_rbit*.npy", filepath.Join("hash", "hash_weight_layer_*.npy")} {
			m, err := filepath.Glob(filepath.Join(d, pat))
			if err != nil {
				return err
			}
			files = append(files, m...)
		}
		for _, f := range files {
			rel, err := filepath.Rel(d, f)
			if err != nil {
				return err
			}
			dst := filepath.Join(out, rel)
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			if err := writeFileAtomic(dst, b); err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			fmt.Fprintf(stderr, "merge: %s from %s\n", rel, d)
		}
	}
	return nil
}
