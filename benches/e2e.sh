#!/usr/bin/env bash
# End-to-end benchmark: trtllm-prune (release build) against `cp` of the same
# surviving bytes, measured side by side in one run, interleaved run by run.
#
#   benches/e2e.sh [DATA_DIR]    (default: /tmp/trtllm-prune-e2e; give a folder
#                                on the disk to measure, outside the repo)
#
# Environment: RUNS (timed runs per case, default 5), SKIP_SPARSE=1 (no
# 500 GB sparse case), KEEP=1 (keep the generated checkpoints afterwards;
# a DATA_DIR that existed before the run is always kept, and reused),
# RAW=DIR (copy every run's "seconds peak_rss_kib cpu_seconds" lines there),
# SECTIONS (default "copy fallback all sparse bars": which parts to run).
#
# What it does, in order:
#  1. builds trtllm-prune and the bench_checkpoint example (release);
#  2. writes Llama-7B-shaped checkpoints: TP2 (2 x 1.6 GB) and TP8
#     (8 x 0.7 GB), a one-rank checkpoint (a hard link to TP2's rank 0) and a
#     500 GB sparse one (header only, the data is a hole: no disk space);
#  3. prunes each once; the outputs are the `cp` sources: files with exactly
#     the sizes (and bytes) of what survives;
#  4. for each case, one untimed round, then RUNS times, in alternating
#     order: delete the output, `sync`, run; the cache is warm (every input
#     and cp source is dropped from the cache and read back once first, so
#     both sides start alike);
#     like with like: the default prune (which flushes its outputs, journal
#     and folder to disk) against cp followed by `sync FILE` of each copy
#     and `sync DIR` ("(flush)" rows), and `--no-fsync` against plain cp
#     ("--no-fsync" rows);
#     the ratio is taken per run (prune / cp), the median reported;
#  5. peak resident memory of every prune run, from `/usr/bin/time`;
#  6. the fallback path: output on a tmpfs (copy_file_range answers EXDEV),
#     against `cp` to the same tmpfs;
#  7. `--prune_all` (headers only) on every checkpoint;
#     the 500 GB sparse checkpoint (its kept bytes are all hole) against
#     `cp --sparse=auto` of its rank file, and the output's allocated size;
#  8. progress bars drawn on a pseudo-terminal (`script`) against `--quiet`.
#
# Parallel `cp` uses `xargs -P` with as many processes as trtllm-prune uses
# threads (cores, at most the number of ranks).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-e2e}
RUNS=${RUNS:-5}
CORES=$(nproc)
BIN=$ROOT/target/release/trtllm-prune
GEN=$ROOT/target/release/examples/bench_checkpoint
RES=$(mktemp -d)
SECTIONS=" ${SECTIONS:-copy fallback all sparse bars} "
TMPFS=$DATA/tmpfs
MOUNTED_TMPFS=0
CREATED_DATA=0
[[ -d $DATA ]] || CREATED_DATA=1

