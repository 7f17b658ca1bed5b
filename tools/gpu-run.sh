#!/usr/bin/env bash
# Runs the GPU checks and benchmarks on a machine with a Vulkan GPU, from
# binaries built elsewhere (the GPU machine of this project has no Go):
#   c=$(git rev-parse HEAD)                            # on the build machine: stripped,
#   go build -ldflags="-s -w -X github.com/hata-go/hata/experiments.buildCommit=$c" -o bin/hata ./cmd/hata
#   go test -c -ldflags='-s -w' -o bin/vktest ./vk     # so tree + bin + .gl stay under the
#                                                      # device tool's 64 MiB (weights/ is 38 MB),
#                                                      # and results name the binary's commit
#   bash tools/gpu-run.sh OUTDIR                       # on the GPU machine
# Writes OUTDIR/{devices,bench,sweep,test,figs}.log and results.tar.gz (and
# model.log, and the sweep's A/B logs *-ab.log), and refuses an OUTDIR that
# holds any of them.
# Steps can be skipped with SWEEP_S=0, TEST_S=0, FIG5_S=0 / FIG9_S=0; each *_S is
# also the step's time limit in seconds (the vk suite took about 190 s on the
# H200 in session 9, runs 90 and 96; its limit is 330). MODEL_S>0
# adds the whole-model decode throughput on the GPU (configs/model_throughput.toml,
# without Loki, whose calibration needs .data/). BENCH_S (default 110) is the
# limit of each of the two bench runs, which always run (BENCH_S=0: no limit).
set -uo pipefail
out=${1:?usage: tools/gpu-run.sh OUTDIR}
# A second run into the same OUTDIR would overwrite the first's logs and
# append to its A/B logs.
for f in devices.log bench.log sweep.log test.log figs.log model.log results.tar.gz \
  flush-ab.log flush-tlb-ab.log dedicated-ab.log fullsubgroups-ab.log; do
  [ ! -e "$out/$f" ] || { echo "gpu-run: $out/$f exists (an earlier run's?); give another OUTDIR" >&2; exit 2; }
