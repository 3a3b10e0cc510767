#!/usr/bin/env bash
# Real images for the domain packs, from Debian 12's own packages: each
# package is fetched with `apt-get download` and unpacked with `dpkg -x` into
# .deps/data/ (installing them would pull in R and hundreds of packages), and
# the few files the packs use are checked against their sha256 and copied to
# input/<pack>/, where graphs name them. Nothing here is committed (some of it
# is GPL'd data). Safe to run again: it does nothing when the files are there.
# A file that cannot be fetched is reported; the tests that need it say so
# and skip.
set -uo pipefail
cd "$(dirname "$0")/.."
work=.deps/data
mkdir -p "$work"

# fetch PACKAGE PACK SHA256:PATH_IN_PACKAGE...
fetch() {
  local package=$1 pack=$2
  shift 2
  local missing=0
  for entry in "$@"; do
    [ -f "input/$pack/$(basename "${entry#*:}")" ] || missing=1
  done
  ((missing)) || return 0
  mkdir -p "input/$pack" "$work/$package"
  rm -rf "$work/$package/root"
  if ! ls "$work/$package"/*.deb >/dev/null 2>&1; then
    (cd "$work/$package" && apt-get download "$package" >/dev/null 2>&1) || {
      echo "cozy data: could not download $package (apt-get update first?); its tests will skip" >&2
      return 0
    }
  fi
  dpkg -x "$work/$package"/*.deb "$work/$package/root"
  for entry in "$@"; do
    local sum=${entry%%:*} path=${entry#*:}
    local file="$work/$package/root/$path"
    if [ ! -f "$file" ]; then
      echo "cozy data: $package has no $path" >&2
      continue
    fi
    if [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sum" ]; then
      echo "cozy data: $path from $package is not the file the tests were written for (sha256 differs)" >&2
      continue
    fi
    cp "$file" "input/$pack/"
  done
}

# A Landsat-7 ETM+ scene (stars package: bands 1-5 and 7, 349 x 352, GeoTIFF).
fetch r-cran-stars agriculture \
  3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e:usr/lib/R/site-library/stars/tif/L7_ETMs.tif

# Landsat-8 OLI bands 2-7 of a 41 x 41 crop, with their MTL calibration file.
sat=usr/lib/R/site-library/satellite/extdata/LC08_L1TP_195025_20130707_20170503_01_T1
fetch r-cran-satellite agriculture \
  b0d78ab7b975c6521da3de48ab2bf67392ce1fe7aefb2b050e8cd08e9b663706:${sat}_B2.TIF \
  2729316dd4d6b89e73acfc75dba94d04a867a4e79feb5e7c9133761682396cf3:${sat}_B3.TIF \
  02a361f29e52a857af467afbc713e9950e03e5f84521650d5ea4499e1dda65b5:${sat}_B4.TIF \
  139f09f39d8c53be276c2d24ca78fc99a5df7a3bafa125f0fbfbc96e81f509de:${sat}_B5.TIF \
  7c36936df3c0677970a86cba7d26d4180c8be7c7e336abbb1c1ff6bd63a5b0f8:${sat}_B6.TIF \
  033bc71cb6e992f26ec2217b180d0b8b5da61ee8266148b5880b8caab97b71b6:${sat}_B7.TIF \
  ef1ff52558515ebdd3b6caf8b09e5439cc85bbe4f410d61e8de7bde2019127e9:${sat}_MTL.txt

# fetch_listed PACKAGE PACK FOLDER_IN_PACKAGE MANIFEST: every file the
# manifest (sha256sum's format) names, from that folder of the package.
fetch_listed() {
  local package=$1 pack=$2 folder=$3 manifest=$4
  local entries=()
  while read -r sum name; do entries+=("$sum:$folder/$name"); done <"$manifest"
  fetch "$package" "$pack" "${entries[@]}"
}

# DICOM in every transfer syntax: pydicom's test files (68 .dcm files).
fetch_listed python3-pydicom medical/pydicom usr/lib/python3/dist-packages/pydicom/data/test_files \
  scripts/data/pydicom-test-files.sha256
# A CT ankle with rescale and window values, a 10-frame RLE palette ultrasound.
fetch_listed octave-dicom medical/octave usr/share/octave/packages/dicom-0.5.1/imdata scripts/data/octave-dicom.sha256
# MR brains in NIfTI (mricron-data): Colin27 ("ch2") at 1 mm, brain-extracted
# at 1 mm, and at 0.5 mm; a macaque T1 template in float32 (INIA19).
mricron=usr/share/mricron/templates
fetch mricron-data medical/nifti \
  a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309:$mricron/ch2.nii.gz \
  592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1:$mricron/ch2bet.nii.gz \
  a094f3ccf383c495c9569625bd0c06993fd4b02d2a8d9966da5fea7d7e530e8d:$mricron/ch2better.nii.gz \
  3f0707f4999a0c6b56d6c9a0145310cba17753e2b4612f577d8dbfe65a89e231:$mricron/inia19-t1-brain.nii.gz
exit 0
