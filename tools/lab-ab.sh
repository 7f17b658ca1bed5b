#!/usr/bin/env bash
# A/B of experimental kernels against the built-in ones with one binary
# (BENCHMARKS.md, "a kernel lab on one binary"): runs `bin/hata bench ARGS`
# REPS times (default 2) without and then with HATA_VK_SPIRV=DIR, alternating,
# so that both sides meet the same GPU, and appends each run's table to OUTLOG
# under a line "### rep R A (built-in)" or "### rep R B (DIR)"; the header
# comments of the first run only (then only traces and the line naming the
# kernels DIR replaced). Compare rows whose copy_GB/s agree.
#   REPS=3 bash tools/lab-ab.sh bin/lab/x OUT/ab.log -method hata -b 1,8 -n 32768
set -uo pipefail
dir=${1:?usage: tools/lab-ab.sh SPIRV_DIR OUTLOG [hata bench flags]}
out=${2:?usage: tools/lab-ab.sh SPIRV_DIR OUTLOG [hata bench flags]}
shift 2
[ -d "$dir" ] || { echo "lab-ab: $dir: no such directory" >&2; exit 2; }
ls "$dir"/*.spv >/dev/null 2>&1 || { echo "lab-ab: $dir holds no .spv file" >&2; exit 2; }
status=0
for rep in $(seq "${REPS:-2}"); do
  for side in A B; do
    if [ "$side" = A ]; then
      echo "### rep $rep A (built-in)"
      env -u HATA_VK_SPIRV bin/hata bench "$@" > "$out.tmp" 2>&1 || status=1
    else
      echo "### rep $rep B ($dir)"
      HATA_VK_SPIRV="$dir" bin/hata bench "$@" > "$out.tmp" 2>&1 || status=1
    fi
    # After the first run: its rows, its traces and which kernels it replaced.
    if [ "$rep$side" = 1A ]; then cat "$out.tmp"; else awk '!/^# / || /^# (trace|kernels built)/' "$out.tmp"; fi
  done
done >> "$out"
rm -f "$out.tmp"
exit $status
