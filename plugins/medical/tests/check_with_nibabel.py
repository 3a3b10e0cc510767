#!/usr/bin/python3
"""What nibabel and scipy make of the NIfTI files LoadNIfTI and Resample read.

  check_with_nibabel.py variants SOURCE FOLDER
      writes, from a crop of SOURCE, NIfTI files the reader must handle:
      plain and gzip'd, big-endian with a scaling, NIfTI-2, a rotated
      qform only with qfac -1 (left-handed), four frames.
  check_with_nibabel.py compare STEM
      STEM.bin holds Cozy's voxels (float32 [D, C, H, W]), STEM.json their
      shape, the file, the frame and Cozy's spacing, origin and orientation;
      prints the largest differences from nibabel's reading and exits 1 when
      any is beyond float rounding.
  check_with_nibabel.py resample STEM SPACING_X SPACING_Y SPACING_Z
      as compare's files, for Cozy's linear resampling of the file: checked
      against scipy.ndimage.map_coordinates (order 1) at the same places.
"""
import json
import sys

import nibabel as nib
import numpy as np


def cozy(stem):
    meta = json.load(open(stem + ".json"))
    voxels = np.fromfile(stem + ".bin", dtype=np.float32).reshape(meta["shape"])
    return meta, voxels


def expected(path, frame):
    """nibabel's voxels as Cozy orders them ([k, c, j, i], slices along row x column) and its geometry."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj[..., frame] if len(img.shape) == 4 else img.dataobj).astype(np.float64)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine  # RAS+ -> LPS
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    axes = affine[:3, :3] / spacing
    origin = affine[:3, 3].copy()
    voxels = data.transpose(2, 1, 0)[:, None]
    if np.dot(np.cross(axes[:, 0], axes[:, 1]), axes[:, 2]) < 0:  # left-handed: Cozy reverses the slices
        origin += (data.shape[2] - 1) * affine[:3, 2]
        voxels = voxels[::-1]
    return voxels, spacing, origin, np.concatenate([axes[:, 0], axes[:, 1]])


def compare(stem):
    meta, ours = cozy(stem)
    voxels, spacing, origin, orientation = expected(meta["file"], meta.get("frame", 0))
    scale = max(1.0, float(np.abs(voxels).max()))
    report = {
        "shape_equal": list(voxels.shape) == list(ours.shape),
        "voxels": float(np.abs(voxels - ours).max()) / scale if voxels.shape == ours.shape else None,
        "spacing": float(np.abs(spacing - meta["spacing"]).max()),
        "origin": float(np.abs(origin - meta["origin"]).max()),
        "orientation": float(np.abs(orientation - meta["orientation"]).max()),
    }
    print(json.dumps(report))
    ok = report["shape_equal"] and report["voxels"] <= 1e-6 and report["spacing"] < 1e-4 and \
        report["origin"] < 1e-3 and report["orientation"] < 1e-5
    return 0 if ok else 1


def resample(stem, new_spacing):
    from scipy.ndimage import map_coordinates
    meta, ours = cozy(stem)
    voxels, spacing, _, _ = expected(meta["file"], 0)
    volume = voxels[:, 0]  # [k, j, i]
    old = spacing[::-1]    # along k, j, i
    new = np.array(new_spacing[::-1], dtype=np.float64)
    counts = [int(np.floor((n - 1) * o / s + 1e-9)) + 1 for n, o, s in zip(volume.shape, old, new)]
    grid = np.meshgrid(*[np.arange(c) * s / o for c, s, o in zip(counts, new, old)], indexing="ij")
    reference = map_coordinates(volume, grid, order=1, mode="nearest")
    if list(reference.shape) != list(ours.shape[:1] + ours.shape[2:]):
        print(json.dumps({"shape": list(reference.shape), "cozy": list(ours.shape)}))
        return 1
    difference = float(np.abs(reference - ours[:, 0]).max())
    print(json.dumps({"shape": list(reference.shape), "max_difference": difference}))
    return 0 if difference <= 1e-4 * max(1.0, float(np.abs(reference).max())) else 1


def variants(source, folder):
    img = nib.load(source)
    data = np.asanyarray(img.dataobj)[60:100, 70:120, 50:80].astype(np.float32)
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([60, 70, 50])
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), f"{folder}/plain.nii")
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), f"{folder}/gzip.nii.gz")
    # Big-endian float32 with a scaling the reader applies.
    header = nib.Nifti1Header(endianness=">")
    scaled = nib.Nifti1Image(((data - 5) / 2).astype(">f4"), affine, header)
    scaled.header.set_slope_inter(2.0, 5.0)
    nib.save(scaled, f"{folder}/big_endian_scaled.nii")
    nib.save(nib.Nifti2Image(data.astype(np.int16), affine), f"{folder}/nifti2.nii.gz")
    # A rotated, left-handed (qfac -1) qform and no sform.
    theta = np.deg2rad(20)
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    oblique = np.eye(4)
    oblique[:3, :3] = rotation @ np.diag([1.2, 0.9, -2.5])
    oblique[:3, 3] = [10, -20, 30]
    img2 = nib.Nifti1Image(data.astype(np.int16), None)
    img2.set_qform(oblique, code=1)
    img2.set_sform(None, code=0)
    nib.save(img2, f"{folder}/qform_left_handed.nii.gz")
    frames = np.stack([data, data + 1, data * 2], axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(frames, affine), f"{folder}/frames.nii.gz")
    return 0


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "variants":
        sys.exit(variants(sys.argv[2], sys.argv[3]))
    if command == "compare":
        sys.exit(compare(sys.argv[2]))
    if command == "resample":
        sys.exit(resample(sys.argv[2], [float(v) for v in sys.argv[3:6]]))
    sys.exit("unknown command " + command)
