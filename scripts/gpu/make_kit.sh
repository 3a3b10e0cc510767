#!/usr/bin/env bash
# Builds .gpu/, what a GPU machine without Boost, OpenCV, nlohmann or CLI11
# needs to build and run Cozy against its own LibTorch (PyTorch's wheel):
#   .gpu/include  the headers the build really includes (from ninja's deps)
#   .gpu/lib      Debian's OpenCV core/imgproc/imgcodecs and what they load,
#                 libnats and its protobuf-c;
#                 libraries OpenCV links but Cozy never calls (GDAL, GDCM,
#                 LAPACK, BLAS, OpenJPEG, OpenEXR) are replaced by stubs
#   .gpu/cmake    small package configs for find_package
#   .gpu/fm       Fashion-MNIST, with FM=1 (for training checks; 30 MB of the
#                 64 MiB a run may carry)
# Run from the repository root after a build in build/; then carry .gpu:
#   run(command="bash scripts/gpu/checks.sh", carry=[".gpu"])
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/include .gpu/lib
(cd build && ninja -t deps) | grep -E '^\s+/usr/include/(boost|opencv4|nlohmann|CLI|zlib|zconf)' | sed 's/^ *//' | sort -u |
  while read -r f; do d=.gpu/include/${f#/usr/include/}; mkdir -p "$(dirname "$d")"; cp "$f" "$d"; done
cp -r /usr/include/boost/config /usr/include/boost/predef .gpu/include/boost/
# libnats (the queue of `cozy serve --queue`), its headers and what it loads.
cp -r /usr/include/nats /usr/include/nats.h .gpu/include/
for l in libnats.so.3.4 libprotobuf-c.so.1; do cp -L /usr/lib/x86_64-linux-gnu/$l .gpu/lib/; done
ln -sf libnats.so.3.4 .gpu/lib/libnats.so
python3 scripts/gpu/libclosure.py | while read -r f; do cp -L "$f" .gpu/lib/; done
python3 scripts/gpu/stubs.py .gpu/lib
(cd .gpu/lib && for l in core imgproc imgcodecs; do ln -sf libopencv_$l.so.406 libopencv_$l.so; done && ln -sf libz.so.1 libz.so)
cp -r scripts/gpu/cmake .gpu/cmake
if [ -n "${FM:-}" ]; then mkdir -p .gpu/fm && cp /usr/share/datasets/fashion-mnist/*.gz .gpu/fm/; fi
du -sh .gpu
