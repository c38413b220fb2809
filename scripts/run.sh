#!/usr/bin/env bash
# Quick start: installs what is missing, builds (build/gcc) and runs
# flowstored in the foreground on ./flowstore-data (or $FLOWSTORE_DATA).
#
#   scripts/run.sh [flowstored options]
#
# Without a --source option it records this host through the kernel
# programs when run as root, and synthetic traffic (--source synthetic:2000)
# otherwise. Stop it with Ctrl-C: it flushes and exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${FLOWSTORE_DATA:-./flowstore-data}
BUILD="$ROOT/build/gcc"

"$ROOT/scripts/deps.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD" -j "$(nproc)" --target flowstored flowq

mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

args=("$@")
has_source=false
for arg in "$@"; do
	case $arg in
	--source | --source=*) has_source=true ;;
	esac
done
# The kernel source needs root; without it, record the synthetic source.
if [ "$has_source" = false ] && [ "$(id -u)" != 0 ]; then
	echo "run.sh: not root: recording synthetic traffic (sudo scripts/run.sh records this host)"
	args+=(--source synthetic:2000)
fi

cat <<INFO

flowstore
  data:    $DATA  (one SQLite file per period: raw-<UTC start>-<seq>.db)
  socket:  $DATA/flowstore.sock
  ask it (every partition, read-only, safe while flowstored runs):
    $BUILD/query/flowq --socket $DATA/flowstore.sock \\
      "SELECT ts, proto, orig_addr, resp_addr, resp_port, orig_bytes, comm FROM flows ORDER BY ts DESC LIMIT 10"
    curl -s --unix-socket $DATA/flowstore.sock \\
      'http://x/query?format=csv&sql=SELECT%20count(*)%20FROM%20flows'
  stop: Ctrl-C

INFO
exec "$BUILD/collector/flowstored" --data "$DATA" "${args[@]}"
