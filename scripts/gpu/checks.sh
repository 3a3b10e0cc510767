#!/bin/bash
# GPU checks on the device machine (repository root, .gpu carried): build with
# its LibTorch, run the main job on CPU and CUDA, the filter gallery, bench_gan
# and bench_filters with --device cuda.
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
  -DCMAKE_DISABLE_FIND_PACKAGE_TBB=ON -DCMAKE_EXE_LINKER_FLAGS="$LF" -DCMAKE_SHARED_LINKER_FLAGS="$LF" \
  -DCMAKE_MODULE_LINKER_FLAGS="$LF" > $OUT/configure.log 2>&1 || { tail -40 $OUT/configure.log; exit 1; }
log configured
ninja -C /tmp/b -j16 cozy bench_filters bench_gan > $OUT/build.log 2>&1 || { grep -E "error" -A4 $OUT/build.log | head -100; exit 1; }
log built
C=/tmp/b/cozy
$C plugins 2>&1 | tail -12
log "main job, cold, CPU (16 threads) then CUDA"
/usr/bin/time -f "cpu main job wall %e s" $C run graphs/sample.json --models-dir models --output-dir $OUT/cpu --progress none
/usr/bin/time -f "cuda main job wall %e s" $C run graphs/sample.json --models-dir models --output-dir $OUT/cuda --device cuda --progress json > $OUT/sample_cuda.jsonl
python3 - <<'PY'
import json, os, numpy as np, cv2
out = os.environ.get("OUT", "/tmp/out")
for line in open(f"{out}/sample_cuda.jsonl"):
    e = json.loads(line)
    if e["type"] == "executed":
        d = e["data"]
        print("node", d["node"], d["display_node"][:30], "%.4f s" % d["seconds"], [(v.get("device"), v.get("shape")) if v["kind"] == "tensor" else v.get("type", v["kind"]) for v in d["values"]])
a = cv2.imread(f"{out}/cpu/fashion_samples_00001.png", cv2.IMREAD_UNCHANGED).astype(float)
b = cv2.imread(f"{out}/cuda/fashion_samples_00001.png", cv2.IMREAD_UNCHANGED).astype(float)
print("main job cpu vs cuda image: max abs diff", np.abs(a - b).max(), "mean", np.abs(a - b).mean(), "(8-bit levels)")
PY
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
log "GAN speed vs Python PyTorch"
/tmp/b/bench/bench_gan --device cuda --python python3 --threads 16 --repeats 5 --steps 20
/tmp/b/bench/bench_gan --device cpu --python python3 --threads 1,16 --repeats 3 --steps 5
log "TrainGAN graph on CUDA, 300 steps"
$C run graphs/train_gan.json --set 1.folder=$R/.gpu/fm --set 2.epochs=0 --set 2.steps=300 --set 2.checkpoint_every=0 --device cuda --progress json --models-dir $OUT/m --output-dir $OUT/tg > $OUT/train_cuda.jsonl
grep '"progress"' $OUT/train_cuda.jsonl | tail -1
log "filters on CUDA vs OpenCV on 16 cores"
/tmp/b/bench/bench_filters 5 --device cuda
log end
