#!/usr/bin/env bash
# Runs the Swift test suite under AddressSanitizer (with LeakSanitizer) or ThreadSanitizer, in a
# build folder of its own (.build-sanitize-<sanitizer>), and fails on any report. Not part of
# `make test`: a sanitized build of everything doubles the build time. See docs/fuzzing.md.
#
#   scripts/sanitize.sh address                        # the whole suite under ASan
#   scripts/sanitize.sh thread                         # the whole suite under TSan
#   scripts/sanitize.sh thread BrokerCoreTests         # one test target (or class, or test)
#   scripts/sanitize.sh address BrokerCryptoTests BrokerValidatorTests
#
# Arguments after the sanitizer are `swift test --filter` patterns.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

sanitizer=${1:-address}
shift || true
case "$sanitizer" in
  address | thread) ;;
  *) echo "usage: $0 [address|thread] [test filter...]" >&2; exit 2 ;;
esac
scratch=$root/.build-sanitize-$sanitizer

# The tests that drive PyJWT and the SlideRule client need the venv of scripts/test.sh.
if [ -x "$root/.venv-tests/bin/python" ]; then
  export BROKER_TEST_PYTHON=${BROKER_TEST_PYTHON:-$root/.venv-tests/bin/python}
fi

# The Swift runtime's crash reporter and the sanitizer's both want the dying process.
export SWIFT_BACKTRACE=enable=no
# Stop at the first report, so that the test that caused it is the one that fails.
# Full unwinding on malloc: with the fast default, stacks stop inside libraries built without
# frame pointers (libcurl), and the suppressions of scripts/sanitize-leaks.supp cannot match.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:fast_unwind_on_malloc=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitize-leaks.supp:print_suppressions=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

filters=()
for pattern in "$@"; do filters+=(--filter "$pattern"); done

echo "sanitize.sh: building the tests with -sanitize=$sanitizer into $scratch"
mkdir -p "$scratch"
if ! swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" >"$scratch/build.log" 2>&1; then
  grep -E "error" "$scratch/build.log" >&2 || tail -20 "$scratch/build.log" >&2
  echo "sanitize.sh: the build failed (see $scratch/build.log)" >&2
  exit 1
fi

log=$scratch/sanitize.log
status=0
swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "${filters[@]}" 2>&1 | tee "$log" \
  || status=$?
if grep -qE "^(==[0-9]+==)?(ERROR: AddressSanitizer|ERROR: LeakSanitizer)|WARNING: ThreadSanitizer" "$log"; then
  echo "sanitize.sh: $sanitizer sanitizer reports in $log:" >&2
  grep -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|SUMMARY: " "$log" | sort | uniq -c >&2
  exit 1
fi
[ "$status" -eq 0 ] || { echo "sanitize.sh: tests failed under $sanitizer (see $log)" >&2; exit "$status"; }
echo "sanitize.sh: no $sanitizer sanitizer report${*:+ in $*}"
