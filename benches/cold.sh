#!/usr/bin/env bash
# Cold cache, at the disk's limit: the page cache is dropped before every
# run, so the input is read from the disk and the output written to it.
# Compares, interleaved run by run (the order rotates):
#   prune           trtllm-prune (flushes its outputs, the default) + sync
#   prune-no-fsync  trtllm-prune --no-fsync + sync
#   cp              cp of the same output files (the pruned outputs, made
#                   once beforehand), as many cp at once as trtllm-prune uses
#                   threads, + sync
# and reports medians, the median of the per-run ratios against cp, and
# the bytes each run read from and wrote to the disk (/proc/diskstats of
# the device under DATA_DIR).
#
#   sudo RUNS=9 benches/cold.sh [DATA_DIR]     (default: /tmp/trtllm-prune-cold)
#
# PRESET (default tp2) is a bench_checkpoint preset. Needs root (it writes
# /proc/sys/vm/drop_caches). Removes DATA_DIR afterwards unless KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-cold}
RUNS=${RUNS:-9}
PRESET=${PRESET:-tp2}
BIN=$ROOT/target/release/trtllm-prune
GEN=$ROOT/target/release/examples/bench_checkpoint
RES=$(mktemp -d)

if [[ $(id -u) != 0 ]]; then
    echo "cold.sh: needs root (drop_caches)" >&2
    exit 2
fi
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
[[ -d $DATA/ckpt ]] || "$GEN" "$DATA/ckpt" "$PRESET" >&2
rm -rf "$DATA/ref"
"$BIN" -q --checkpoint_dir "$DATA/ckpt" --out_dir "$DATA/ref"
RANKS=$(find "$DATA/ckpt" -maxdepth 1 -name '*.safetensors' | wc -l)
JOBS=$(( RANKS < $(nproc) ? RANKS : $(nproc) ))
DEV=$(basename "$(findmnt -no SOURCE -T "$DATA")")
# Sectors read and written so far on DEV (fields 6 and 10 of diskstats).
sectors() { awk -v d="$DEV" '$3 == d {print $6, $10}' /proc/diskstats; }
sectors >/dev/null || { log "cold.sh: $DEV not in /proc/diskstats"; exit 2; }

drop() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# timed LABEL DST CMD...: removes DST, drops the cache, runs CMD then sync;
# appends "seconds peak_rss_kib cpu_s read_MB written_MB" to $RES/LABEL.
timed() {
    local label=$1 dst=$2
    shift 2
    rm -rf "$dst"
    drop
    read -r r0 w0 < <(sectors)
    local t0=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$RES/rss" "$@" >/dev/null 2>"$RES/err" || {
        log "failed: $*"
        cat "$RES/err" >&2
        exit 1
    }
    sync
    local t1=$EPOCHREALTIME
    read -r r1 w1 < <(sectors)
    tail -n1 "$RES/rss" | awk -v a="$t0" -v b="$t1" -v r=$((r1 - r0)) -v w=$((w1 - w0)) \
        '{printf "%.4f %d %.2f %.0f %.0f\n", b - a, $1, $2 + $3, r * 512 / 1e6, w * 512 / 1e6}' >>"$RES/$label"
}

pcp() {
    mkdir -p "$2"
    printf '%s\n' "$1"/*.safetensors | xargs -P "$3" -I{} cp {} "$2"/
}
export -f pcp

run() {
    case $1 in
    prune) timed prune "$DATA/out" "$BIN" -q --checkpoint_dir "$DATA/ckpt" --out_dir "$DATA/out" ;;
    prune-no-fsync) timed prune-no-fsync "$DATA/out" "$BIN" -q --no-fsync --checkpoint_dir "$DATA/ckpt" --out_dir "$DATA/out" ;;
    cp) timed cp "$DATA/cp" bash -c "pcp '$DATA/ref' '$DATA/cp' $JOBS" ;;
    esac
}

echo "# trtllm-prune cold cache, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $PRESET, $RUNS runs each"
echo
echo "input $(du -sh --apparent-size "$DATA/ckpt" | cut -f1) in $RANKS ranks; output $(du -sb "$DATA/ref" | cut -f1) bytes; $JOBS threads / cp processes; device $DEV (read_ahead_kb $(cat /sys/block/"$DEV"/queue/read_ahead_kb 2>/dev/null || echo '?'))"
echo
log "== one untimed round"
for v in prune prune-no-fsync cp; do run "$v"; done
rm -f "$RES"/prune "$RES"/prune-no-fsync "$RES"/cp
ORDERS=("prune prune-no-fsync cp" "cp prune prune-no-fsync" "prune-no-fsync cp prune")
for ((i = 1; i <= RUNS; i++)); do
    log "== run $i/$RUNS"
    for v in ${ORDERS[$((i % 3))]}; do run "$v"; done
done
rm -rf "$DATA/out" "$DATA/cp"

echo "| variant (each + sync) | s (median) | s (min-max) | ratio to cp (median of per-run) | CPU s (median) | read MB (median) | written MB (median) | peak RSS MiB (max) |"
echo "|---|---|---|---|---|---|---|---|"
for v in prune prune-no-fsync cp; do
    paste -d' ' "$RES/$v" "$RES/cp" | awk '{print $1 / $6}' >"$RES/$v.ratio"
    printf '| %s | %.3f | %.3f-%.3f | **%.3f** | %.2f | %.0f | %.0f | %.1f |\n' "$v" \
        "$(cut -d' ' -f1 "$RES/$v" | median)" \
        "$(cut -d' ' -f1 "$RES/$v" | sort -g | head -n1)" \
        "$(cut -d' ' -f1 "$RES/$v" | sort -g | tail -n1)" \
        "$(median <"$RES/$v.ratio")" \
        "$(cut -d' ' -f3 "$RES/$v" | median)" \
        "$(cut -d' ' -f4 "$RES/$v" | median)" \
        "$(cut -d' ' -f5 "$RES/$v" | median)" \
        "$(cut -d' ' -f2 "$RES/$v" | sort -g | tail -n1 | awk '{print $1 / 1024}')"
done
