#!/usr/bin/env bash
# Block sharing on XFS, at full size: rank 0 of Llama-2-70B at TP8 (17 GB,
# hidden 8192, bf16) inside a loop-mounted XFS image (reflink=1), pruned
# RUNS times. Reports the time, the blocks each run added to the filesystem
# (df, after sync) against the output size, the summary line, and compares
# the output byte for byte with the same plan copied off XFS (no sharing).
#
#   sudo benches/xfs.sh [DATA_DIR]     (default: /tmp/trtllm-prune-xfs)
#
# Needs root and mkfs.xfs (Debian: apt-get install xfsprogs), and about
# 20 GB of free disk for the image (sparse; removed afterwards unless KEEP=1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-xfs}
RUNS=${RUNS:-5}
BIN=$ROOT/target/release/trtllm-prune
GEN=$ROOT/target/release/examples/bench_checkpoint
IMG=$DATA/xfs.img
MNT=$DATA/mnt

if [[ $(id -u) != 0 ]] || ! command -v mkfs.xfs >/dev/null; then
    echo "xfs.sh: needs root and mkfs.xfs" >&2
    exit 2
fi
[[ ! -e $DATA ]] || {
    echo "xfs.sh: $DATA exists; remove it first" >&2
    exit 2
}

cleanup() {
    umount "$MNT" 2>/dev/null || true
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -q --bin trtllm-prune --example bench_checkpoint)
mkdir -p "$MNT"
truncate -s 24G "$IMG"
mkfs.xfs -q -f -m reflink=1 "$IMG"
mount -o loop "$IMG" "$MNT"
"$GEN" "$MNT/ckpt" 70b-rank >&2
sync

used() {
    sync
    df -B1 --output=used "$MNT" | tail -n1
}

echo "# XFS block sharing, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo
echo "input: $(stat -c %s "$MNT/ckpt/rank0.safetensors") bytes"
echo
echo "| run | seconds | output bytes | new bytes on disk | new / output |"
echo "|---|---|---|---|---|"
for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$MNT/out"
    before=$(used)
    t0=$EPOCHREALTIME
    "$BIN" --checkpoint_dir "$MNT/ckpt" --out_dir "$MNT/out" 2>"$DATA/summary"
    t1=$EPOCHREALTIME
    after=$(used)
    out=$(stat -c %s "$MNT/out/rank0.safetensors")
    awk -v i="$i" -v a="$t0" -v b="$t1" -v o="$out" -v n="$((after - before))" \
        'BEGIN {printf "| %d | %.3f | %d | %d | %.3f%% |\n", i, b - a, o, n, 100 * n / o}'
done
echo
echo "summary: $(cat "$DATA/summary")"

# The same plan copied without sharing (the output is off XFS, so no
# clone and no copy_file_range): the bytes must be identical.
"$BIN" -q --checkpoint_dir "$MNT/ckpt" --out_dir "$DATA/plain"
for f in "$DATA/plain"/*; do
    cmp "$f" "$MNT/out/$(basename "$f")"
done
echo "outputs identical to the unshared copy: yes"
