#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan, in build-fuzz/), makes their seed corpora from
# the real files in ../shared, replays every saved crash in tests/fuzz/regressions/<target>/, then fuzzes each
# target for SECONDS. Exits non-zero when a regression input or a new input crashes.
#
#   scripts/fuzz.sh [SECONDS]        (or `make fuzz FUZZ_SECONDS=...`; default 60 per target)
#   scripts/fuzz.sh --check          exit 0 when clang + libFuzzer + OpenMP work here (prints why not)
#
# Environment: FUZZ_JOBS (targets fuzzed at once, default: the number of cores), FUZZ_TARGETS (a space-separated
# subset, default all), FUZZ_BUILD (default build-fuzz), QUILL_SHARED (default ../shared), FUZZ_ARGS (extra
# libFuzzer flags), FUZZ_CORPUS_MB (a target's kept corpus above this starts again from the seeds; default 512). A new crash input is copied to tests/fuzz/regressions/<target>/ (commit it) and its report is in
# build-fuzz/logs/<target>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

ALL_TARGETS="quill gguf hf llama2c chat server_request"
BUILD="${FUZZ_BUILD:-build-fuzz}"
SHARED="${QUILL_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${FUZZ_JOBS:-$(nproc)}"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"

# ---- toolchain ------------------------------------------------------------------------------------------------
probe() {
    local dir
    dir="$(mktemp -d)"
    cat > "$dir/p.cpp" <<'EOF'
#include <omp.h>
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t n) { return n > 1 << 30 ? omp_get_max_threads() : 0; }
EOF
    clang++ -fsanitize=fuzzer,address,undefined -fopenmp "$dir/p.cpp" -o "$dir/p" >"$dir/log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || sed 's/^/  /' "$dir/log" | tail -5 >&2
    rm -rf "$dir"
    return $rc
}

