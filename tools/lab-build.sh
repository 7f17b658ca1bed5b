#!/usr/bin/env bash
# Builds a kernel lab from a patch of shaders/ (the patches beside the logs in
# benchmarks/*/lab-*/): applies PATCH to a copy of this checkout's shaders/ and
# writes to OUTDIR (new, or holding no .spv) the SPIR-V of each kernel the
# patch changes (its source, includes expanded, differs), compiled as `make
# shaders` compiles, for HATA_VK_SPIRV=OUTDIR or tools/lab-ab.sh OUTDIR:
#   bash tools/lab-build.sh benchmarks/h200-2026-11-29/lab-264/one-byte-keys.patch bin/lab/k8
#   REPS=3 bash tools/lab-ab.sh bin/lab/k8 OUT.log -method hata -b 8 -n 131072
# A patch applies to the shaders of the commit it was made against (its
# BENCHMARKS.md entry names the run, and the run's log the commit); a patch
# that touches anything but shaders/ is a Go lab, which needs a build of hata
# of its own (tools/lab-ab.sh bin:PATH).
set -euo pipefail
usage="usage: tools/lab-build.sh PATCH OUTDIR"
patch=${1:?$usage}
out=${2:?$usage}
[ -f "$patch" ] || { echo "lab-build: $patch: no such file" >&2; exit 2; }
[ -d shaders ] || { echo "lab-build: run from the repository root (no shaders/ here)" >&2; exit 2; }
# OUTDIR holds this lab's kernels only: HATA_VK_SPIRV=OUTDIR would also load
# any other .spv there (an earlier lab's, or shaders/ itself, overwritten).
if ls "$out"/*.spv >/dev/null 2>&1; then
  echo "lab-build: $out already holds .spv files; give a new or empty OUTDIR" >&2
  exit 2
fi
if grep -E '^(\+\+\+|---) ' "$patch" | grep -vE '^(\+\+\+|---) (a/|b/)?shaders/' | grep -vq '/dev/null'; then
  echo "lab-build: $patch changes files outside shaders/: a Go lab, build hata with it instead" >&2
  exit 2
fi
glslc=${GLSLC:-glslc}
for t in patch "$glslc" spirv-val; do
  command -v "$t" >/dev/null || { echo "lab-build: $t not found (apt-get install patch; bash tools/deps.sh installs glslc and spirv-val)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/orig/shaders" "$tmp/lab/shaders"
cp shaders/*.glsl shaders/*.comp "$tmp/orig/shaders/"
cp shaders/*.glsl shaders/*.comp "$tmp/lab/shaders/"
if ! patch -s -p1 -d "$tmp/lab" < "$patch"; then
  echo "lab-build: $patch does not apply to this checkout's shaders/ (check out the commit it was made against)" >&2
  exit 1
fi
mkdir -p "$tmp/out"
n=0
for c in "$tmp"/lab/shaders/*.comp; do
  name=$(basename "$c" .comp)
  # A kernel is the patch's when its source, includes expanded, differs.
  # (From inside each copy, so that the #line directives name the same files.)
  (cd "$tmp/lab/shaders" && "$glslc" -E "$name.comp") > "$tmp/lab.i"
  (cd "$tmp/orig/shaders" && "$glslc" -E "$name.comp" 2>/dev/null) > "$tmp/orig.i" || : > "$tmp/orig.i"
  cmp -s "$tmp/lab.i" "$tmp/orig.i" && continue
  "$glslc" --target-env=vulkan1.2 -O -o "$tmp/out/$name.spv" "$c"
  spirv-val --target-env vulkan1.2 "$tmp/out/$name.spv"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "lab-build: $patch changes no kernel" >&2; exit 1; }
# Only a lab that compiled whole reaches OUTDIR.
mkdir -p "$out"
for s in "$tmp"/out/*.spv; do
  mv "$s" "$out/"
  echo "$out/$(basename "$s")"
done
