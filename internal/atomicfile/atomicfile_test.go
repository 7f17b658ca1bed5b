package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWrite checks that a write replaces the file whole with mode 0644 and
// leaves no temporary file, and that a failing write, at its start or
// midway, leaves the old content and no temporary file, with an error that
// names the path.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.csv")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<17) // past the buffer, so the failure below comes after a flush
	if err := WriteBytes(path, ".tmp-out.csv-*", []byte(big)); err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("content: %d bytes, want %d", len(got), len(want))
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("directory holds %d entries, want only %s", len(ents), filepath.Base(path))
		}
	}
	check(big)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	boom := errors.New("boom")
	for _, write := range []func(w io.Writer) error{
		func(io.Writer) error { return boom },
		func(w io.Writer) error {
			if _, err := w.Write([]byte(big)); err != nil {
				return err
			}
			return boom
		},
	} {
		err := Write(path, ".tmp-out.csv-*", write)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want boom naming %s", err, path)
		}
		check(big)
	}
	// A directory that is not there: an error naming the path, nothing made.
	missing := filepath.Join(dir, "nope", "out.csv")
	if err := WriteBytes(missing, ".tmp-*", []byte("x")); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("write into a missing directory: %v, want an error naming %s", err, missing)
	}
}