cleanup() {
    if [[ $MOUNTED_TMPFS == 1 ]]; then
        umount "$TMPFS" || true
    elif [[ $TMPFS == /dev/shm/* ]]; then
        rm -rf "$TMPFS"
    fi
    if [[ -n ${RAW:-} ]]; then cp -r "$RES/." "$RAW"; fi
    rm -rf "$RES"
    if [[ $CREATED_DATA == 1 && ${KEEP:-0} != 1 ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# timed LABEL DST CMD...: removes DST, syncs, runs CMD, appends
# "seconds peak_rss_kib cpu_seconds" to $RES/LABEL (cpu: user + system).
timed() {
    local label=$1 dst=$2
    shift 2
    rm -rf "$dst"
    sync
    local t0=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$RES/rss" "$@" >/dev/null 2>"$RES/err" || {
        log "failed: $*"
        cat "$RES/err" >&2
        exit 1
    }
    local t1=$EPOCHREALTIME
    tail -n1 "$RES/rss" | awk -v a="$t0" -v b="$t1" '{printf "%.4f %d %.2f\n", b - a, $1, $2 + $3}' >>"$RES/$label"
}

# pcp SRC_DIR DST_DIR JOBS: copies SRC_DIR/*.safetensors with JOBS parallel cp.
pcp() {
    mkdir -p "$2"
    printf '%s\n' "$1"/*.safetensors | xargs -P "$3" -I{} cp {} "$2"/
}
# pcps SRC_DIR DST_DIR JOBS: the same, each cp followed by `sync FILE` of its
# copy (fsync, in the same worker, as trtllm-prune flushes each output on the
# thread that wrote it), then `sync DST_DIR` (the folder, as trtllm-prune
# flushes its output folder).
pcps() {
    mkdir -p "$2"
    printf '%s\n' "$1"/*.safetensors |
        xargs -P "$3" -I{} sh -c 'cp "$1" "$2"/ && sync "$2/${1##*/}"' _ {} "$2"
    sync "$2"
}
export -f pcp pcps

threads_for() { local n=$1; ((n < CORES)) && echo "$n" || echo "$CORES"; }

# pair CASE CKPT OUT_PARENT RANKS FLUSH [prune args...]: prune against
# parallel cp of the reference outputs, interleaved. FLUSH=sync: the default
# prune (outputs, journal and folder flushed to disk) against cp + `sync` of
# the copies (pcps); FLUSH=nosync: `--no-fsync` against plain cp (pcp).
pair() {
    local case=$1 ckpt=$2 parent=$3 ranks=$4 flush=$5
    shift 5
    local jobs cpf
    jobs=$(threads_for "$ranks")
    if [[ $flush == sync ]]; then
        cpf=pcps
        case="$case (flush)"
    else
        cpf=pcp
        set -- --no-fsync "$@"
        case="$case --no-fsync"
    fi
    # One untimed round: the first runs after the cache was refilled are
    # slower on both sides (the kernel is still reclaiming).
    timed warmup "$parent/out" "$BIN" -q --checkpoint_dir "$ckpt" --out_dir "$parent/out" "$@"
    timed warmup "$parent/cp" bash -c "$cpf '$DATA/ref-$(basename "$ckpt")' '$parent/cp' $jobs"
    for ((i = 1; i <= RUNS; i++)); do
        if ((i % 2)); then
            timed "$case.prune" "$parent/out" "$BIN" -q --checkpoint_dir "$ckpt" --out_dir "$parent/out" "$@"
            timed "$case.cp" "$parent/cp" bash -c "$cpf '$DATA/ref-$(basename "$ckpt")' '$parent/cp' $jobs"
        else
            timed "$case.cp" "$parent/cp" bash -c "$cpf '$DATA/ref-$(basename "$ckpt")' '$parent/cp' $jobs"
            timed "$case.prune" "$parent/out" "$BIN" -q --checkpoint_dir "$ckpt" --out_dir "$parent/out" "$@"
        fi
    done
    rm -rf "$parent/out" "$parent/cp"
    paste -d' ' "$RES/$case.prune" "$RES/$case.cp" | awk '{print $1 / $4}' >"$RES/$case.ratio"
    printf '| %s | %d | %.3f | %.3f | **%.2f** | %.1f |\n' "$case" "$jobs" \
        "$(cut -d' ' -f1 "$RES/$case.prune" | median)" \
        "$(cut -d' ' -f1 "$RES/$case.cp" | median)" \
        "$(median <"$RES/$case.ratio")" \
        "$(cut -d' ' -f2 "$RES/$case.prune" | sort -g | tail -n1 | awk '{print $1 / 1024}')"
}

log "== build"
(cd "$ROOT" && cargo build --release -q --bin trtllm-prune --example bench_checkpoint)

log "== checkpoints in $DATA"
mkdir -p "$DATA"
[[ -d $DATA/tp2 ]] || "$GEN" "$DATA/tp2" tp2 >&2
[[ -d $DATA/tp8 ]] || "$GEN" "$DATA/tp8" tp8 >&2
if [[ ! -d $DATA/single ]]; then
    mkdir -p "$DATA/single"
    ln "$DATA/tp2/rank0.safetensors" "$DATA/single/rank0.safetensors"
    sed 's/"world_size": 2/"world_size": 1/; s/"tp_size": 2/"tp_size": 1/' "$DATA/tp2/config.json" >"$DATA/single/config.json"
fi
if [[ ${SKIP_SPARSE:-0} != 1 && ! -d $DATA/sparse ]]; then
    "$GEN" "$DATA/sparse" sparse-500g >&2
fi
for c in tp2 tp8 single; do
    rm -rf "$DATA/ref-$c"
    "$BIN" -q --checkpoint_dir "$DATA/$c" --out_dir "$DATA/ref-$c"
done
# Every input and every cp source in the same cache state: dropped, then
# read once. The page cache keeps the folio sizes a file was written or read
# with, and a file just written by the generator copies up to 25% slower
# than one read back, which would favour whichever side was read last.
sync
for f in "$DATA"/{tp2,tp8,ref-tp2,ref-tp8,ref-single}/*.safetensors; do
    dd if="$f" iflag=nocache count=0 status=none
    cat "$f" >/dev/null
done

if [[ $(id -u) == 0 ]]; then
    mkdir -p "$TMPFS"
    mount -t tmpfs -o size=8g trtllm-prune-bench "$TMPFS"
    MOUNTED_TMPFS=1
else
    TMPFS=/dev/shm/trtllm-prune-bench-$$
    mkdir -p "$TMPFS"
fi

echo "# trtllm-prune end-to-end, $(date -u '+%Y-%m-%d %H:%M UTC'), $CORES cores, $RUNS runs per case"
echo
echo "Checkpoints: tp2 $(du -sh --apparent-size "$DATA/tp2" | cut -f1), tp8 $(du -sh --apparent-size "$DATA/tp8" | cut -f1);" \
    "surviving bytes: tp2 $(du -sh --apparent-size "$DATA/ref-tp2" | cut -f1), tp8 $(du -sh --apparent-size "$DATA/ref-tp8" | cut -f1)," \
    "single $(du -sh --apparent-size "$DATA/ref-single" | cut -f1)"
echo
echo "| case | threads | trtllm-prune s (median) | cp s (median) | ratio (median of per-run ratios) | peak RSS MiB (max) |"
echo "|---|---|---|---|---|---|"
if [[ $SECTIONS == *" copy "* ]]; then
    log "== prune vs cp (same filesystem: copy_file_range)"
    for flush in sync nosync; do
        pair tp2 "$DATA/tp2" "$DATA" 2 $flush
        pair tp8 "$DATA/tp8" "$DATA" 8 $flush
        pair single "$DATA/single" "$DATA" 1 $flush
    done
fi
if [[ $SECTIONS == *" fallback "* ]]; then
    log "== fallback: output on tmpfs"
    for flush in sync nosync; do
        pair tp2-to-tmpfs "$DATA/tp2" "$TMPFS" 2 $flush
        pair single-to-tmpfs "$DATA/single" "$TMPFS" 1 $flush
    done
fi

if [[ $SECTIONS == *" all "* ]]; then
    log "== --prune_all (headers only)"
    echo
    echo "| --prune_all on | ms (median of $((RUNS * 3)), default: flushed) | ms (median, --no-fsync) | peak RSS MiB |"
    echo "|---|---|---|---|"
    for c in tp2 tp8 sparse; do
        [[ -d $DATA/$c ]] || continue
        for ((i = 1; i <= RUNS * 3; i++)); do
            timed "all-$c" "$DATA/out" "$BIN" -q --prune_all --checkpoint_dir "$DATA/$c" --out_dir "$DATA/out"
            timed "all-nofsync-$c" "$DATA/out" "$BIN" -q --prune_all --no-fsync --checkpoint_dir "$DATA/$c" --out_dir "$DATA/out"
        done
        printf '| %s (%s) | %.1f | %.1f | %.1f |\n' "$c" "$(du -sh --apparent-size "$DATA/$c" | cut -f1)" \
            "$(cut -d' ' -f1 "$RES/all-$c" | median | awk '{print $1 * 1000}')" \
            "$(cut -d' ' -f1 "$RES/all-nofsync-$c" | median | awk '{print $1 * 1000}')" \
            "$(cat "$RES/all-$c" "$RES/all-nofsync-$c" | cut -d' ' -f2 | sort -g | tail -n1 | awk '{print $1 / 1024}')"
    done
    rm -rf "$DATA/out"
fi

if [[ $SECTIONS == *" sparse "* && -d $DATA/sparse ]]; then
    log "== 500 GB sparse checkpoint, default prune, against cp --sparse=auto of the rank"
    echo
    echo "Sparse input: $(du -sh --apparent-size "$DATA/sparse/rank0.safetensors" | cut -f1) apparent," \
        "$(du -sh "$DATA/sparse/rank0.safetensors" | cut -f1) allocated"
    echo
    echo "| 500 GB sparse, default rule, output on | prune s (median) | cp --sparse=auto of rank0 s (median) | output apparent | output allocated (du) | peak RSS MiB (max) |"
    echo "|---|---|---|---|---|---|"
    for target in "$DATA" "$TMPFS"; do
        fs=$(findmnt -no FSTYPE -T "$target")
        for ((i = 1; i <= RUNS; i++)); do
            timed "sparse-$fs" "$target/out" "$BIN" -q --checkpoint_dir "$DATA/sparse" --out_dir "$target/out"
            timed "sparse-cp-$fs" "$target/cp" bash -c "mkdir -p '$target/cp' && cp --sparse=auto '$DATA/sparse/rank0.safetensors' '$target/cp/'"
        done
        printf '| %s | %.3f | %.3f | %s | %s | %.1f |\n' "$fs" \
            "$(cut -d' ' -f1 "$RES/sparse-$fs" | median)" \
            "$(cut -d' ' -f1 "$RES/sparse-cp-$fs" | median)" \
            "$(du -sh --apparent-size "$target/out/rank0.safetensors" | cut -f1)" \
            "$(du -sh "$target/out/rank0.safetensors" | cut -f1)" \
            "$(cut -d' ' -f2 "$RES/sparse-$fs" | sort -g | tail -n1 | awk '{print $1 / 1024}')"
        rm -rf "$target/out" "$target/cp"
    done
fi

[[ $SECTIONS == *" bars "* ]] || exit 0
log "== progress bars on a pseudo-terminal"
echo
echo "| tp8, under script(1) | s (median) | s (min) | CPU s (median) | peak RSS MiB (max) |"
echo "|---|---|---|---|---|"
for ((i = 1; i <= RUNS * 2; i++)); do
    timed bars "$DATA/out" script -qec "$BIN --checkpoint_dir $DATA/tp8 --out_dir $DATA/out" /dev/null
    timed quiet "$DATA/out" script -qec "$BIN -q --checkpoint_dir $DATA/tp8 --out_dir $DATA/out" /dev/null
done
rm -rf "$DATA/out"
for v in bars quiet; do
    printf '| %s | %.3f | %.3f | %.2f | %.1f |\n' "$v" "$(cut -d' ' -f1 "$RES/$v" | median)" \
        "$(cut -d' ' -f1 "$RES/$v" | sort -g | head -n1)" "$(cut -d' ' -f3 "$RES/$v" | median)" \
        "$(cut -d' ' -f2 "$RES/$v" | sort -g | tail -n1 | awk '{print $1 / 1024}')"
done
paste -d' ' "$RES/bars" "$RES/quiet" | awk '{print $1 / $4}' | median | xargs printf '\nbars / quiet: %.3f (median of per-run ratios)\n'
