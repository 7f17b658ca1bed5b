#!/usr/bin/env bash
# A/B of an experiment against the built-in kernels (BENCHMARKS.md, "a kernel
# lab on one binary"): runs `bin/hata bench ARGS` REPS times (default 2) as
# side A (built-in) and side B (the experiment), alternating, so that both
# sides meet the same GPU, and appends each run's table to OUTLOG under a line
# "### rep R A (built-in)" or "### rep R B (EXPERIMENT)"; the header comments
# of the first run only (then only traces, the other instance's kernels and the line naming the kernels a
# SPIR-V directory replaced). Compare rows whose copy_GB/s agree;
# tools/ab-summary.sh OUTLOG prints each row's range over the reps, per side.
# EXPERIMENT is one of
#   DIR              kernels from DIR/<name>.spv (HATA_VK_SPIRV=DIR), same binary
#   bin:PATH         another build of hata (a lab patch in Go), same flags
#   env:VAR=V[,...]  the same binary with these environment variables set
# Examples:
#   REPS=3 bash tools/lab-ab.sh bin/lab/x OUT/ab.log -method hata -b 1,8 -n 32768
#   REPS=3 bash tools/lab-ab.sh bin:bin/hata-lab OUT/ab.log -method hata -b 8 -n 32768
set -uo pipefail
usage="usage: tools/lab-ab.sh DIR|bin:PATH|env:VAR=V[,VAR=V] OUTLOG [hata bench flags]"
exp=${1:?$usage}
out=${2:?$usage}
shift 2
case "$out" in
-*) echo "lab-ab: OUTLOG $out looks like a hata bench flag (OUTLOG comes first)"$'\n'"$usage" >&2; exit 2 ;;
esac
reps=${REPS:-2}
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "lab-ab: REPS=$reps: not a whole number of 1 or more" >&2; exit 2; }
[ -x bin/hata ] || { echo "lab-ab: no bin/hata here (side A): run from the repository root, after make build" >&2; exit 2; }
bbin=bin/hata
benv=()
case "$exp" in
bin:*)
  bbin=${exp#bin:}
  [[ -f "$bbin" && -x "$bbin" ]] || { echo "lab-ab: $bbin: not an executable" >&2; exit 2; }
  [[ "$bbin" == */* ]] || bbin=./$bbin ;; # env would look a bare name up in $PATH
env:*)
  IFS=, read -r -a benv <<< "${exp#env:}"
  [ ${#benv[@]} -gt 0 ] || { echo "lab-ab: $exp: names no VAR=VALUE"$'\n'"$usage" >&2; exit 2; }
  for a in "${benv[@]}"; do
    [[ "$a" =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ ]] || { echo "lab-ab: $a: not VAR=VALUE" >&2; exit 2; }
  done ;;
*)
  [ -d "$exp" ] || { echo "lab-ab: $exp: no such directory" >&2; exit 2; }
  ls "$exp"/*.spv >/dev/null 2>&1 || { echo "lab-ab: $exp holds no .spv file" >&2; exit 2; }
  benv=("HATA_VK_SPIRV=$exp") ;;
esac
: >> "$out" || { echo "lab-ab: $out: cannot append to it" >&2; exit 2; }
run=$(mktemp) # one run's output (not OUTLOG.tmp, which may be the user's)
trap 'rm -f "$run"' EXIT
status=0
for rep in $(seq "$reps"); do
  for side in A B; do
    if [ "$side" = A ]; then
      echo "### rep $rep A (built-in)"
      env -u HATA_VK_SPIRV bin/hata bench "$@" > "$run" 2>&1 || status=1
    else
      echo "### rep $rep B ($exp)"
      env -u HATA_VK_SPIRV "${benv[@]}" "$bbin" bench "$@" > "$run" 2>&1 || status=1
    fi
    # After the first run: its rows, its traces and which kernels it replaced.
    if [ "$rep$side" = 1A ]; then cat "$run"; else awk '!/^# / || /^# (trace|twin|kernels built)/' "$run"; fi
  done
done >> "$out"
exit $status
