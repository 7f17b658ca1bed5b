// Package spirv reads the few facts the Vulkan runtime needs from a SPIR-V
// module without any tool: the layout of its push-constant block (member
// offsets, sizes and scalar kinds, from OpMemberDecorate Offset and the member
// types) and the ids of its specialization constants (OpDecorate SpecId).
//
// The runtime checks the push-constant struct of every kernel against the
// block the shader declares, so a Go struct and a GLSL block that drift apart
// fail at pipeline creation and in tests, not as garbage on the GPU.
package spirv

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Magic is the first word of every SPIR-V module.
const Magic = 0x07230203

// SPIR-V opcodes, decorations and storage classes used here (SPIR-V 1.6 spec,
// section 3).
const (
	opTypeInt        = 21
	opTypeFloat      = 22
	opTypeVector     = 23
	opTypeArray      = 28
	opTypeStruct     = 30
	opTypePointer    = 32
	opConstant       = 43
	opVariable       = 59
	opDecorate       = 71
	opMemberDecorate = 72

	decSpecID      = 1
	decBlock       = 2
	decArrayStride = 6
	decOffset      = 35

	storagePushConstant = 9
)

// Kind is the scalar type of a push-constant member (of its components, for
// vectors and arrays).
type Kind int

// The scalar kinds.
const (
	Uint Kind = iota
	Int
	Float
)

// String returns "uint", "int" or "float".
func (k Kind) String() string { return [...]string{"uint", "int", "float"}[k] }

// Member is one member of a push-constant block.
type Member struct {
	Offset uint32 // byte offset (OpMemberDecorate Offset)
	Size   uint32 // bytes
	Kind   Kind   // scalar kind of its components
	Bits   uint32 // scalar width in bits
}

// Block is the push-constant block of a module.
type Block struct {
	Members []Member
	Size    uint32 // end of the last member, the size vkCmdPushConstants must cover
}

// Words converts a little-endian SPIR-V binary to words, checking the magic
// number and the length.
func Words(b []byte) ([]uint32, error) {
	if len(b) < 20 || len(b)%4 != 0 {
		return nil, fmt.Errorf("spirv: %d bytes is not a SPIR-V module (want a multiple of 4, at least 20)", len(b))
	}
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	if w[0] != Magic {
		return nil, fmt.Errorf("spirv: magic %#08x, want %#08x", w[0], Magic)
	}
	return w, nil
}

type typeInfo struct {
	op     uint32
	kind   Kind
	bits   uint32
	elem   uint32 // vector/array element type id
	count  uint32 // vector count; array length constant id
	fields []uint32
}

// module is the parsed subset of a module.
type module struct {
	types    map[uint32]typeInfo
	consts   map[uint32]uint32
	pointers map[uint32][2]uint32 // pointer type id -> (storage class, pointee)
	vars     map[uint32]uint32    // variable id -> pointer type id, push constants only
	offsets  map[[2]uint32]uint32 // (struct, member) -> offset
	strides  map[uint32]uint32    // array type -> ArrayStride
	blocks   map[uint32]bool
	specIDs  []uint32
}

