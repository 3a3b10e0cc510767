#!/usr/bin/python3
"""The agriculture pack's results against numpy: the same formulas, written
out again here, on the same files read by GDAL (Debian's python3-gdal and
python3-numpy), compared with the GeoTIFFs Cozy wrote.

    check_with_numpy.py indices SCENE.tif DIR   DIR holds Cozy's <INDEX>_00001.tif
    check_with_numpy.py reflectance MTL.txt FILE FILE is Cozy's reflectance GeoTIFF

The scene's bands are named blue, green, red, nir, swir1, swir2 (Landsat 7's
1-5 and 7); NDRE reads swir1 in place of a red-edge band, which Landsat has
not (a check of the formula only). Prints one line per check (its largest
difference, relative to the value where |value| > 1) and exits 1 if any is
above float32's precision or NaN falls elsewhere.
"""
import os
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def read(path):
    ds = gdal.Open(path)
    return np.stack([ds.GetRasterBand(i + 1).ReadAsArray().astype(np.float64) for i in range(ds.RasterCount)])


def divide(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, np.nan, num / np.where(den == 0, 1, den))


def indices(b):
    blue, green, red, nir, swir1, _ = b
    total = red + green + blue
    r, g, bl = divide(red, total), divide(green, total), divide(blue, total)
    with np.errstate(invalid="ignore"):
        msavi2 = (2 * nir + 1 - np.sqrt((2 * nir + 1) ** 2 - 8 * (nir - red))) / 2
    return {
        "NDVI": divide(nir - red, nir + red),
        "GNDVI": divide(nir - green, nir + green),
        "SAVI": divide(1.5 * (nir - red), nir + red + 0.5),
        "MSAVI2": msavi2,
        "EVI": divide(2.5 * (nir - red), nir + 6 * red - 7.5 * blue + 1),
        "EVI2": divide(2.5 * (nir - red), nir + 2.4 * red + 1),
        "NDWI": divide(green - nir, green + nir),
        "MNDWI": divide(green - swir1, green + swir1),
        "NDRE": divide(nir - swir1, nir + swir1),
        "ARVI": divide(nir - (2 * red - blue), nir + (2 * red - blue)),
        "SR": divide(nir, red),
        "ExG": 2 * g - r - bl,
        "ExR": 1.4 * r - g,
        "ExGR": (2 * g - r - bl) - (1.4 * r - g),
        "CIVE": 0.441 * red - 0.811 * green + 0.385 * blue + 18.78745,
        "VARI": divide(green - red, green + red - blue),
        "GLI": divide(2 * green - red - blue, 2 * green + red + blue),
        "NGRDI": divide(green - red, green + red),
    }


def compare(name, expected, got):
    expected = expected.astype(np.float32).astype(np.float64)
    if expected.shape != got.shape:
        print(f"{name}: shape {got.shape}, numpy {expected.shape}")
        return False
    nan_same = np.array_equal(np.isnan(expected), np.isnan(got))
    ok = ~np.isnan(expected)
    diff = np.abs(got[ok] - expected[ok]) / np.maximum(1.0, np.abs(expected[ok])) if ok.any() else np.zeros(1)
    worst = float(diff.max()) if diff.size else 0.0
    good = nan_same and worst <= 2.5e-7
    print(f"{name}: max relative difference {worst:.3g}, {int(np.isnan(expected).sum())} NaN "
          f"{'in the same places' if nan_same else 'ELSEWHERE'}{'' if good else ' -- MISMATCH'}")
    return good


def main():
    mode = sys.argv[1]
    good = True
    if mode == "indices":
        bands = read(sys.argv[2])
        for name, expected in indices(bands).items():
            good &= compare(name, expected, read(os.path.join(sys.argv[3], f"{name}_00001.tif"))[0])
    elif mode == "reflectance":
        mtl_path = sys.argv[2]
        mtl = {}
        for line in open(mtl_path):
            if "=" in line:
                key, value = (part.strip().strip('"') for part in line.split("=", 1))
                mtl[key] = value
        sun = np.deg2rad(float(mtl["SUN_ELEVATION"]))
        got = read(sys.argv[3])
        for i, band in enumerate(range(2, 8)):
            dn = read(os.path.join(os.path.dirname(mtl_path), mtl[f"FILE_NAME_BAND_{band}"]))[0]
            rho = (float(mtl[f"REFLECTANCE_MULT_BAND_{band}"]) * dn + float(mtl[f"REFLECTANCE_ADD_BAND_{band}"])) / np.sin(sun)
            good &= compare(f"reflectance B{band}", np.where(dn == 0, np.nan, rho), got[i])
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
