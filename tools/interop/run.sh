#!/usr/bin/env bash
# Runs the public wallet client libraries against a fresh `qrgate sandbox`.
# Usage: tools/interop/run.sh [path to the qrgate binary]   (default: target/debug/qrgate)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/debug/qrgate}"
venv="target/interop-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tools/interop/requirements.txt
fi
state="$(mktemp -d)"
"$bin" sandbox --listen 127.0.0.1:18790 --secapi-listen 127.0.0.1:18791 --state-dir "$state" >"$state/out.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$state"' EXIT
for _ in $(seq 1 50); do
  curl -sf http://127.0.0.1:18790/control/clock >/dev/null && break
  sleep 0.2
done
"$venv/bin/python" tools/interop/public_clients.py http://127.0.0.1:18790
