#!/usr/bin/env bash
# Summarizes an A/B log of tools/lab-ab.sh (or any log of `hata bench` tables
# under "### rep R A|B ..." lines): for every row key (method, B, N, opt) and
# side, the range (min-max over the reps) of median_us and of every stage
# column the table has, side A above side B, so that two kernels are compared
# without reading every rep by eye. Columns are found by the table's header
# line, so logs from before a column was added (merge, session 16) read too;
# rows that failed and rows whose copy bandwidth is under MINCOPY GB/s
# (default 3900: a disturbed GPU, BENCHMARKS.md) are left out and counted.
#   bash tools/ab-summary.sh benchmarks/h200-2026-11-29/201-b23e612-select-rowcum-ab.log
#   COLS=median_us,select bash tools/ab-summary.sh LOG     # only these columns
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: tools/ab-summary.sh LOG..." >&2; exit 2; }
for f in "$@"; do
  [[ -f "$f" && -r "$f" ]] || { echo "ab-summary: $f: not a readable file" >&2; exit 2; }
done
awk -v mincopy="${MINCOPY:-3900}" -v want="${COLS:-median_us,encode,score,select,attend,merge}" '
BEGIN { nw = split(want, wcol, ",") }
/^### rep / { side = $4; next }
$1 == "method" && $2 == "B" {
  delete at
  for (i = 1; i <= NF; i++) at[$i] = i
  next
}
/^#/ || NF < 5 || !("median_us" in at) || $2 !~ /^[0-9]+$/ || $3 !~ /^[0-9]+$/ { next } # table rows only
{
  if ($at["median_us"] == "failed") { failed++; next }
  if (("copy_GB/s" in at) && $at["copy_GB/s"] + 0 < mincopy) { disturbed++; next }
  key = $1 " B" $2 " N" $3 " " $NF
  if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
  s = side == "" ? "-" : side
  if (!((key, s) in sides)) { sides[key, s] = 1; order[key] = order[key] s }
  for (w = 1; w <= nw; w++) {
    c = wcol[w]
    if (!(c in at)) continue
    v = $at[c]
    if (v == "-" || v == "") continue
    k = key SUBSEP s SUBSEP c
    if (!(k in lo) || v + 0 < lo[k]) lo[k] = v + 0
    if (!(k in hi) || v + 0 > hi[k]) hi[k] = v + 0
  }
}
END {
  for (i = 1; i <= nk; i++) {
    key = keys[i]
    n = split(order[key], ss, "")
    for (j = 1; j <= n; j++) {
      line = sprintf("%-40s %s", key, ss[j])
      for (w = 1; w <= nw; w++) {
        k = key SUBSEP ss[j] SUBSEP wcol[w]
        if (k in lo) line = line sprintf("  %s %s", wcol[w], lo[k] == hi[k] ? sprintf("%.1f", lo[k]) : sprintf("%.1f-%.1f", lo[k], hi[k]))
      }
      print line
    }
  }
  if (failed) printf("# %d failed rows left out\n", failed)
  if (disturbed) printf("# %d rows under %d GB/s of copy bandwidth left out\n", disturbed, mincopy)
}' "$@"
