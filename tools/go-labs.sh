#!/usr/bin/env bash
# Builds the built-in hata and one build per Go lab patch, and packs them into
# one OUT.tar.xz for a device call (BENCHMARKS.md, session 33):
#   bash tools/go-labs.sh bin/b/labs.tar.xz benchmarks/h200-2026-11-29/lab-367/*.patch benchmarks/h200-2026-11-29/lab-368/*.patch
# writes, inside the archive, hata (this checkout's HEAD) and hata-lab-367,
# hata-lab-368 (HEAD with each patch; the name from the patch's folder). On the
# device: `tar xJf bin/b/labs.tar.xz -C bin/`, then
#   REPS=3 bash tools/lab-ab.sh bin:bin/hata-lab-367 OUT.log -method hata -b 8 -n 131072
# Builds that differ in a few functions share almost all their bytes, and xz -9
# keeps one copy of them: three builds took 4.6 MB where one takes 4.3, so
# several labs fit a device call's carry limit where two plain builds do not.
# Each lab is built in a git worktree of HEAD in a temporary folder: the
# checkout itself is never patched. A patch that changes shaders/ carries
# their sources; `make shaders` compiles them there (glslc, spirv-val). Its
# Go files and shaders must be committed, so that the built-in and the labs
# are built from the same code.
set -euo pipefail
usage="usage: tools/go-labs.sh OUT.tar.xz PATCH..."
out=${1:?$usage}
shift
case "$out" in
*.tar.xz) ;;
*) echo "go-labs: $out: OUT must end in .tar.xz (it comes before the patches)"$'\n'"$usage" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
[ -d .git ] || [ -f .git ] || { echo "go-labs: run from the repository root" >&2; exit 2; }
if [ -n "$(git status --porcelain -- '*.go' 'shaders/*' go.mod go.sum)" ]; then
  echo "go-labs: uncommitted changes to Go files or shaders; commit them first (the labs are built from HEAD)" >&2
  exit 2
fi
declare -A names
for p in "$@"; do
  [ -f "$p" ] || { echo "go-labs: $p: no such file" >&2; exit 2; }
  n=hata-$(basename "$(dirname "$p")")
  [ -z "${names[$n]:-}" ] || { echo "go-labs: $p and ${names[$n]} would both be $n" >&2; exit 2; }
  names[$n]=$p
done
tmp=$(mktemp -d)
cleanup() { git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add --detach -q "$tmp/src" HEAD
mkdir "$tmp/out"
commit=$(git rev-parse --short HEAD)
build() { # build NAME COMMIT-LABEL
  (cd "$tmp/src" && go build -ldflags="-s -w -X github.com/hata-go/hata/experiments.buildCommit=$2" -o "$tmp/out/$1" ./cmd/hata)
}
build hata "$commit"
for n in "${!names[@]}"; do
  p=$(realpath "${names[$n]}")
  if ! git -C "$tmp/src" apply "$p"; then
    echo "go-labs: ${names[$n]} does not apply to HEAD ($commit)" >&2
    exit 1
  fi
  # A patch of shaders carries their sources only: compile them, so that
  # the build embeds the lab's SPIR-V; then put HEAD's back.
  shaders=$(git -C "$tmp/src" status --porcelain -- shaders | wc -l)
  if [ "$shaders" -gt 0 ]; then
    make -C "$tmp/src" -s shaders >/dev/null
  fi
  build "$n" "$commit+${n#hata-}"
  git -C "$tmp/src" apply -R "$p"
  if [ "$shaders" -gt 0 ]; then
    git -C "$tmp/src" checkout -q -- shaders
    git -C "$tmp/src" clean -fq -- shaders # the SPIR-V of a shader the patch added
  fi
done
mkdir -p "$(dirname "$out")"
(cd "$tmp/out" && tar cf - *) | xz -9 -T2 > "$tmp/labs.tar.xz" # not OUT.tmp, which may be the user's
mv "$tmp/labs.tar.xz" "$out"
echo "go-labs: $(cd "$tmp/out" && ls | tr '\n' ' ')-> $out ($(du -h "$out" | cut -f1))"
