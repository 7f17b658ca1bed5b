// Package atomicfile writes files so that a reader, or a run interrupted at
// any point, sees a file either as it was or complete: the one
// implementation the results store (experiments), the tensor writers
// (tensorio) and hata bench's CSVs share.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes path through a temporary file in path's directory, named
// after pattern as os.CreateTemp names it (its last "*" replaced by a
// random string): write fills it through a buffer, then it is made
// readable (0644), synced, closed and renamed over path, and the directory
// is synced (best effort: not every file system syncs directories). On any
// error the temporary file is removed, path is left as it was, and the
// error names path.
func Write(path, pattern string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<16)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteBytes is Write of data.
func WriteBytes(path, pattern string, data []byte) error {
	return Write(path, pattern, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
