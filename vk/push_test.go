package vk

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hata-go/hata/shaders"
	"github.com/hata-go/hata/vk/internal/spirv"
)

// TestPushConstantLayouts checks every embedded shader's push-constant block,
// read from the SPIR-V itself (OpMemberDecorate Offset), against the Go
// struct registered for it in pushStructs. It needs no device and no tools.
func TestPushConstantLayouts(t *testing.T) {
	names := shaders.Names()
	if len(names) == 0 {
		t.Fatal("no embedded shaders")
	}
	for _, name := range names {
		raw, err := shaders.SPIRV(name)
		if err != nil {
			t.Fatal(err)
		}
		code, err := spirv.Words(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		block, has, err := spirv.PushConstants(code)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		push, registered := pushStructs[name]
		switch {
		case !registered:
			t.Errorf("%s: not in pushStructs (registry.go): register its push-constant struct", name)
		case has != (push != nil):
			t.Errorf("%s: shader declares push constants = %v, pushStructs gives %T", name, has, push)
		case has:
			if err := CheckPushLayout(reflect.TypeOf(push), block); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if block.Size > 128 {
				t.Errorf("%s: %d bytes of push constants, over the portable 128", name, block.Size)
			}
		}
		if ids, err := spirv.SpecIDs(code); err != nil || len(ids) == 0 || ids[0] != 0 {
			t.Errorf("%s: specialization constants %v, %v: want local_size_x_id = 0 first", name, ids, err)
		}
	}
	for name := range pushStructs {
		if _, err := shaders.SPIRV(name); err != nil {
			t.Errorf("pushStructs has %q, which is not an embedded shader", name)
		}
	}
}

// TestCheckPushLayoutCatchesDrift shows that a struct that drifts from the
// shader's block is reported.
func TestCheckPushLayoutCatchesDrift(t *testing.T) {
	raw, err := shaders.SPIRV("dense_split_f32")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := spirv.Words(raw)
	block, _, err := spirv.PushConstants(code)
	if err != nil {
		t.Fatal(err)
	}
	type swapped struct { // Scale moved first
		Scale                                  float32
		N, Cap, Hkv, RowBase, SplitLen, Splits uint32
		Rows                                   uint32
	}
	type short struct{ N, Cap, Hkv, RowBase, SplitLen, Splits uint32 }
	type intScale struct {
		N, Cap, Hkv, RowBase, SplitLen, Splits uint32
		Scale                                  uint32
		Rows                                   uint32
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{swapped{}, "is float32"},
		{short{}, "6 fields"},
		{intScale{}, "is uint32"},
	} {
		err := CheckPushLayout(reflect.TypeOf(c.v), block)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckPushLayout(%T) = %v, want an error containing %q", c.v, err, c.want)
		}
	}
}
