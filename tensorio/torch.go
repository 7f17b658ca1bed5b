package tensorio

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hata-go/hata/ref"
)

// maxPickleSize bounds the data.pkl a PyTorch file may hold; one tensor's
// pickle is a few hundred bytes.
const maxPickleSize = 1 << 20

// ReadTorchTensor reads the single tensor of a PyTorch zip file written by
// torch.save (HATA's released hash_weight_layer_LL.pt files): the tensor
// itself, a Parameter, or a dict holding exactly one tensor. Its storage must
// be BFloat16, Float, Half, Double, Int or Long, little-endian, and the tensor
// contiguous in C order; floating types are converted to float32 (bfloat16 and
// float16 exactly). Python is never run: see the package comment.
func ReadTorchTensor(path string) (*Array, error) {
	return decodeFile(path, func(f *os.File, size int64) (*Array, error) {
		return DecodeTorchTensor(f, size, path)
	})
}

// DecodeTorchTensor is ReadTorchTensor on size bytes read through r; name
// prefixes every error.
func DecodeTorchTensor(r io.ReaderAt, size int64, name string) (*Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PyTorch zip file: %w", name, err)
	}
	var pkl *zip.File
	for _, f := range zr.File {
		dir, base := path.Split(f.Name)
		if base == "data.pkl" && strings.Count(dir, "/") == 1 {
			if pkl != nil {
				return nil, fmt.Errorf("%s: two pickles, %s and %s: want one tensor per file", name, pkl.Name, f.Name)
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("%s: no <archive>/data.pkl in the zip (the legacy, non-zip torch.save format is not supported)", name)
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	entry := func(n string) *zip.File {
		for _, f := range zr.File {
			if f.Name == prefix+n {
				return f
			}
		}
		return nil
	}
	if bo := entry("byteorder"); bo != nil {
		b, err := readEntry(bo, 16)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, bo.Name, err)
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("%s: %s is %q: only little-endian tensors are supported", name, bo.Name, b)
		}
	}
	p, err := readEntry(pkl, maxPickleSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, pkl.Name, err)
	}
	v, err := unpickle(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, pkl.Name, err)
	}
	t, err := findTensor(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, pkl.Name, err)
	}
	return readTensorData(t, entry("data/"+t.storage.key), prefix+"data/"+t.storage.key, name)
}

// findTensor returns the tensor a pickle holds: the value itself, or the only
// tensor among a dict's values.
func findTensor(v any) (pkTensor, error) {
	switch v := v.(type) {
	case pkTensor:
		return v, nil
	case *pkDict:
		var found []pkTensor
		for _, x := range v.vals {
			if t, ok := x.(pkTensor); ok {
				found = append(found, t)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		return pkTensor{}, fmt.Errorf("a dict with %d tensors among %d entries, want exactly one tensor", len(found), len(v.keys))
	}
	return pkTensor{}, fmt.Errorf("the pickle holds %s, not a tensor", describe(v))
}

// readTensorData checks t's shape, stride and storage against the storage
// entry f (named want in the archive) and reads the tensor's elements.
func readTensorData(t pkTensor, f *zip.File, want, name string) (*Array, error) {
	s := t.storage
	if s.dtype == "" {
		return nil, fmt.Errorf("%s: storage %s is not supported: want one of torch.BFloat16Storage, FloatStorage, HalfStorage, DoubleStorage, IntStorage, LongStorage", name, s.class)
	}
	dt, _ := dtypeByName(s.dtype)
	if len(t.size) != len(t.stride) {
		return nil, fmt.Errorf("%s: tensor size %v and stride %v differ in rank", name, t.size, t.stride)
	}
	shape := make([]int, len(t.size))
	for i, d := range t.size {
		shape[i] = int(d) // d >= 0 and < 2^63, checked by intTuple
	}
	n, nbytes, err := numElements(shape, dt.size)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %w", name, err)
	}
	if n > 0 {
		expect := int64(1) // a contiguous C-order stride; dims of size 1 may have any stride
		for i := len(shape) - 1; i >= 0; i-- {
			if t.size[i] != 1 && t.stride[i] != expect {
				return nil, fmt.Errorf("%s: tensor of size %v has stride %v: not contiguous in C order (save tensor.contiguous())", name, t.size, t.stride)
			}
			expect *= t.size[i]
		}
	}
	if t.offset > s.numel || n > s.numel-t.offset {
		return nil, fmt.Errorf("%s: tensor of size %v at offset %d overruns its storage of %d elements", name, t.size, t.offset, s.numel)
	}
	_, sbytes, err := numElements([]int{int(s.numel)}, dt.size)
	if err != nil {
		return nil, fmt.Errorf("%s: storage %w", name, err)
	}
	if f == nil {
		return nil, fmt.Errorf("%s: storage entry %s is missing from the zip", name, want)
	}
	if f.UncompressedSize64 != uint64(sbytes) {
		return nil, fmt.Errorf("%s: %s holds %d bytes, the pickle's %s of %d elements needs %d",
			name, f.Name, f.UncompressedSize64, s.class, s.numel, sbytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, f.Name, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<16)
	skip := t.offset * int64(dt.size)
	if k, err := io.CopyN(io.Discard, br, skip); err != nil {
		return nil, fmt.Errorf("%s: %s: truncated data: ends at byte %d, the tensor starts at byte %d", name, f.Name, k, skip)
	}
	a, got, err := readArray(br, shape, dt, n, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: truncated data: shape %v of %s needs %d bytes from byte %d, data ends at byte %d (%v)",
			name, f.Name, shape, dt.name, nbytes, skip, skip+got, err)
	}
	// Read to the end so that the zip reader checks the entry's size and CRC.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, f.Name, err)
	}
	return a, nil
}

// readEntry reads a small zip entry of at most limit bytes.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than the %d this reader accepts", f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than the %d bytes this reader accepts", limit)
	}
	return b, nil
}

// ReadHashWeights reads HATA hash weights W: [Hkv][D][Rbit] from an .npy file
// (float32, float16 or float64) or from a PyTorch .pt/.pth file holding one
// tensor (the authors' released hash_weight_layer_LL.pt, bfloat16), and checks
// them with ref.NewHashWeights: three dimensions, Rbit a positive multiple of
// 32, every entry finite. Errors name the file and the shape.
func ReadHashWeights(path string) (*ref.HashWeights, error) {
	var a *Array
	var err error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".npy":
		a, err = ReadNPY(path)
	case ".pt", ".pth":
		a, err = ReadTorchTensor(path)
	default:
		return nil, fmt.Errorf("%s: hash weights must be .npy or .pt (a torch.save file), not %q", path, ext)
	}
	if err != nil {
		return nil, err
	}
	if !a.IsFloat() {
		return nil, fmt.Errorf("%s: hash weights of dtype %s, want a floating type", path, a.Dtype)
	}
	if len(a.Shape) != 3 {
		return nil, fmt.Errorf("%s: hash weights of shape %v, want [Hkv, D, Rbit]", path, a.Shape)
	}
	w, err := ref.NewHashWeights(a.Shape[0], a.Shape[1], a.Shape[2], a.F32)
	if err != nil {
		return nil, fmt.Errorf("%s: shape %v: %w", path, a.Shape, err)
	}
	return w, nil
}
