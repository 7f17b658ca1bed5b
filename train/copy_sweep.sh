#!/bin/sh
# copy_sweep.sh OUT SECONDS: copy_check.py on the GPU, several settings at once
# (each its own process on the one GPU, each cut at SECONDS), one log per
# setting in OUT. Does train.py's model learn content-based copying (the
# shift task), at which size, learning rate and window length?
set -u
out=${1:?usage: copy_sweep.sh OUT SECONDS}
secs=${2:-200}
mkdir -p "$out"
out=$(cd "$out" && pwd) # a relative OUT too: the runs below start in train/
cd "$(dirname "$0")" || exit 1
full="--dim 512 --layers 6 --heads 4 --kv-heads 2 --hidden 1536"
run() { # name, then copy_check.py arguments
	name=$1
	shift
	PYTHONUNBUFFERED=1 timeout "$secs" python3 copy_check.py "$@" --device cuda --every 100 >"$out/$name.log" 2>&1 &
}
run small-shift-lr1e-3   shift --steps 100000 --lr 1e-3
run small-shift-lr3e-4   shift --steps 100000 --lr 3e-4
run small-shift-short    shift --steps 100000 --lr 1e-3 --seq 96 --len 8,16 --batch 32
run full-shift-256       shift --steps 100000 --lr 1e-3 --warmup 200 --batch 32 $full
run full-shift-256-lr3e-4 shift --steps 100000 --lr 3e-4 --warmup 200 --batch 32 $full
run full-shift-1024      shift --steps 100000 --lr 1e-3 --warmup 200 --seq 1024 --batch 16 $full
run full-embed-512       embed --steps 100000 --lr 1e-3 --warmup 200 --seq 512 --batch 32 $full
run full-copy-256        copy --steps 100000 --lr 1e-3 --warmup 200 --batch 32 $full
# train.py's own mixture (corpus, pass keys, needles, copies) at 512-byte windows
PYTHONUNBUFFERED=1 timeout "$secs" python3 train.py --data ../.data --out "$out/train512" --seq 512 --batch 32 \
	--train-seconds $((secs - 60)) --save-every 100000 --eval-ctx 512 --eval-trials 10 >"$out/train512.log" 2>&1 &
wait