func parse(w []uint32) (*module, error) {
	if len(w) < 5 || w[0] != Magic {
		return nil, fmt.Errorf("spirv: not a SPIR-V module")
	}
	m := &module{
		types: map[uint32]typeInfo{}, consts: map[uint32]uint32{}, pointers: map[uint32][2]uint32{},
		vars: map[uint32]uint32{}, offsets: map[[2]uint32]uint32{}, strides: map[uint32]uint32{}, blocks: map[uint32]bool{},
	}
	for i := 5; i < len(w); {
		n, op := w[i]>>16, w[i]&0xffff
		if n == 0 || i+int(n) > len(w) {
			return nil, fmt.Errorf("spirv: bad instruction length %d at word %d", n, i)
		}
		a := w[i+1 : i+int(n)] // operands
		switch {
		case op == opTypeInt && len(a) >= 3:
			k := Uint
			if a[2] != 0 {
				k = Int
			}
			m.types[a[0]] = typeInfo{op: op, kind: k, bits: a[1]}
		case op == opTypeFloat && len(a) >= 2:
			m.types[a[0]] = typeInfo{op: op, kind: Float, bits: a[1]}
		case op == opTypeVector && len(a) >= 3:
			m.types[a[0]] = typeInfo{op: op, elem: a[1], count: a[2]}
		case op == opTypeArray && len(a) >= 3:
			m.types[a[0]] = typeInfo{op: op, elem: a[1], count: a[2]}
		case op == opTypeStruct && len(a) >= 1:
			m.types[a[0]] = typeInfo{op: op, fields: slices.Clone(a[1:])}
		case op == opTypePointer && len(a) >= 3:
			m.pointers[a[0]] = [2]uint32{a[1], a[2]}
		case op == opConstant && len(a) >= 3:
			m.consts[a[1]] = a[2]
		case op == opVariable && len(a) >= 3 && a[2] == storagePushConstant:
			m.vars[a[1]] = a[0]
		case op == opDecorate && len(a) >= 2:
			switch a[1] {
			case decBlock:
				m.blocks[a[0]] = true
			case decSpecID:
				if len(a) >= 3 {
					m.specIDs = append(m.specIDs, a[2])
				}
			case decArrayStride:
				if len(a) >= 3 {
					m.strides[a[0]] = a[2]
				}
			}
		case op == opMemberDecorate && len(a) >= 4 && a[2] == decOffset:
			m.offsets[[2]uint32{a[0], a[1]}] = a[3]
		}
		i += int(n)
	}
	slices.Sort(m.specIDs)
	return m, nil
}

// size returns the byte size, scalar kind and width of type id.
func (m *module) size(id uint32) (uint32, Kind, uint32, error) {
	t, ok := m.types[id]
	if !ok {
		return 0, 0, 0, fmt.Errorf("spirv: type %%%d is not a scalar, vector or array type", id)
	}
	switch t.op {
	case opTypeInt, opTypeFloat:
		return t.bits / 8, t.kind, t.bits, nil
	case opTypeVector:
		s, k, b, err := m.size(t.elem)
		return s * t.count, k, b, err
	case opTypeArray:
		_, k, b, err := m.size(t.elem)
		n, ok := m.consts[t.count]
		stride, ok2 := m.strides[id]
		if !ok || !ok2 {
			return 0, 0, 0, fmt.Errorf("spirv: array %%%d has no constant length or ArrayStride", id)
		}
		return stride * n, k, b, err
	}
	return 0, 0, 0, fmt.Errorf("spirv: push-constant member of type op %d is not supported (use scalars, vectors and arrays)", t.op)
}

// PushConstants returns the module's push-constant block, or ok=false when it
// declares none.
func PushConstants(w []uint32) (b Block, ok bool, err error) {
	m, err := parse(w)
	if err != nil {
		return Block{}, false, err
	}
	var structID uint32
	for _, ptr := range m.vars {
		p, found := m.pointers[ptr]
		if !found {
			return Block{}, false, fmt.Errorf("spirv: push-constant variable of unknown pointer type %%%d", ptr)
		}
		if structID != 0 && structID != p[1] {
			return Block{}, false, fmt.Errorf("spirv: more than one push-constant block")
		}
		structID = p[1]
	}
	if structID == 0 {
		return Block{}, false, nil
	}
	st, found := m.types[structID]
	if !found || st.op != opTypeStruct || !m.blocks[structID] {
		return Block{}, false, fmt.Errorf("spirv: push constants of type %%%d are not a Block struct", structID)
	}
	for i, f := range st.fields {
		off, found := m.offsets[[2]uint32{structID, uint32(i)}]
		if !found {
			return Block{}, false, fmt.Errorf("spirv: push-constant member %d has no Offset", i)
		}
		size, kind, bits, err := m.size(f)
		if err != nil {
			return Block{}, false, fmt.Errorf("spirv: push-constant member %d: %w", i, err)
		}
		b.Members = append(b.Members, Member{Offset: off, Size: size, Kind: kind, Bits: bits})
		b.Size = max(b.Size, off+size)
	}
	return b, true, nil
}

// SpecIDs returns the sorted constant_id values of the module's
// specialization constants (local_size_x_id counts as one).
func SpecIDs(w []uint32) ([]uint32, error) {
	m, err := parse(w)
	if err != nil {
		return nil, err
	}
	return m.specIDs, nil
}
