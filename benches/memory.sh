#!/usr/bin/env bash
# Memory bounded by the headers: the `million` preset (one rank of 1,000,000
# tensors, an ~89 MB header over 8 MB of data) and 8 such ranks (hard links
# of rank0 as rank0..7, `world_size` 8 in config.json). Reports the peak
# resident set size (`/usr/bin/time -f '%M KiB %e s'`, maximum over RUNS
# runs) and the wall time (median) of:
#   one rank:  prune, --dry-run, --dry-run --json > /dev/null,
#              inspect --json rank0 > /dev/null
#   8 ranks:   prune, --dry-run --json > /dev/null
# against the target: peak RSS at most 4x the header bytes + 64 MiB (for 8
# ranks, against one header and against the sum of the eight).
#
#   RUNS=3 benches/memory.sh [DATA_DIR]     (default: /tmp/trtllm-prune-mem)
#
# BIN=path/to/trtllm-prune measures another build (an older commit's, for a
# before/after table) against the same data.
#
# About 0.2 GB of disk (the outputs are deleted after each run); removes
# DATA_DIR afterwards unless KEEP=1 or it existed before.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-mem}
RUNS=${RUNS:-3}
BIN=${BIN:-$ROOT/target/release/trtllm-prune}
GEN=$ROOT/target/release/examples/bench_checkpoint
RES=$(mktemp -d)
CREATED_DATA=0
[[ -d $DATA ]] || CREATED_DATA=1
cleanup() {
    if [[ -n ${RAW:-} ]]; then cp -r "$RES/." "$RAW"; fi
    rm -rf "$RES"
    if [[ $CREATED_DATA == 1 && ${KEEP:-0} != 1 ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

(cd "$ROOT" && cargo build --release -q --bin trtllm-prune --example bench_checkpoint)
mkdir -p "$DATA"
[[ -d $DATA/m1 ]] || "$GEN" "$DATA/m1" million >&2
if [[ ! -d $DATA/m8 ]]; then
    mkdir -p "$DATA/m8"
    for r in 0 1 2 3 4 5 6 7; do ln "$DATA/m1/rank0.safetensors" "$DATA/m8/rank$r.safetensors"; done
    sed 's/"world_size": 1/"world_size": 8/; s/"tp_size": 1/"tp_size": 8/' "$DATA/m1/config.json" >"$DATA/m8/config.json"
    grep -q '"world_size": 8' "$DATA/m8/config.json" || { log "memory.sh: cannot set world_size"; exit 1; }
fi
# The header length: the file's first 8 bytes, a little-endian u64.
HEADER=$(od -An -t u8 -N 8 "$DATA/m1/rank0.safetensors" | tr -d ' ')
TENSORS=1000000
LIMIT1=$(( (4 * HEADER + (64 << 20)) / 1024 ))
LIMIT8=$(( (4 * 8 * HEADER + (64 << 20)) / 1024 ))

# timed LABEL CMD...: removes $DATA/out, runs CMD (stdout to /dev/null),
# appends "kib seconds" to $RES/LABEL.
timed() {
    local label=$1
    shift
    rm -rf "$DATA/out"
    sync
    /usr/bin/time -f '%M KiB %e s' -o "$RES/time" "$@" >/dev/null 2>"$RES/err" || {
        log "failed: $*"
        cat "$RES/err" >&2
        exit 1
    }
    awk '{print $1, $3}' "$RES/time" | tail -n1 >>"$RES/$label"
}

cases=(
    "1 rank: prune|1|$BIN -q --checkpoint_dir $DATA/m1 --out_dir $DATA/out"
    "1 rank: --dry-run|1|$BIN -q --dry-run --checkpoint_dir $DATA/m1 --out_dir $DATA/out"
    "1 rank: --dry-run --json|1|$BIN -q --dry-run --json --checkpoint_dir $DATA/m1 --out_dir $DATA/out"
    "1 rank: inspect --json|1|$BIN inspect --json $DATA/m1/rank0.safetensors"
    "8 ranks: prune|8|$BIN -q --checkpoint_dir $DATA/m8 --out_dir $DATA/out"
    "8 ranks: --dry-run --json|8|$BIN -q --dry-run --json --checkpoint_dir $DATA/m8 --out_dir $DATA/out"
)
for ((i = 1; i <= RUNS; i++)); do
    log "== round $i/$RUNS"
    for c in "${cases[@]}"; do
        IFS='|' read -r label _ cmd <<<"$c"
        # shellcheck disable=SC2086
        timed "$label" $cmd
    done
done
rm -rf "$DATA/out"

echo "# trtllm-prune memory, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $RUNS runs each, $BIN"
echo
echo "million: $TENSORS tensors, header $HEADER bytes ($(awk -v h="$HEADER" 'BEGIN {printf "%.1f", h / 1048576}') MiB), file $(stat -c %s "$DATA/m1/rank0.safetensors") bytes;" \
    "target 4 x header + 64 MiB = $((LIMIT1 / 1024)) MiB (8 ranks, 4 x all headers + 64 MiB: $((LIMIT8 / 1024)) MiB)"
echo
echo "| case | peak RSS MiB (max) | peak / header bytes | target 4 x header + 64 MiB | s (median) |"
echo "|---|---|---|---|---|"
for c in "${cases[@]}"; do
    IFS='|' read -r label ranks _ <<<"$c"
    kib=$(cut -d' ' -f1 "$RES/$label" | sort -g | tail -n1)
    verdict=$( ((kib <= LIMIT1)) && echo "met" || { ((ranks == 8 && kib <= LIMIT8)) && echo "missed for one header; met for all $ranks" || echo "**missed**"; })
    printf '| %s | %.1f | %.2f | %s | %.2f |\n' "$label" "$(awk -v k="$kib" 'BEGIN {print k / 1024}')" \
        "$(awk -v k="$kib" -v h="$HEADER" 'BEGIN {print k * 1024 / h}')" "$verdict" \
        "$(cut -d' ' -f2 "$RES/$label" | median)"
done
