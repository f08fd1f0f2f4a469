#!/usr/bin/env bash
# Remote checkpoints: what fetching only the kept byte ranges saves against
# downloading the whole folder and pruning it locally, with the same HTTP
# client (curl) for both, against the test server (tests/remote_server.py,
# which counts the body bytes it sends).
#
#   benches/remote.sh [DATA_DIR]     (default: /tmp/trtllm-prune-remote)
#
# Environment:
#   LAYERS   layers of the Llama-7B-shaped TP2 checkpoint (default 2: two
#            ranks of about 0.5 GB); the bench_checkpoint example writes it;
#   JOBS     parallel requests, the same for every case (default 8);
#   RATE     bytes per second per connection the server sends at, to stand
#            in for a network (default 0: loopback speed; try 25000000);
#   PART     largest ranged request in bytes (default 16 MiB, the module's
#            default part size);
#   RUNS     timed runs per case (default 3), the median reported;
#   CHECK=1  compare the downloaded files with the originals;
#   SKIP_DOWNLOAD=1  only the range cases;
#   REMOTE_BIN  a trtllm-prune that accepts URLs (once src/read/remote/ is
#            wired into the CLI): adds the case `trtllm-prune <url>`;
#   HUB=1    with REMOTE_BIN: also the case `trtllm-prune hf://...`, the
#            same folder pushed to tests/hub_server.py (a Hugging Face Hub
#            stand-in whose weights redirect to a second, "CDN" port).
#
# Cases, each from a cold output folder:
#   download+prune  every file of the folder in PART-sized ranged requests,
#                   JOBS at a time (as aria2c -x or s5cmd download), then
#                   `trtllm-prune` on the local copy;
#   ranges (curl)   per rank file: the first 64 KiB, the header's rest if
#                   longer, then only the kept ranges (merged where they
#                   touch, split at PART), JOBS at a time; config.json too.
#                   This is the network side of a remote prune: each piece
#                   is written at its input offset (a sparse file per rank),
#                   not assembled into a pruned file;
#   trtllm-prune URL  (with REMOTE_BIN) the integrated tool end to end;
#   trtllm-prune hf://  (with HUB=1) the same from the Hub stand-in: its
#                   bytes include the API's JSON (the commit and the tree).
# Bytes are those the server sent; time is wall-clock.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/trtllm-prune-remote}
LAYERS=${LAYERS:-2}
JOBS=${JOBS:-8}
RATE=${RATE:-0}
PART=${PART:-16777216}
RUNS=${RUNS:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/trtllm-prune
GEN=$TARGET/release/examples/bench_checkpoint
CKPT=$DATA/ckpt
WORK=$(mktemp -d)
SERVER_PID=
HUB_PID=

cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    if [[ -n $HUB_PID ]]; then kill "$HUB_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v curl >/dev/null || { echo "remote.sh: needs curl" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -q --bin trtllm-prune --example bench_checkpoint)
if [[ ! -f $CKPT/config.json ]]; then
    mkdir -p "$DATA"
    "$GEN" "$CKPT" tp2 "$LAYERS" >/dev/null
fi

# The server, on a free port, exiting when its stdin (this fifo) closes.
mkfifo "$WORK/stdin"
python3 "$ROOT/tests/remote_server.py" "$DATA" --rate "$RATE" <"$WORK/stdin" >"$WORK/port" &
SERVER_PID=$!
exec 9>"$WORK/stdin"
for _ in $(seq 100); do grep -q port "$WORK/port" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '/port/ {print $2}' "$WORK/port")
URL=http://127.0.0.1:$PORT/ckpt

# The server measure() counts: the HTTP server, or the Hub stand-in.
CONTROL_PORT=$PORT
control() { curl -s -X "$1" "http://127.0.0.1:$CONTROL_PORT$2"; }
served() {
    control GET /__stats | python3 -c 'import json,sys; print(sum(v["bytes"] for v in json.load(sys.stdin).values()))'
}

# The kept ranges of one rank file (file offsets, inclusive ends, split at
# PART): the original rule, from the header fetched with curl.
ranges_of() {
    local name=$1 out=$2
    curl -s -r 0-65535 -o "$out.prefix" "$URL/$name"
    python3 - "$out.prefix" "$URL/$name" "$PART" >"$out.ranges" <<'EOF'
import json, struct, subprocess, sys
prefix_path, url, part = sys.argv[1], sys.argv[2], int(sys.argv[3])
prefix = open(prefix_path, "rb").read()
n = struct.unpack("<Q", prefix[:8])[0]
header = prefix[8:8 + n]
if 8 + n > len(prefix):
    rest = subprocess.run(["curl", "-s", "-r", "%d-%d" % (len(prefix), 8 + n - 1), url],
                          check=True, capture_output=True).stdout
    header += rest
RULE = ["attention.qkv.weight", "attention.proj.weight", "mlp.fc.weight",
        "mlp.proj.weight", "mlp.gate.weight"]
spans = []
for name, t in json.loads(header).items():
    if name == "__metadata__" or any(p in name for p in RULE):
        continue
    b, e = t["data_offsets"]
    if e > b:
        spans.append((8 + n + b, 8 + n + e))
spans.sort()
merged = []
for b, e in spans:
    if merged and merged[-1][1] == b:
        merged[-1][1] = e
    else:
        merged.append([b, e])
for b, e in merged:
    while b < e:
        c = min(e, b + part)
        print("%d-%d" % (b, c - 1))
        b = c
EOF
}

