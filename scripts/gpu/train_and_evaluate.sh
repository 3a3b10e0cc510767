#!/bin/bash
# On the device machine (repository root, .gpu carried): train the shipped GAN
# on CUDA (graphs/train_gan.json), evaluate it, compose scenes.
set -u
R=$PWD
OUT=${OUT:-/tmp/out}
mkdir -p $OUT
export LD_LIBRARY_PATH=$R/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
log() { echo "== $(date +%T) $*"; }
log start
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
LF="-Wl,--no-as-needed -Wl,-rpath-link,$R/.gpu/lib"
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOZY_BUILD_TESTS=OFF -DCOZY_BUILD_BENCH=OFF \
  -DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON -DCMAKE_PREFIX_PATH="$TP;$R/.gpu/cmake" -DBoost_DIR=$R/.gpu/cmake \
  -DOpenCV_DIR=$R/.gpu/cmake -Dnlohmann_json_DIR=$R/.gpu/cmake -DCLI11_DIR=$R/.gpu/cmake -DZLIB_ROOT=$R/.gpu \
  -DNATS_INCLUDE_DIR=$R/.gpu/include -DCOZY_NATS_LIBRARY=$R/.gpu/lib/libnats.so \
  -DCMAKE_EXE_LINKER_FLAGS="$LF" -DCMAKE_SHARED_LINKER_FLAGS="$LF" -DCMAKE_MODULE_LINKER_FLAGS="$LF" \
  > /tmp/configure.log 2>&1 || { tail -40 /tmp/configure.log; exit 1; }
ninja -C /tmp/b -j16 cozy > /tmp/build.log 2>&1 || { grep -E "error" -A4 /tmp/build.log | head -80; exit 1; }
log built
C=/tmp/b/cozy
$C plugins 2>&1 | tail -9
FM=$R/.gpu/fm
log "train the class-conditional GAN, 5 epochs, CUDA"
mkdir -p /tmp/m && cp models/fashion_classifier_00001.pt models/fashion_vae_00001.pt /tmp/m/
/usr/bin/time -f "train_gan wall %e s" $C run graphs/train_gan.json --set 1.folder=$FM --device cuda --models-dir /tmp/m \
  --output-dir /tmp/tg --progress json > /tmp/train.jsonl
grep '"progress"' /tmp/train.jsonl | tail -1
cp /tmp/m/fashion_cdcgan_00001.pt $OUT/
cp /tmp/tg/train_gan/fashion_cdcgan_losses_00001.csv /tmp/tg/train_gan/fashion_cdcgan_final_00001.png $OUT/ 2>/dev/null
sha256sum $OUT/fashion_cdcgan_00001.pt
log "evaluate.json on CUDA"
/usr/bin/time -f "evaluate wall %e s" $C run graphs/evaluate.json --set 4.folder=$FM --set 5.folder=$FM --set 6.folder=$FM \
  --device cuda --models-dir /tmp/m --output-dir /tmp/ev --progress none 2>&1 | grep -v "^/" | cut -c1-400
cp /tmp/ev/evaluate/metrics_00001.json $OUT/evaluate_cuda.json
log "scenes on CUDA"
$C run graphs/layout_scene.json --device cuda --models-dir /tmp/m --output-dir /tmp/ls --progress json > /tmp/ls.jsonl
python3 - <<'PY'
import json
for line in open("/tmp/ls.jsonl"):
    e = json.loads(line)
    if e["type"] == "executed":
        d = e["data"]
        print(d["node"], d["display_node"][:28], "%.4f s" % d["seconds"],
              [(v.get("device"), v.get("shape")) if v["kind"] == "tensor" else v.get("type", v["kind"]) for v in d["values"]])
PY
cp /tmp/ls/layout_scene_00001.png $OUT/layout_scene_cuda.png
cat > /tmp/sf.json <<'J'
{"1": {"class_type": "LoadGenerator", "inputs": {"checkpoint": "fashion_cdcgan_00001.pt"}},
 "2": {"class_type": "LoadClassifier", "inputs": {"checkpoint": "fashion_classifier_00001.pt"}},
 "3": {"class_type": "SceneFidelity", "inputs": {"generator": ["1", 0], "classifier": ["2", 0], "count": 200, "size": 64}},
 "4": {"class_type": "SceneFidelity", "inputs": {"generator": ["1", 0], "classifier": ["2", 0], "count": 200, "size": 256}}}
J
$C run /tmp/sf.json --device cuda --models-dir /tmp/m --output-dir /tmp/sf --progress none 2>&1 | cut -c1-300
log end
