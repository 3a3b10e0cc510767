#!/bin/bash
# GPU checks on the device machine (repository root, .gpu carried): build with
# its LibTorch; the filter gallery on CPU and CUDA (identical pictures?);
# bench_filters with --device cuda (its last column: the GPU's result against
# the CPU path's); the interaction graph on CUDA. QUICK=1: the gallery and
# the five filters that OpenCV does on the CPU only. ONLY="A,B": the gallery
# and those filters only (bench_filters --only).
set -u
R=$PWD
OUT=${OUT:-/tmp/out}
mkdir -p $OUT
export LD_LIBRARY_PATH=$R/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
log() { echo "== $(date +%T) $*"; }
log start
nvidia-smi -L; nproc
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
LF="-Wl,--no-as-needed -Wl,-rpath-link,$R/.gpu/lib"
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOZY_BUILD_TESTS=OFF -DCOZY_BUILD_BENCH=ON \
  -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON -DCMAKE_PREFIX_PATH="$TP;$R/.gpu/cmake" -DBoost_DIR=$R/.gpu/cmake \
  -DOpenCV_DIR=$R/.gpu/cmake -Dnlohmann_json_DIR=$R/.gpu/cmake -DCLI11_DIR=$R/.gpu/cmake -DZLIB_ROOT=$R/.gpu \
  -DNATS_INCLUDE_DIR=$R/.gpu/include -DCOZY_NATS_LIBRARY=$R/.gpu/lib/libnats.so \
  -DCMAKE_DISABLE_FIND_PACKAGE_TBB=ON -DCMAKE_EXE_LINKER_FLAGS="$LF" -DCMAKE_SHARED_LINKER_FLAGS="$LF" \
  -DCMAKE_MODULE_LINKER_FLAGS="$LF" > $OUT/configure.log 2>&1 || { tail -40 $OUT/configure.log; exit 1; }
grep -i openmp $OUT/configure.log
log configured
ninja -C /tmp/b -j16 cozy bench_filters > $OUT/build.log 2>&1 || { grep -E "error" -A4 $OUT/build.log | head -100; exit 1; }
log built
C=/tmp/b/cozy
log "filter gallery on CPU and CUDA"
$C run graphs/filter_gallery.json --input-dir input --output-dir $OUT/gal_cpu --progress none > /dev/null
/usr/bin/time -f "cuda gallery wall %e s" $C run graphs/filter_gallery.json --input-dir input --output-dir $OUT/gal_cuda --device cuda --progress none > /dev/null
python3 - <<'PY'
import os, glob, numpy as np, cv2
out = os.environ.get("OUT", "/tmp/out")
worst = []
for f in sorted(glob.glob(f"{out}/gal_cpu/**/*.png", recursive=True)):
    g = f.replace("gal_cpu", "gal_cuda")
    a = cv2.imread(f, cv2.IMREAD_UNCHANGED).astype(float); b = cv2.imread(g, cv2.IMREAD_UNCHANGED).astype(float)
    worst.append((np.abs(a - b).max(), np.abs(a - b).mean(), os.path.basename(f)))
worst.sort(reverse=True)
print(len(worst), "gallery images; largest cpu-vs-cuda differences (max, mean 8-bit levels):")
for w in worst[:8]: print("  %5.0f %7.4f %s" % w)
PY
if [ -n "${ONLY:-}" ]; then  # ONLY="A,B": those filters, 9 repeats, and nothing after
  log "$ONLY on CUDA vs OpenCV on 16 cores"
  /tmp/b/bench/bench_filters 9 --device cuda --only "$ONLY"
  log end
  exit 0
fi
log "filters on CUDA vs OpenCV on 16 cores"
[ -n "${QUICK:-}" ] || /tmp/b/bench/bench_filters 5 --device cuda
log "the five filters OpenCV defines (its function on the CPU path, tensor operations here), 9 repeats"
for f in CLAHE "EdgeDetect canny" MedianDenoise BilateralDenoise "Resize 256 lanczos"; do
  /tmp/b/bench/bench_filters 9 --device cuda --only "$f" | tail -n 1
done
[ -n "${QUICK:-}" ] && { log end; exit 0; }
log "interaction graph on CUDA"
/usr/bin/time -f "layout_scene cuda wall %e s" $C run graphs/layout_scene.json --models-dir models --input-dir input --output-dir $OUT/scene --device cuda --progress none | tail -3
log end
