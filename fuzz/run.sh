#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 60 s): `fuzz/run.sh [seconds] [target...]`.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# A crash stops the run with a non-zero status; the input lands in fuzz/artifacts/<target>/ and
# becomes a regression test in the crate it belongs to. Seeds live in fuzz/corpus/<target>/seed-*;
# what the fuzzer adds to the corpus stays local (ignored by git).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
export CARGO_TARGET_DIR="${GLINT_FUZZ_TARGET_DIR:-$HOME/.cache/glint-fuzz-target}"

cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
  echo "=== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  # -max_len keeps inputs small enough to run fast (a GGUF seed, a whole tiny model, needs more);
  # -rss_limit_mb catches memory blow-ups, and so does the malloc limit it implies for one
  # allocation (a hostile GGUF header must not size one).
  case "$target" in
    gguf) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  # Targets named in GLINT_FUZZ_REPLAY only run their corpus once (a regression check, as CI
  # does for targets that have not yet been fuzzed for long); the others mutate for `seconds`.
  budget=(-max_total_time="$seconds")
  if [[ " ${GLINT_FUZZ_REPLAY:-} " == *" $target "* ]]; then
    budget=(-runs=0)
  fi
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
      "${budget[@]}" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    rm -f "$log"
    echo "fuzz target $target failed; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|^Done' "$log" || tail -n 3 "$log"
  rm -f "$log"
done
