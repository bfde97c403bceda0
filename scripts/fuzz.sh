#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzzing/ (with AddressSanitizer) and runs each in turn, one at a
# time, for the given number of seconds. Fails on any crash, invariant violation, leak, timeout
# or out-of-memory, and on any input of Fuzzing/Findings that no longer passes. See docs/fuzzing.md.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   scripts/fuzz.sh 600 FuzzJWS          # one target, 10 minutes
#   scripts/fuzz.sh --brief              # what scripts/test.sh runs: all targets, 60 s in all
#   scripts/fuzz.sh --write-seeds        # regenerate the seeds signed with the fixed test keys
#
# Seeds live in Fuzzing/Corpus/<target> (committed, read only); what a run discovers goes to
# .build-fuzz/corpus/<target> and is kept between runs; a failing input is saved in
# .build-fuzz/findings/<target>/ and reproduced with `.build-fuzz/release/<target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

all_targets=(FuzzJWS FuzzJSON FuzzJWKS FuzzPasswordHash FuzzHTTPHeaders FuzzConfiguration FuzzRequestBody FuzzPortalForm)
scratch=$root/.build-fuzz
bin=$scratch/release

seconds=60
brief=false
write_seeds=false
targets=()
for argument in "$@"; do
  case "$argument" in
    --brief) brief=true ;;
    --write-seeds) write_seeds=true ;;
    [0-9]*) seconds=$argument ;;
    Fuzz*) targets+=("$argument") ;;
    *) echo "fuzz.sh: unknown argument $argument (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
if $brief; then
  # 60 s of fuzzing in all, whatever the number of targets.
  seconds=$((60 / ${#targets[@]}))
fi

# `--sanitize fuzzer` tells SwiftPM to leave `main` to libFuzzer; the sanitizers themselves go in
# one -sanitize= flag, since swiftc keeps only the last of several (two flags lose the coverage).
# -enable-testing: FuzzPasswordHash reads the internal stored-hash parser with @testable.
echo "fuzz.sh: building ${targets[*]}"
build=(swift build --package-path Fuzzing --scratch-path "$scratch" -c release --sanitize fuzzer
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing)
mkdir -p "$scratch/logs"; : >"$scratch/logs/build.log"
if [ ${#targets[@]} -eq ${#all_targets[@]} ]; then products=(); else products=("${targets[@]/#/--product=}"); fi
if [ ${#products[@]} -le 1 ]; then
  status=0; "${build[@]}" "${products[@]}" >"$scratch/logs/build.log" 2>&1 || status=$?
else
  status=0
  for product in "${products[@]}"; do "${build[@]}" "$product" >>"$scratch/logs/build.log" 2>&1 || status=$?; done
fi
if [ "$status" -ne 0 ]; then
  grep -E "error" "$scratch/logs/build.log" >&2 || tail -20 "$scratch/logs/build.log" >&2
  echo "fuzz.sh: the build failed; log $scratch/logs/build.log" >&2
  exit 1
fi

if $write_seeds; then
  for target in FuzzJWS FuzzJWKS; do
    FUZZ_WRITE_SEEDS="$root/Fuzzing/Corpus/$target" "$bin/$target"
    echo "fuzz.sh: wrote the seeds of $target"
  done
  exit 0
fi

# The Swift runtime's own crash reporter fights AddressSanitizer's for the dying process.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}

failed=()
summary=()
for target in "${targets[@]}"; do
  corpus=$scratch/corpus/$target
  findings=$scratch/findings/$target
  log=$scratch/logs/$target.log
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"

  # Inputs that once failed (Fuzzing/Findings) must pass, every run.
  regressions=(Fuzzing/Findings/"$target"/*)
  if [ -e "${regressions[0]}" ]; then
    if ! "$bin/$target" -timeout=10 "${regressions[@]}" >"$log.regressions" 2>&1; then
      echo "fuzz.sh: $target fails on a recorded finding (Fuzzing/Findings/$target); see $log.regressions" >&2
      grep -m2 -E "fuzz invariant|Fatal error|ERROR: |runtime failure" "$log.regressions" >&2 || true
      failed+=("$target")
      continue
    fi
  fi

  # The first directory receives new inputs; the committed seeds are only read.
  status=0
  "$bin/$target" "$corpus" "Fuzzing/Corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  coverage=$(grep -oE "cov: [0-9]+" "$log" | tail -1 || true)
  summary+=("$target: ${runs:-?} runs in ${seconds}s (${speed:-?}/s), ${coverage:-cov: ?}, corpus $(ls "$corpus" | wc -l)")
  if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: $target FAILED (exit $status); log $log" >&2
    grep -m3 -E "fuzz invariant|Fatal error|ERROR: |runtime failure|SUMMARY|Test unit written" "$log" >&2 || true
    failed+=("$target")
  fi
done

printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]} (reproduce: .build-fuzz/release/<target> <input>; see docs/fuzzing.md)" >&2
  exit 1
fi
echo "fuzz.sh: no crash, leak or timeout in ${targets[*]}"
