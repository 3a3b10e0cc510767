#!/usr/bin/env bash
# The tests: install what is missing, build, and run
#   1. the whole suite (ctest),
#   2. the whole suite again under AddressSanitizer + UBSan (preset asan),
#      less three tests that train for a minute and test no code the others
#      leave untested there, and the out-of-tree build (it compiles the
#      example and the packs again, unsanitised, against the installed SDK:
#      a compiler's test, done in step 1) (CMakePresets.json names them),
#   3. the graph parser/validator fuzzer, the upload (multipart) parser's,
#      the DICOM reader's and the NIfTI reader's, each for a bounded time
#      (FUZZ_SECONDS, 60).
# `scripts/test.sh --quick` runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --tests
quick=0
[ "${1:-}" = "--quick" ] && quick=1

cmake --preset default >/dev/null
cmake --build --preset default
ctest --preset default

if ((quick)); then exit 0; fi

echo "== sanitizers (ASan + UBSan) =="
cmake --preset asan >/dev/null
cmake --build --preset asan
ctest --preset asan

cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz
mkdir -p build-fuzz/artifacts

# fuzz TARGET WHAT CORPUS SEEDS...: runs build-fuzz/fuzz_TARGET for
# FUZZ_SECONDS; a crash fails the tests with where to find its input.
fuzz() {
  local target=$1 what=$2 corpus=build-fuzz/$3
  shift 3
  echo "== fuzzing $what for ${FUZZ_SECONDS:-60} s =="
  mkdir -p "$corpus"
  "build-fuzz/fuzz_$target" -max_total_time="${FUZZ_SECONDS:-60}" -max_len="${MAX_LEN:-4096}" -print_final_stats=1 ${FUZZ_EXTRA:-} \
    -artifact_prefix="build-fuzz/artifacts/${target}_" "$corpus" "$@" 2>"build-fuzz/fuzz_$target.log" || {
    tail -40 "build-fuzz/fuzz_$target.log"
    echo "the fuzzer found a crash: see build-fuzz/artifacts/ and add it to fuzz/regressions/ (as ${target}_NAME)"
    exit 1
  }
  grep -E "stat::number_of_executed_units" "build-fuzz/fuzz_$target.log" || true
  echo "fuzzer: no crash"
}
fuzz graph "graph parsing and validation" corpus graphs tests/data fuzz/regressions fuzz/workflow_seeds \
  examples/hello-plugin
fuzz multipart "the upload parser" corpus_multipart fuzz/multipart_seeds
# The DICOM reader, seeded with the files scripts/data.sh fetched (where it could).
if [ -x build-fuzz/fuzz_dicom ] && [ -d input/medical/pydicom ]; then
  # Each input is decoded in a child process (a fork: slow under ASan). A
  # huge allocation a damaged header asks for fails (ASan returns null, the
  # reader says why) instead of stopping the child as libFuzzer would.
  ASAN_OPTIONS=allocator_may_return_null=1 FUZZ_EXTRA="-malloc_limit_mb=16384 -report_slow_units=120" MAX_LEN=65536 \
    fuzz dicom "the DICOM reader" corpus_dicom input/medical/pydicom input/medical/octave
fi
# The NIfTI reader (in the host's process), seeded with the pack's small
# files and the MR brains (their first 64 KiB: broken gzip streams too).
if [ -x build-fuzz/fuzz_nifti ]; then
  MAX_LEN=65536 fuzz nifti "the NIfTI reader" corpus_nifti plugins/medical/tests/data/nifti \
    $( [ -d input/medical/nifti ] && echo input/medical/nifti )
fi

# The closing line CI reads: the sanitizer suite's ctest summary above, and:
echo "all: passed"
