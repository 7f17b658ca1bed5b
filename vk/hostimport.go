package vk

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// hugePage is the size of a transparent huge page on x86-64 and arm64 (4 KiB
// base pages): imported host memory is mapped at a multiple of it, so that
// the kernel may back it with huge pages.
const hugePage = 2 << 20

// madvHugePage is Linux's MADV_HUGEPAGE: back the range with transparent
// huge pages where the system allows it (transparent_hugepage "madvise" or
// "always").
const madvHugePage = 14

// newHostImport allocates a Host buffer of size bytes whose memory the
// process maps itself and the device imports (VK_EXT_external_memory_host)
// instead of allocating it: anonymous memory aligned to 2 MiB (and to
// DeviceInfo.HostImportAlignment), touched whole before the import. With huge
// the mapping asks for transparent huge pages (MADV_HUGEPAGE), so that the
// host's pages, and perhaps the device's translations of them, are 2 MiB
// rather than 4 KiB. The mapping is unmapped after the memory is freed.
func (c *Context) newHostImport(name string, size uint64, huge bool) (*Buffer, error) {
	if err := c.checkOpen(); err != nil {
		return nil, fmt.Errorf("vk: buffer %q: %w", name, err)
	}
	if c.Info.HostImportAlignment == 0 {
		return nil, fmt.Errorf("vk: buffer %q: device %q cannot import host memory (no %s)", name, c.Info.Name, vkc.ExtExternalMemoryHost)
	}
	size = max(4, (size+3)&^3)
	b := &Buffer{ctx: c, name: name, kind: Host, size: size}
	align := max(uint64(hugePage), c.Info.HostImportAlignment)
	msize := (size + align - 1) &^ (align - 1)
	if msize+align > uint64(^uint(0)>>1) {
		return nil, b.allocErr(fmt.Errorf("larger than the address space"), -1)
	}
	mem, idx, err := b.importHost(msize, align, huge)
	if err != nil {
		b.destroy() // the buffer and the mapping, where made
		return nil, b.allocErr(err, idx)
	}
	if err := b.bindMemory(mem, idx); err != nil {
		return nil, err
	}
	return b, nil
}

// importHost maps msize bytes aligned to align for b (b.hostMap), touches
// them (asking for huge pages first where huge), creates b's buffer and
// imports the mapping as memory of the Host type it may take. It returns the
// memory and its type (-1 before the type is chosen); on error the caller
// destroys b.
func (b *Buffer) importHost(msize, align uint64, huge bool) (unsafe.Pointer, int, error) {
	c := b.ctx
	m, err := syscall.Mmap(-1, 0, int(msize+align), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return nil, -1, fmt.Errorf("mmap: %w", err)
	}
	b.hostMap = m
	off := (align - uint64(uintptr(unsafe.Pointer(&m[0])))%align) % align
	host := m[off : off+msize]
	if huge {
		if err := syscall.Madvise(host, madvHugePage); err != nil {
			return nil, -1, fmt.Errorf("madvise(MADV_HUGEPAGE): %w", err)
		}
	}
	for i := 0; i < len(host); i += 4096 {
		host[i] = 0
	}
	buf, err := c.fns.HostBuffer(b.size, uint32(vulkan.BufferUsageStorageBufferBit|vulkan.BufferUsageTransferSrcBit|vulkan.BufferUsageTransferDstBit))
	if err != nil {
		return nil, -1, err
	}
	b.buf = vulkan.Buffer(buf)
	var req vulkan.MemoryRequirements
	vulkan.GetBufferMemoryRequirements(c.dev, b.buf, &req)
	req.Deref()
	ptr := unsafe.Pointer(&host[0])
	bits, err := c.fns.HostPointerTypes(ptr)
	if err != nil {
		return nil, -1, err
	}
	idx, err := c.memoryType(bits&req.MemoryTypeBits, Host)
	if err != nil {
		return nil, -1, err
	}
	if uint64(req.Size) > msize {
		return nil, -1, fmt.Errorf("the buffer needs %s, more than the %s mapped", bytesString(uint64(req.Size)), bytesString(msize))
	}
	mem, err := c.fns.ImportHostMemory(ptr, msize, uint32(idx))
	return mem, idx, err
}