check_toolchain() {
    if ! command -v clang++ >/dev/null; then
        echo "fuzz: clang++ not found (install clang; libFuzzer comes with it)" >&2
        return 1
    fi
    probe 2>/dev/null && return 0
    # Debian: libFuzzer and the sanitizer runtimes are in libclang-rt-dev, OpenMP for clang in libomp-dev.
    if command -v apt-get >/dev/null; then
        local need=()
        dpkg -s libomp-dev >/dev/null 2>&1 || need+=(libomp-dev)
        dpkg -s libclang-rt-dev >/dev/null 2>&1 || need+=(libclang-rt-dev)
        if [ ${#need[@]} -gt 0 ]; then
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            echo "fuzz: installing ${need[*]}" >&2
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
                { $sudo apt-get update -qq >/dev/null 2>&1 &&
                  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; }
        fi
    fi
    if ! probe; then
        echo "fuzz: clang++ cannot build a libFuzzer + ASan/UBSan + OpenMP program here (see above)" >&2
        return 1
    fi
}

if [ "${1:-}" = "--check" ]; then
    check_toolchain
    exit $?
fi
SECS="${1:-${FUZZ_SECONDS:-60}}"
check_toolchain || exit 1

# ---- build ----------------------------------------------------------------------------------------------------
echo "fuzz: building $BUILD (clang, ASan + UBSan + libFuzzer)"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DQUILL_FUZZ=ON -DQUILL_BUILD_TESTS=OFF >/dev/null || exit 1
fi
bins=(quill_fuzz_seeds)
for t in $TARGETS; do bins+=("fuzz_$t"); done
cmake --build "$BUILD" -j "$(nproc)" --target "${bins[@]}" >"$BUILD/build.log" 2>&1 || { tail -40 "$BUILD/build.log"; exit 1; }

# ---- seeds: made from ../shared every run (new inputs found by earlier runs stay in the corpus) -----------------
CORPUS="$BUILD/corpus"
mkdir -p "$CORPUS" "$BUILD/logs" "$BUILD/artifacts"
# Model inputs are big (the real seeds are up to 1.7 MB and their mutants join the corpus), so a corpus that grew
# past FUZZ_CORPUS_MB (default 512) starts again from the seeds.
for t in $TARGETS; do
    if [ -d "$CORPUS/$t" ] && [ "$(du -sm "$CORPUS/$t" | cut -f1)" -gt "${FUZZ_CORPUS_MB:-512}" ]; then
        echo "fuzz: corpus of $t is over ${FUZZ_CORPUS_MB:-512} MB: starting again from the seeds"
        rm -rf "${CORPUS:?}/$t"
    fi
done
"$BUILD/quill_fuzz_seeds" "$SHARED" "$CORPUS" || exit 1

export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export QUILL_SHARED="$SHARED"

failed=()

# ---- replay the saved crashes first ----------------------------------------------------------------------------
for t in $TARGETS; do
    dir="tests/fuzz/regressions/$t"
    [ -d "$dir" ] || continue
    n=0
    bad=0
    for f in "$dir"/*; do
        [ -f "$f" ] || continue
        case "$f" in *.md|*.txt) continue ;; esac
        n=$((n + 1))
        if ! "$BUILD/fuzz_$t" "$f" >"$BUILD/logs/replay-$t-$(basename "$f").log" 2>&1; then
            bad=$((bad + 1))
            echo "fuzz: REGRESSION $f still crashes fuzz_$t: $(grep -m1 -E 'ERROR|runtime error|contract violated|deadly signal|terminate' "$BUILD/logs/replay-$t-$(basename "$f").log")"
            failed+=("replay:$f")
        fi
    done
    [ $n -gt 0 ] && echo "fuzz: replayed $n saved input(s) of $t: $((n - bad)) pass, $bad crash"
done

# ---- fuzz --------------------------------------------------------------------------------------------------------
run_one() {
    local t="$1" dict=() len=()
    [ -f "tests/fuzz/dicts/$t.dict" ] && dict=(-dict="tests/fuzz/dicts/$t.dict")
    # Model files: room for the real seeds (up to 1.7 MB; libFuzzer would cut them at 1 MB). Text inputs: its default.
    case "$t" in quill|gguf|hf|llama2c) len=(-max_len=2097152) ;; esac
    mkdir -p "$BUILD/artifacts/$t" "$CORPUS/$t"
    # shellcheck disable=SC2086
    "$BUILD/fuzz_$t" -max_total_time="$SECS" -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
        -artifact_prefix="$BUILD/artifacts/$t/" "${len[@]}" "${dict[@]}" ${FUZZ_ARGS:-} "$CORPUS/$t" >"$BUILD/logs/$t.log" 2>&1
}

echo "fuzz: $TARGETS: ${SECS}s each, $JOBS at a time (logs in $BUILD/logs)"
rm -f "$BUILD"/artifacts/*/* 2>/dev/null
declare -A pid_of
for t in $TARGETS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_one "$t" &
    pid_of[$t]=$!
done

printf '%-16s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in $TARGETS; do
    wait "${pid_of[$t]}"
    rc=$?
    log="$BUILD/logs/$t.log"
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    if [ -z "$execs" ]; then execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#'); fi
    speed=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "$CORPUS/$t" -type f | wc -l)
    result="ok"
    if [ $rc -ne 0 ]; then
        result="CRASH"
        failed+=("fuzz:$t")
        mkdir -p "tests/fuzz/regressions/$t"
        for a in "$BUILD/artifacts/$t"/{crash,leak,timeout,oom}-*; do
            [ -f "$a" ] || continue
            cp "$a" "tests/fuzz/regressions/$t/"
            result="CRASH -> tests/fuzz/regressions/$t/$(basename "$a")"
        done
    fi
    printf '%-16s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "$corpus" "$result"
    if [ $rc -ne 0 ]; then
        grep -m3 -E 'ERROR: |runtime error|contract violated|deadly signal|terminate called|out-of-memory|timeout' "$log" | sed 's/^/    /'
        grep -m6 -E '^ +#[0-9]+ ' "$log" | sed 's/^/    /'
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (reports in $BUILD/logs; commit new inputs under tests/fuzz/regressions/)"
    exit 1
fi
echo "fuzz: no crashes"
