#!/usr/bin/env bash
# Worker scaling: one 12-day Salted CX sync from the emulator, by 1, 2 and 4 processes each
# syncing one shard (`--shard I/N`) of the range into one local lake. Prints wall time and the
# CPU the cxlake processes used (user + system, summed). Not a test: a measurement.
#
#   benches/workers.sh [BIN] [ENGAGEMENTS_PER_DAY] [POLL_INTERVAL]
set -euo pipefail
BIN=${1:-target/release/cxlake}
PER_DAY=${2:-20000}
POLL=${3:-1s}
WORK=$(mktemp -d)
trap 'kill "$EMULATOR" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" emulator saltedcx --port 0 --engagements-per-day "$PER_DAY" --processing-polls 3 >"$WORK/emulator.log" 2>&1 &
EMULATOR=$!
for _ in $(seq 100); do
    grep -q 'SALTEDCX_API_URL=' "$WORK/emulator.log" && break
    sleep 0.1
done
export SALTEDCX_API_URL SALTEDCX_API_KEY
SALTEDCX_API_URL=$(sed -n 's/.*export SALTEDCX_API_URL=//p' "$WORK/emulator.log")
SALTEDCX_API_KEY=$(sed -n 's/.*export SALTEDCX_API_KEY=//p' "$WORK/emulator.log")

printf '%-8s %9s %9s %8s\n' workers wall_s cpu_s rows
for workers in 1 2 4; do
    lake="$WORK/lake-$workers"
    start=$(date +%s.%N)
    pids=()
    for i in $(seq 0 $((workers - 1))); do
        /usr/bin/time -f '%U %S' -o "$WORK/time-$workers-$i" \
            "$BIN" sync saltedcx --dest "$lake" --from 2024-03-01 --to 2024-03-13 \
            --shard "$i/$workers" --poll-interval "$POLL" --log warn --progress never >"$WORK/out-$workers-$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    end=$(date +%s.%N)
    cpu=$(cat "$WORK"/time-"$workers"-* | awk '{s += $1 + $2} END {printf "%.1f", s}')
    rows=$("$BIN" status --dest "$lake" --json | python3 -c 'import json,sys; print(sum(d["rows"] for s in json.load(sys.stdin) for d in s["datasets"].values()))')
    printf '%-8s %9.1f %9s %8s\n' "$workers" "$(echo "$end - $start" | bc)" "$cpu" "$rows"
done
