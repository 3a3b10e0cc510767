// The agriculture pack's raster: a scene's bands in their own units (digital
// numbers, reflectance, an index), with their names and the georeferencing
// of the file they came from, so that what is written back lands where the
// scene was. An IMAGE is [0, 1] colour; a RASTER is neither, which is why it
// is a type of its own (RASTER) and FalseColor / IndexColormap make IMAGEs of it.
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cozy::agriculture {

inline constexpr const char* RASTER = "RASTER";

/// GeoTIFF georeferencing, kept as the file has it so a written file keeps it
/// exactly: the tie point and pixel scale (or a transformation matrix), and
/// the GeoKey directory with its double and ASCII parameters.
struct Georeference {
  std::vector<double> pixel_scale;  // ModelPixelScaleTag (sx, sy, sz)
  std::vector<double> tie_points;   // ModelTiepointTag (i, j, k, x, y, z)...
  std::vector<double> matrix;       // ModelTransformationTag (16), when the file uses it
  std::vector<uint16_t> keys;       // GeoKeyDirectoryTag
  std::vector<double> doubles;      // GeoDoubleParamsTag
  std::string ascii;                // GeoAsciiParamsTag

  bool empty() const { return pixel_scale.empty() && tie_points.empty() && matrix.empty() && keys.empty(); }
  /// GDAL's geotransform (x0, dx, rx, y0, ry, dy) of the pixel corner, if the
  /// file gives one (a file whose GTRasterTypeGeoKey says pixels are points
  /// is shifted by half a pixel, as GDAL reads it).
  std::optional<std::array<double, 6>> transform() const;
  /// The value of GeoKey `key` when it is stored in the directory itself, or -1.
  int key(uint16_t key) const;
  /// The EPSG code of the projected or geographic coordinate system, or 0.
  int epsg() const;
};

class Raster final : public Object {
 public:
  std::string type_name() const override { return RASTER; }

  at::Tensor bands;                 ///< float32 [C, H, W] on the CPU
  std::vector<std::string> names;   ///< one per band: "red", "nir", "NDVI", ...
  std::string units;                ///< "DN", "reflectance", "index"
  Georeference georef;
  std::optional<double> nodata;     ///< the file's no-data value, in `units`
  /// Where a band came from: Landsat's "B4", or the band's number in the file.
  std::vector<std::string> sources;
  /// The scene's calibration, when it was loaded from a Landsat MTL file.
  std::map<std::string, std::string> metadata;

  int64_t count() const { return bands.size(0); }
  /// The band called `name` (case-insensitive), or -1.
  int64_t find(const std::string& name) const;
  /// The band called `name`, [H, W]; throws naming the bands there are.
  at::Tensor band(const std::string& name, const std::string& why) const;
  /// A new raster on the same grid with other bands.
  std::shared_ptr<Raster> like(at::Tensor bands, std::vector<std::string> names, std::string units) const;
};

using RasterPtr = std::shared_ptr<const Raster>;

/// Reads a GeoTIFF (any band count, 8 to 64-bit integer or float samples,
/// strips or tiles, contiguous or planar) with libtiff and libgeotiff.
/// Band names come from GDAL's metadata when the file has them.
std::shared_ptr<Raster> read_geotiff(const std::filesystem::path& file);
/// Writes a raster as a float32 GeoTIFF (deflate), with its georeferencing,
/// band names (GDAL's metadata, which GDAL and QGIS show) and no-data value.
void write_geotiff(const Raster& raster, const std::filesystem::path& file);

/// A Landsat MTL file: its KEY = VALUE pairs (quotes removed).
std::map<std::string, std::string> read_mtl(const std::filesystem::path& file);

/// The names of Landsat's bands by sensor: OLI (Landsat 8, 9) and ETM+/TM.
std::string landsat_band_role(const std::string& spacecraft, int band);

/// The vegetation and water indices VegetationIndex computes, in its order.
const std::vector<std::string>& index_names();
/// One index of a raster's bands as [H, W] float32; NaN where the formula
/// divides by zero. The bands it needs are named by role ("red", "nir", ...).
at::Tensor vegetation_index(const Raster& raster, const std::string& index);

/// [lo, hi] of `values` at two percentiles, NaN ignored.
std::pair<double, double> percentiles(const at::Tensor& values, double low, double high);

/// Colour maps for IndexColormap: name -> [N, 3] float32 control colours.
const std::vector<std::string>& colormap_names();
at::Tensor apply_colormap(const at::Tensor& values, const std::string& name, double lo, double hi);

void register_nodes(Registrar& r);

}  // namespace cozy::agriculture
