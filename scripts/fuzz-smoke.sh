#!/usr/bin/env bash
# A short fuzzing run of every cargo-fuzz target in fuzz/ (docs/FUZZING.md): the MSISDN,
# email and money parsers of dcbhub-domain and the API's request-body reader. Runs on stable
# Rust (`--sanitizer none`); installs cargo-fuzz from crates.io when it is missing.
#
#   scripts/fuzz-smoke.sh                  # ~20 s per target
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh # a longer run
#   FUZZ_SEED=1 scripts/fuzz-smoke.sh      # libFuzzer's random seed fixed (CI)
#
# Every target runs; if any crashed, the script ends with a non-zero status. libFuzzer saves
# the input under fuzz/artifacts/<target>/ (reproduce: see docs/FUZZING.md).
#
# The smoke run builds without optimisations (`--dev`: about half the build time; plenty of
# executions for 20 s) into a target folder kept across clones ($FUZZ_TARGET_DIR, default
# ~/.cache/dcbhub-fuzz-target), so CI rebuilds only what changed. FUZZ_PROFILE=release builds
# optimised instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
TOOLS="${DCBHUB_TOOLS:-$HOME/.cache/dcbhub-tools}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/dcbhub-fuzz-target}"
PROFILE_FLAG=(--dev)
[[ "${FUZZ_PROFILE:-dev}" == release ]] && PROFILE_FLAG=(--release)
export PATH="$TOOLS/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz ${CARGO_FUZZ_VERSION} into $TOOLS"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$TOOLS"
fi

cd fuzz
# The instrumented build is shared by all targets: build once, then run each.
FUZZ_FLAGS=(--sanitizer none "${PROFILE_FLAG[@]}" --target-dir "$TARGET_DIR")
echo "== cargo fuzz build ${FUZZ_FLAGS[*]}"
cargo fuzz build "${FUZZ_FLAGS[@]}"
mkdir -p target
failed=()

for target in $(cargo fuzz list); do
  echo "== fuzzing $target for ${SECONDS_PER_TARGET} s"
  mkdir -p "corpus/$target"
  extra=()
  [[ -n "${FUZZ_SEED:-}" ]] && extra+=(-seed="$FUZZ_SEED")
  [[ "$target" == request_body ]] && extra+=(-dict=dicts/json.dict)
  log="target/fuzz-$target.log"
  status=0
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1 \
    "${extra[@]}" >"$log" 2>&1 || status=$?
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [[ "$status" -ne 0 ]]; then
    grep -E -A3 "panicked at|^SUMMARY|Test unit written" "$log" >&2 || tail -40 "$log" >&2
    echo "fuzz target $target FAILED; the crashing input is under fuzz/artifacts/$target/" >&2
    failed+=("$target")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz smoke: crashes in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz smoke: all targets ran ${SECONDS_PER_TARGET} s without a crash"
