#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer)
# and runs each for a bounded time from its seeds in fuzz/seeds/<target>/.
# A crash, a failed assertion, a leak, a hang past FUZZ_TIMEOUT or an input
# over the memory limit fails the script; libFuzzer's reproducer is kept in
# fuzz/artifacts/<target>/ and its bytes are printed.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS each (default 15)
#   scripts/fuzz.sh tftp_packets    only the targets named
#
# New inputs found go to a scratch copy of the seeds, never into the
# repository: the seeds stay a few small hand-made files per target.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-15}
timeout_per_input=${FUZZ_TIMEOUT:-25}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# cargo-fuzz needs nightly's -Z flags. Without a nightly toolchain, the
# stable compiler takes them under RUSTC_BOOTSTRAP=1 (same sanitizer runtime).
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

# The dev profile of fuzz/Cargo.toml (opt-level 1, line tables): cargo-fuzz's
# release build of flashline and its dependencies was the longest step of CI
# on 2 cores, and these targets run as fast at opt-level 1. `run` gets the
# same flags, or it would build again.
build_flags=(--dev)
"${fuzz[@]}" build "${build_flags[@]}"
if (($#)); then targets=("$@"); else mapfile -t targets < <("${fuzz[@]}" list); fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    seeds="fuzz/seeds/$target"
    [[ -d $seeds ]] || { echo "fuzz: $target has no seeds in $seeds/"; failed+=("$target"); continue; }
    mkdir -p "$work/$target"
    cp "$seeds"/* "$work/$target/"
    log="$work/$target.log"
    # The outer timeout only catches a libFuzzer that does not stop itself.
    if timeout --kill-after=10 $((seconds + timeout_per_input + 60)) \
        "${fuzz[@]}" run "${build_flags[@]}" "$target" "$work/$target" -- \
        -max_total_time="$seconds" -timeout="$timeout_per_input" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
        # What libFuzzer and cargo-fuzz said about the crash: the panic, the
        # reproducer's path and how to run it again.
        grep -v -E '^#[0-9]+|^INFO:' "$log" | tail -n 60
        for artifact in fuzz/artifacts/"$target"/*; do
            [[ -f $artifact ]] && { echo "fuzz: $artifact:"; od -A d -t x1z -v "$artifact" | head -n 32; }
        done
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    line=$(printf '%-20s %10s runs %8s exec/s  %s' "$target" "${runs:-?}" "${rate:-?}" "$status")
    echo "fuzz: $line"
    summary+=("$line")
done

echo "fuzz: ${#targets[@]} target(s), ${seconds} s each"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz: failed: ${failed[*]}"
    exit 1
fi
