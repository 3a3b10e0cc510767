#!/usr/bin/python3
"""The medical pack's DICOM against pydicom (Debian's python3-pydicom): the
values pydicom reads (its pixel array through the modality LUT: rescale
slope and intercept) against the float32 dumps Cozy wrote, and the tags of
the files Cozy writes.

    check_with_pydicom.py pixels DIR    DIR holds NAME.bin and NAME.json
                                        (Cozy's values and shape; "file": the DICOM)
    check_with_pydicom.py saved FILE    prints the written file's tags as JSON

`pixels` prints a line per file (equal, differs, or pydicom cannot decode it)
and exits 1 if any differs.
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_color_lut


def pixels(folder):
    differs = 0
    for name in sorted(f for f in os.listdir(folder) if f.endswith(".json")):
        meta = json.load(open(os.path.join(folder, name)))
        got = np.fromfile(os.path.join(folder, name[:-5] + ".bin"), dtype="<f4").reshape(meta["shape"])  # [D, C, H, W]
        try:
            ds = pydicom.dcmread(meta["file"])
            array = ds.pixel_array
        except Exception as e:  # a transfer syntax pydicom has no decoder for here
            print(f"{os.path.basename(meta['file'])}: pydicom cannot decode it ({type(e).__name__})")
            continue
        if ds.get("PhotometricInterpretation", "") == "PALETTE COLOR":
            array = apply_color_lut(array, ds)
            if array.dtype == np.uint16 or array.max() > 255:
                array = array / 257.0  # GDCM gives the palette's 8 high bits... compared at 8 bits
        else:
            array = apply_modality_lut(array, ds)
            if ds.get("Modality", "") == "RTDOSE" and "DoseGridScaling" in ds:
                array = array * float(ds.DoseGridScaling)  # doses in Gy, as GDCM's rescale gives them
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1))
        if samples == 3 or array.shape[-1] == 3 and array.ndim >= 3 and got.shape[1] == 3:
            expected = array.reshape(frames, *array.shape[-3:]).transpose(0, 3, 1, 2)
        else:
            expected = array.reshape(frames, 1, *array.shape[-2:])
        expected = expected.astype(np.float64)
        if expected.shape != got.shape:
            print(f"{os.path.basename(meta['file'])}: DIFFERS: shape {got.shape}, pydicom {expected.shape}")
            differs += 1
            continue
        diff = float(np.abs(expected - got).max()) if got.size else 0.0
        tolerance = 1.0 if ds.get("PhotometricInterpretation", "").startswith("YBR") or "PALETTE" in ds.get(
            "PhotometricInterpretation", "") else 1e-3 * max(1.0, float(np.abs(expected).max()))
        if diff <= tolerance:
            print(f"{os.path.basename(meta['file'])}: equal (largest difference {diff:g})")
        else:
            where = np.unravel_index(int(np.abs(expected - got).argmax()), got.shape)
            print(f"{os.path.basename(meta['file'])}: DIFFERS by {diff:g} (at {tuple(int(i) for i in where)}: "
                  f"Cozy {got[where]:g}, pydicom {expected[where]:g})")
            differs += 1
    sys.exit(1 if differs else 0)


def saved(path):
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    print(json.dumps({
        "SOPClassUID": str(ds.SOPClassUID), "SOPInstanceUID": str(ds.SOPInstanceUID),
        "SeriesInstanceUID": str(ds.SeriesInstanceUID), "StudyInstanceUID": str(ds.StudyInstanceUID),
        "ImageType": list(ds.ImageType), "TransferSyntaxUID": str(ds.file_meta.TransferSyntaxUID),
        "PatientName": str(ds.get("PatientName", "")), "PatientID": str(ds.get("PatientID", "")),
        "PatientBirthDate": str(ds.get("PatientBirthDate", "(absent)")) if "PatientBirthDate" in ds else "(absent)",
        "PatientIdentityRemoved": str(ds.get("PatientIdentityRemoved", "")),
        "min": float(values.min()), "max": float(values.max()), "sum": float(values.sum()),
        "rows": int(ds.Rows), "columns": int(ds.Columns)}))


if __name__ == "__main__":
    (pixels if sys.argv[1] == "pixels" else saved)(sys.argv[2])