names=$(cd "$CKPT" && ls)
ranks=$(cd "$CKPT" && ls rank*.safetensors)
total=$(cd "$CKPT" && cat $names | wc -c)

# Fetches the requests listed on stdin, one per line: `name first last`
# (inclusive byte offsets), JOBS at a time, each written into DIR/name at
# its own offset (dd seeks; the file grows sparse until complete).
fetch_into() {
    local dir=$1
    xargs -P "$JOBS" -L1 sh -c \
        'curl -s -f -r "$3-$4" "$1/$2" | dd of="$0/$2" oflag=seek_bytes seek="$3" conv=notrunc bs=1M status=none' \
        "$dir" "$URL"
}

# A whole-folder download, the way parallel downloaders (aria2c -x, s5cmd)
# do it: every file cut into PART-sized ranges, JOBS at a time.
case_download() {
    local out=$WORK/dl
    rm -rf "$out" "$out.pruned"
    mkdir -p "$out"
    for name in $names; do
        local size b
        size=$(stat -c %s "$CKPT/$name")
        for ((b = 0; b < size; b += PART)); do
            echo "$name $b $(((b + PART < size ? b + PART : size) - 1))"
        done
    done | fetch_into "$out"
    if [[ ${CHECK:-0} == 1 ]]; then
        for name in $names; do cmp "$CKPT/$name" "$out/$name"; done
    fi
    "$BIN" --checkpoint_dir "$out" --out_dir "$out.pruned" -q
}

case_ranges() {
    local out=$WORK/ranges
    rm -rf "$out"
    mkdir -p "$out"
    curl -s -o "$out/config.json" "$URL/config.json"
    local pids=()
    for r in $ranks; do
        ranges_of "$r" "$out/$r" &
        pids+=($!)
    done
    wait "${pids[@]}"  # not a bare `wait`: the server is a child too
    for r in $ranks; do sed "s|^\([0-9]*\)-\([0-9]*\)$|$r \1 \2|" "$out/$r.ranges"; done |
        fetch_into "$out"
}

case_remote_bin() {
    local out=$WORK/remote.pruned
    rm -rf "$out"
    "$REMOTE_BIN" --checkpoint_dir "$URL" --out_dir "$out" -q
}

case_hub() {
    local out=$WORK/hub.pruned
    rm -rf "$out"
    HF_ENDPOINT=http://127.0.0.1:$HUB_PORT HF_HOME=$WORK/hf-home \
        "$REMOTE_BIN" --checkpoint_dir hf://bench/ckpt --out_dir "$out" -q
}

measure() {
    local label=$1 fn=$2 times=() bytes=0
    for _ in $(seq "$RUNS"); do
        control POST /__reset >/dev/null
        sync
        local start end
        start=$(date +%s.%N)
        "$fn"
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc)")
        bytes=$(served)
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
    printf '%-18s %8.2f s %12d bytes (%5.1f%% of the folder)\n' \
        "$label" "$median" "$bytes" "$(echo "100 * $bytes / $total" | bc -l)"
}

echo "folder: $total bytes in $(echo $names | wc -w) files; JOBS=$JOBS RATE=$RATE PART=$PART RUNS=$RUNS"
[[ ${SKIP_DOWNLOAD:-0} == 1 ]] || measure "download+prune" case_download
measure "ranges (curl)" case_ranges
if [[ -n ${REMOTE_BIN:-} ]]; then
    measure "trtllm-prune URL" case_remote_bin
fi
if [[ -n ${REMOTE_BIN:-} && ${HUB:-0} == 1 ]]; then
    mkfifo "$WORK/hub-stdin"
    mkdir -p "$WORK/hub-root"
    python3 "$ROOT/tests/hub_server.py" "$WORK/hub-root" --rate "$RATE" \
        <"$WORK/hub-stdin" >"$WORK/hub-port" &
    HUB_PID=$!
    exec 8>"$WORK/hub-stdin"
    for _ in $(seq 100); do grep -q port "$WORK/hub-port" 2>/dev/null && break; sleep 0.1; done
    HUB_PORT=$(awk '/port/ {print $2}' "$WORK/hub-port")
    curl -s -X POST "http://127.0.0.1:$HUB_PORT/__push?repo=models/bench/ckpt&src=$CKPT" >/dev/null
    CONTROL_PORT=$HUB_PORT
    measure "trtllm-prune hf://" case_hub
fi
