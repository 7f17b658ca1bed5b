#!/usr/bin/env bash
# Runs the GPU checks and benchmarks on a machine with a Vulkan GPU, from
# binaries built elsewhere (the GPU machine of this project has no Go):
#   go build -ldflags='-s -w' -o bin/hata ./cmd/hata    # on the build machine; stripped,
#   go test -c -ldflags='-s -w' -o bin/vktest ./vk     # so tree + bin + .gl stay under the
#                                                      # device tool's 64 MiB (weights/ is 38 MB)
#   bash tools/gpu-run.sh OUTDIR                       # on the GPU machine
# Writes OUTDIR/{devices,bench,test,figs}.log and results.tar.gz.
set -uo pipefail
out=${1:?usage: tools/gpu-run.sh OUTDIR}
mkdir -p "$out"
res=$(mktemp -d) # this run's results directories, returned as one archive
bin/hata devices > "$out/devices.log" 2>&1
# The target shapes first (the scarcest result), then the acceptance
# suite and kernel tests of every GPU method with large shapes, then the
# paper's figures 5 and 9. Timeouts keep the whole run inside a few minutes.
timeout ${BENCH_S:-60} bin/hata bench -method dense,hata,loki,quest,topk -b 1,8 -n 32768,131072,262144 -reps 50 > "$out/bench.log" 2>&1
echo "bench exit $?" >> "$out/bench.log"
( cd vk && HATA_VK_REQUIRE=1 HATA_VK_LARGE=1 timeout ${TEST_S:-180} ../bin/vktest -test.v ) > "$out/test.log" 2>&1
echo "vktest exit $?" >> "$out/test.log"
timeout ${FIG5_S:-90} bin/hata run configs/fig5.toml -out "$res" -set "ns=[8192,32768,131072,262144]" > "$out/figs.log" 2>&1
timeout ${FIG9_S:-30} bin/hata run configs/fig9.toml -out "$res" >> "$out/figs.log" 2>&1
tar czf "$out/results.tar.gz" -C "$res" . 2>/dev/null
exit 0
