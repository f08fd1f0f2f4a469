#!/usr/bin/env bash
# Hollow outputs (`--hollow`) against plain prunes and against `cp` of the
# kept bytes, on a Llama-7B-shaped TP2 checkpoint of ~6 GB (12 layers).
#
#   RUNS=5 benches/hollow.sh [DATA_DIR]    (default: /tmp/trtllm-prune-hollow)
#
# Environment: RUNS (timed runs per case, default 5), LAYERS (default 12:
# 2 ranks of ~3 GB; 4 gives ~2 GB in all), KEEP=1 (keep DATA_DIR).
#
# What it does:
#  1. builds trtllm-prune and the bench_checkpoint example (release);
#  2. writes the checkpoint (`bench_checkpoint DIR tp2 LAYERS`);
#  3. prunes it once into DATA_DIR/plain: its rank files hold exactly the
#     kept bytes (and a header), so `cp` of them is the yardstick;
#  4. RUNS times, in turn, each timed by /usr/bin/time -v (wall seconds
#     and peak resident set size), with the output deleted and `sync` run
#     before each: a plain prune, a hollow prune, `cp` of the plain output's
#     rank files (each with --no-fsync, like cp, which does not flush);
#  5. prints the median wall time and the largest peak RSS of each case,
#     and `du -k` (allocated) and `du -k --apparent-size` of each output;
#  6. checks the hollow output with `verify --hollow` (timed once).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-hollow}
RUNS=${RUNS:-5}
LAYERS=${LAYERS:-12}
BIN=$ROOT/target/release/trtllm-prune
GEN=$ROOT/target/release/examples/bench_checkpoint
CREATED_DATA=0
[[ -d $DATA ]] || CREATED_DATA=1
RES=$(mktemp -d)
cleanup() {
    rm -rf "$RES"
    if [[ $CREATED_DATA == 1 && ${KEEP:-0} != 1 ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT
log() { printf '%s\n' "$*" >&2; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

(cd "$ROOT" && cargo build --release -q --bin trtllm-prune --example bench_checkpoint)
mkdir -p "$DATA"
CKPT=$DATA/ckpt
[[ -d $CKPT ]] || "$GEN" "$CKPT" tp2 "$LAYERS" >&2
"$BIN" --checkpoint_dir "$CKPT" --out_dir "$DATA/plain" -q
log "checkpoint: $(du -k --apparent-size -s "$CKPT" | cut -f1) KiB; kept bytes: $(du -k -s "$DATA/plain" | cut -f1) KiB"

# One timed run of "$@": appends "seconds peak_kib" to $RES/$case.
timed() {
    local case=$1
    shift
    sync
    /usr/bin/time -v -o "$RES/time.txt" "$@" >/dev/null
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2, p, ":"); s=0; for (i=1;i<=n;i++) s=s*60+p[i]; print s}' "$RES/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RES/time.txt")
    echo "$wall $rss" >>"$RES/$case"
}

for _ in $(seq "$RUNS"); do
    rm -rf "$DATA/out-plain" "$DATA/out-hollow" "$DATA/out-cp"
    timed plain "$BIN" --checkpoint_dir "$CKPT" --out_dir "$DATA/out-plain" --no-fsync -q
    timed hollow "$BIN" --checkpoint_dir "$CKPT" --out_dir "$DATA/out-hollow" --hollow --no-fsync -q
    mkdir -p "$DATA/out-cp"
    timed cp sh -c 'cp "$1"/rank*.safetensors "$2"/' sh "$DATA/plain" "$DATA/out-cp"
done
timed verify "$BIN" verify --checkpoint_dir "$CKPT" --out_dir "$DATA/out-hollow" --hollow

printf '%-8s %10s %14s %14s %14s\n' case median_s peak_rss_kib du_k apparent_k
for case in plain hollow cp verify; do
    dir=$DATA/out-$case
    [[ $case == verify ]] && dir=$DATA/out-hollow
    printf '%-8s %10s %14s %14s %14s\n' "$case" \
        "$(cut -d' ' -f1 "$RES/$case" | median)" \
        "$(cut -d' ' -f2 "$RES/$case" | sort -g | tail -1)" \
        "$(du -k -s "$dir"/*.safetensors | awk '{s+=$1} END {print s}')" \
        "$(du -k -s --apparent-size "$dir"/*.safetensors | awk '{s+=$1} END {print s}')"
done