done
[ -x bin/hata ] || { echo "gpu-run: no bin/hata (built elsewhere: see this script's header; run from the repository root)" >&2; exit 2; }
[ "${TEST_S:-330}" = 0 ] || [ -x bin/vktest ] || { echo "gpu-run: no bin/vktest (built elsewhere: see this script's header), and TEST_S is not 0" >&2; exit 2; }
mkdir -p "$out"
res=$(mktemp -d) # this run's results directories, returned as one archive
trap 'rm -rf "$res"' EXIT
bin/hata devices > "$out/devices.log" 2>&1
# The target shapes first (the scarcest result), and B8/256K, whose
# 4 GiB cache is kept in two buffers on the H200 (BENCHMARKS.md).
all=dense,hata,hata/halves,hata/twokernel,hata/onekernel,hata/naive,loki,quest,topk
{
  timeout ${BENCH_S:-110} bin/hata bench -kernelstats -method $all -b 1 -n 32768,131072,262144 -reps 50
  echo "bench exit $?"
  timeout ${BENCH_S:-110} bin/hata bench -method $all -b 8 -n 32768,131072,262144 -reps 50
  echo "bench exit $?"
} > "$out/bench.log" 2>&1
# Kernel parameters side by side (hata bench -opt) at the target shapes.
[ "${SWEEP_S:-60}" != 0 ] && {
  for bn in "8 32768" "1 131072" "1 262144"; do
    set -- $bn
    timeout ${SWEEP_S:-60} bin/hata bench -method hata -b $1 -n $2 -reps 50 \
      -opt '-;mintokens=64;tile=2;scorechunk=4096;sepmerge=1;sepmerge=2;projworkgroup=256;trace=1'
    echo "sweep exit $?"
  done
  # The chunk rule past one wave (session 20: 8192 at B8/256K, 16384 at B8/128K; session 23: 32768 at B8/256K with one-byte keys).
  timeout ${SWEEP_S:-60} bin/hata bench -method hata -b 8 -n 131072,262144 -reps 50 \
    -opt '-;scorechunk=8192;scorechunk=16384;scorechunk=32768;mintokens=64;sepmerge=1;sepmerge=2'
  echo "sweep exit $?"
  # Two-byte keys against the default one-byte keys (session 23).
  timeout ${SWEEP_S:-60} bin/hata bench -method hata -b 1,8 -n 32768,131072,262144 -reps 50 -opt '-;keybytes=2;-;keybytes=2'
  echo "sweep exit $?"
  # Session 24: the split fill's entries (16 by default), chunks of 4096 at B1
  # (the plan's rule), and the hash widths (32 and 64 bits unpadded).
  timeout ${SWEEP_S:-60} bin/hata bench -method hata -b 1,2 -n 32768,65536,131072 -reps 50 -opt '-;filltokens=64;filltokens=32;scorechunk=4096'
  echo "sweep exit $?"
  timeout ${SWEEP_S:-60} bin/hata bench -method hata -b 1,8 -n 32768,131072,262144 -reps 50 -opt '-;rbit=32;rbit=64;rbit=256'
  echo "sweep exit $?"
  # Session 25: sparse_split's tile (2 where a slot walks at most 16 entries,
  # else 4) against 4, and every kernel traced (the targets' account: the
  # last trace line of a row is the time between its kernels).
  timeout ${SWEEP_S:-60} bin/hata bench -method hata,quest -b 1,8 -n 16384,32768,131072 -reps 50 -opt '-;tile=4'
  echo "sweep exit $?"
  timeout ${SWEEP_S:-60} bin/hata bench -method hata -b 1,8 -n 32768,131072,262144 -reps 50 -opt trace=1
  echo "sweep exit $?"
  # The select kernels' workgroup (256 since session 2; the key since session 25).
  timeout ${SWEEP_S:-60} bin/hata bench -method hata,quest,topk -b 1,8 -n 32768,131072,262144 -reps 50 -opt '-;selectworkgroup=128;selectworkgroup=512'
  echo "sweep exit $?"
  # Quest's score workgroup (128 since session 6; scoreworkgroup since session 25).
  timeout ${SWEEP_S:-60} bin/hata bench -method quest -b 1,8 -n 32768,131072,262144 -reps 50 -opt '-;scoreworkgroup=64;scoreworkgroup=256;scoreworkgroup=512'
  echo "sweep exit $?"
  # What the flush before every timed step changes: none against L2 only
  # (session 24), L2 only against L2 and the TLBs (session 26, the default).
  REPS=1 timeout ${SWEEP_S:-60} bash tools/lab-ab.sh env:HATA_BENCH_L2FLUSH=0 "$out/flush-ab.log" -method hata,quest -b 1 -n 32768,131072 -reps 50
  echo "sweep exit $?"
  REPS=1 timeout ${SWEEP_S:-60} bash tools/lab-ab.sh env:HATA_BENCH_L2FLUSH=l2 "$out/flush-tlb-ab.log" -method hata,quest,dense -b 1,8 -n 32768,131072 -reps 50
  echo "sweep exit $?"
  # The translation prefetch (session 26) over dedicated allocations, the
  # default since session 27, where it is off by default: on, and on 2 MiB
  # apart; then the default against plain allocations, with the prefetch.
  timeout ${SWEEP_S:-60} bin/hata bench -method hata,quest,topk,loki -b 1,8 -n 32768,131072 -reps 50 -opt '-;prefetch=1;prefetch=1,prefetchkib=2048'
  echo "sweep exit $?"
  REPS=1 timeout ${SWEEP_S:-60} bash tools/lab-ab.sh env:HATA_VK_DEDICATED=0 "$out/dedicated-ab.log" -method hata,quest,dense -b 1,8 -n 32768,131072 -reps 50
  echo "sweep exit $?"
  timeout ${SWEEP_S:-60} bin/hata bench -method dense -b 1,8 -n 32768,131072 -reps 50 -opt '-;sepmerge=1;tile=2,targetworkgroups=528'
  echo "sweep exit $?"
  # The baselines' options (session 8): Loki's float32 rotated keys and its
  # rotation with 256 lanes (512 since session 22), the
  # float-score select by a workgroup per row or by radix passes, traced.
  timeout ${SWEEP_S:-60} bin/hata bench -method loki -b 1,8 -n 32768,131072,262144 -reps 50 -opt '-;lokif32=1;projworkgroup=256'
  echo "sweep exit $?"
  timeout ${SWEEP_S:-60} bin/hata bench -method quest,topk -b 1,8 -n 32768,262144 -reps 50 -opt '-;rowselect=2;trace=1'
  echo "sweep exit $?"
  # Session 37: fourteen kernel parameters at the four targets (run 399
  # found select_groups' lanes gone stale at B8/128K), and the pipelines
  # without the full-subgroup request.
  o='-;sepmerge=1;sepmerge=2;tile=2;tile=4;tpt=8;tpt=16;scoreworkgroup=128;scoreworkgroup=512;selectworkgroup=128;selectworkgroup=512;projworkgroup=256;projworkgroup=1024;filltokens=8;filltokens=32'
  timeout $((2 * ${SWEEP_S:-60})) bin/hata bench -method hata -b 1 -n 131072,262144 -reps 50 -opt "$o"
  echo "sweep exit $?"
  timeout $((2 * ${SWEEP_S:-60})) bin/hata bench -method hata -b 8 -n 32768,131072 -reps 50 -opt "$o"
  echo "sweep exit $?"
  REPS=1 timeout ${SWEEP_S:-60} bash tools/lab-ab.sh env:HATA_VK_FULLSUBGROUPS=0 "$out/fullsubgroups-ab.log" -method hata,dense -b 1,8 -n 32768,131072 -reps 50
  echo "sweep exit $?"
} > "$out/sweep.log" 2>&1
# The acceptance suite and kernel tests of every GPU method, large shapes included.
if [ "${TEST_S:-330}" != 0 ]; then
  ( cd vk && HATA_VK_REQUIRE=1 HATA_VK_LARGE=1 timeout ${TEST_S:-330} ../bin/vktest -test.v ) > "$out/test.log" 2>&1
  echo "vktest exit $?" >> "$out/test.log"
fi
# The paper's figures 5 and 9.
[ "${FIG5_S:-90}" != 0 ] && timeout ${FIG5_S:-90} bin/hata run configs/fig5.toml -out "$res" -set "ns=[8192,32768,131072,262144]" > "$out/figs.log" 2>&1
[ "${FIG9_S:-30}" != 0 ] && timeout ${FIG9_S:-30} bin/hata run configs/fig9.toml -out "$res" >> "$out/figs.log" 2>&1
[ "${MODEL_S:-0}" != 0 ] && timeout ${MODEL_S} bin/hata run configs/model_throughput.toml -out "$res" -vkdevice 0 \
  -set name=model_throughput_gpu -set "methods=['dense','hata','lsh','quest','streaming','h2o','topk']" > "$out/model.log" 2>&1
tar czf "$out/results.tar.gz" -C "$res" . 2>/dev/null
exit 0
