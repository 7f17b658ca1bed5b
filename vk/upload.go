package vk

import "fmt"

// queryUpload records how a decode step's queries reach the device: copied
// from the host into a device-local staging buffer, then into the step's
// query buffer by a compute kernel (copy.comp), so that the step's first
// kernel follows a compute dispatch that wrote its input, as the attention
// of a model follows the query projection (and RoPE) that wrote q.
//
// A host copy alone would time the step differently from a model's: on the
// H200 the first kernel of a step whose upload held only transfers took 1-2.6
// us longer than after a compute dispatch (Quest's score stage, dense's
// split; BENCHMARKS.md, session 21, run 246), and HATA's step had been spared
// that only because its histograms' fill preceded it. The upload stage is a
// host stage: its time is not part of the step's.
type queryUpload struct {
	stage *Buffer // device-local, the host's queries before the kernel copies them
	set   *Set    // copy.comp from stage into dst
	dst   Range   // what set writes
}

// record records, in b's upload stage, src (host-visible: [B][Hq][D]
// float32) copied into the staging buffer, a barrier, and copy.comp copying
// it into dst; the caller's barrier after the upload stage follows. Sizes
// that are not a multiple of 16 bytes (copy.comp's uvec4) are copied by a
// transfer alone.
func (u *queryUpload) record(c *Context, b *Batch, dst, src Range) error {
	if dst.Size != src.Size {
		return fmt.Errorf("vk: query upload: %d bytes into %d", src.Size, dst.Size)
	}
	if dst.Size%16 != 0 {
		u.free()
		b.Copy(dst, src)
		return nil
	}
	if u.set == nil || u.dst != dst {
		u.free()
		k, err := c.SharedKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{copyWorkgroup}})
		if err != nil {
			return err
		}
		if u.stage, err = c.NewBuffer("q staging", dst.Size, DeviceLocal); err != nil {
			return err
		}
		if u.set, err = k.NewSet(u.stage.Range(0, dst.Size), dst); err != nil {
			u.free()
			return err
		}
		u.dst = dst
	}
	b.Copy(u.stage.Range(0, src.Size), src)
	b.Barrier()
	n := dst.Size / 16
	b.Dispatch(u.set.k, u.set, copyPush{N: uint32(n)}, c.copyGroups(n), 1, 1)
	return nil
}

// free frees the staging buffer and the set.
func (u *queryUpload) free() {
	u.set.Free()
	u.stage.Free()
	*u = queryUpload{}
}
