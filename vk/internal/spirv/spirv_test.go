package spirv

import (
	"encoding/binary"
	"strings"
	"testing"
)

// asm builds a module from instructions given as opcode followed by operands.
func asm(insts ...[]uint32) []uint32 {
	w := []uint32{Magic, 0x00010500, 0, 100, 0}
	for _, in := range insts {
		w = append(w, uint32(len(in))<<16|in[0])
		w = append(w, in[1:]...)
	}
	return w
}

// A block { uint a; float b[3]; int c; vec2 d; } with std430 offsets, and
// specialization constants 1 and 0.
var testModule = asm(
	[]uint32{opTypeInt, 1, 32, 0},
	[]uint32{opTypeInt, 2, 32, 1},
	[]uint32{opTypeFloat, 3, 32},
	[]uint32{opConstant, 1, 4, 3},
	[]uint32{opTypeArray, 5, 3, 4},
	[]uint32{opDecorate, 5, decArrayStride, 4},
	[]uint32{opTypeVector, 6, 3, 2},
	[]uint32{opTypeStruct, 7, 1, 5, 2, 6},
	[]uint32{opMemberDecorate, 7, 0, decOffset, 0},
	[]uint32{opMemberDecorate, 7, 1, decOffset, 4},
	[]uint32{opMemberDecorate, 7, 2, decOffset, 16},
	[]uint32{opMemberDecorate, 7, 3, decOffset, 24},
	[]uint32{opDecorate, 7, decBlock},
	[]uint32{opTypePointer, 8, storagePushConstant, 7},
	[]uint32{opVariable, 8, 9, storagePushConstant},
	[]uint32{opDecorate, 10, decSpecID, 1},
	[]uint32{opDecorate, 11, decSpecID, 0},
)

func TestPushConstants(t *testing.T) {
	b, ok, err := PushConstants(testModule)
	if err != nil || !ok {
		t.Fatalf("PushConstants = %v, %v", ok, err)
	}
	want := []Member{{0, 4, Uint, 32}, {4, 12, Float, 32}, {16, 4, Int, 32}, {24, 8, Float, 32}}
	if len(b.Members) != len(want) || b.Size != 32 {
		t.Fatalf("block %+v, want members %+v and size 32", b, want)
	}
	for i := range want {
		if b.Members[i] != want[i] {
			t.Errorf("member %d = %+v, want %+v", i, b.Members[i], want[i])
		}
	}
	ids, err := SpecIDs(testModule)
	if err != nil || len(ids) != 2 || ids[0] != 0 || ids[1] != 1 {
		t.Errorf("SpecIDs = %v, %v; want [0 1]", ids, err)
	}
	none, ok, err := PushConstants(asm([]uint32{opTypeInt, 1, 32, 0}))
	if ok || err != nil || len(none.Members) != 0 {
		t.Errorf("a module without push constants: %+v, %v, %v", none, ok, err)
	}
}

func TestWordsAndBadModules(t *testing.T) {
	raw := make([]byte, 4*len(testModule))
	for i, w := range testModule {
		binary.LittleEndian.PutUint32(raw[4*i:], w)
	}
	w, err := Words(raw)
	if err != nil || len(w) != len(testModule) {
		t.Fatalf("Words = %d words, %v", len(w), err)
	}
	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"short":     {raw[:12], "not a SPIR-V module"},
		"unaligned": {raw[:21], "not a SPIR-V module"},
		"magic":     {append([]byte{1, 2, 3, 4}, raw[4:]...), "magic"},
	} {
		if _, err := Words(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Words error %v, want %q", name, err, c.want)
		}
	}
	trunc := append([]uint32(nil), testModule...)
	trunc[5] = 99<<16 | opTypeInt // claims 99 words
	if _, _, err := PushConstants(trunc); err == nil || !strings.Contains(err.Error(), "bad instruction length") {
		t.Errorf("truncated module: %v", err)
	}
}
