#!/usr/bin/env bash
# The test command: installs what is missing, then builds and tests twice,
#   build/gcc   gcc, RelWithDebInfo
#   build/asan  clang, AddressSanitizer + UndefinedBehaviorSanitizer
# and runs ctest in each. Exits non-zero if any build or test failed.
#
#   scripts/test.sh [LABEL_REGEX]    e.g. scripts/test.sh unit, scripts/test.sh 'unit|root'
#
# Under CI=true nothing may be skipped: tests fail instead of skipping
# (tests/skip.h, tests/lib.sh), and any test ctest still reports as skipped
# fails the run here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABEL=${1:-}
JOBS=$(nproc)
failed=()

"$ROOT/scripts/deps.sh"

# run_ctest DIR: ctest in DIR, its output also in DIR/ctest.log.
run_ctest() {
	local dir=$1 rc=0
	local args=(--test-dir "$dir" --output-on-failure --no-tests=error)

	if [ -n "$LABEL" ]; then
		args+=(-L "$LABEL")
	fi
	ctest "${args[@]}" 2>&1 | tee "$dir/ctest.log" || rc=$?
	# ctest shows no output of a skipped test: say why it skipped.
	grep -h '^SKIPPED:' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | sort -u || true
	if [ "$rc" -ne 0 ]; then
		return "$rc"
	fi
	if [ "${CI:-}" = true ] && grep -q 'Skipped' "$dir/ctest.log"; then
		echo "test.sh: CI=true and tests were skipped in $dir:" >&2
		grep 'Skipped' "$dir/ctest.log" >&2
		return 1
	fi
}

# variant NAME CMAKE_ARGS...: configure, build and test build/NAME.
variant() {
	local name=$1 dir="$ROOT/build/$1"
	shift
	echo "==== $name: configure"
	if ! cmake -S "$ROOT" -B "$dir" "$@"; then
		failed+=("$name (configure)")
		return
	fi
	echo "==== $name: build"
	if ! cmake --build "$dir" -j "$JOBS"; then
		failed+=("$name (build)")
		return
	fi
	echo "==== $name: test"
	run_ctest "$dir" || failed+=("$name (tests)")
}

variant gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
variant asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DFLOWSTORE_SANITIZE=ON

if [ ${#failed[@]} -ne 0 ]; then
	echo "test.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "test.sh: all passed (gcc, asan)${LABEL:+ for labels matching $LABEL}"
