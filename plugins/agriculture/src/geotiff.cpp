// GeoTIFF in and out with libtiff, libgeotiff registering the GeoTIFF tags
// (XTIFFOpen) and this file registering GDAL's two (band names and no-data),
// so that the files Cozy writes read back the same in GDAL and QGIS.
#include "raster.hpp"

#include <tiffio.h>
#include <xtiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <sstream>

namespace cozy::agriculture {

namespace {

constexpr ttag_t kGdalMetadata = 42112;  // XML: band descriptions and other metadata
constexpr ttag_t kGdalNodata = 42113;    // ASCII: the no-data value

// libtiff reports through process-wide handlers: the last error of this
// thread is kept for the exception, warnings are dropped.
thread_local std::string last_tiff_error;
void on_error(const char* module, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof text, format, args);
  last_tiff_error = (module ? std::string(module) + ": " : std::string()) + text;
}
void on_warning(const char*, const char*, va_list) {}

TIFFExtendProc parent_extender = nullptr;
void extend(TIFF* tif) {
  static const TIFFFieldInfo fields[] = {
      {kGdalMetadata, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, const_cast<char*>("GDALMetadata")},
      {kGdalNodata, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, const_cast<char*>("GDALNoDataValue")},
  };
  TIFFMergeFieldInfo(tif, fields, sizeof fields / sizeof fields[0]);
  if (parent_extender) parent_extender(tif);
}

TIFF* open(const std::filesystem::path& file, const char* mode) {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(on_error);
    TIFFSetWarningHandler(on_warning);
    parent_extender = TIFFSetTagExtender(extend);
  });
  last_tiff_error.clear();
  return XTIFFOpen(file.c_str(), mode);
}

struct Closer {
  TIFF* tif;
  ~Closer() {
    if (tif) XTIFFClose(tif);
  }
};

template <class T>
std::vector<T> get_array(TIFF* tif, ttag_t tag) {
  const TIFFField* field = TIFFFindField(tif, tag, TIFF_ANY);
  if (!field) return {};
  T* data = nullptr;
  if (TIFFFieldReadCount(field) == TIFF_VARIABLE2) {
    uint32_t n = 0;
    if (TIFFGetField(tif, tag, &n, &data) && data) return std::vector<T>(data, data + n);
  } else {
    uint16_t n = 0;
    if (TIFFGetField(tif, tag, &n, &data) && data) return std::vector<T>(data, data + n);
  }
  return {};
}

std::string get_ascii(TIFF* tif, ttag_t tag) {
  char* text = nullptr;
  if (TIFFFindField(tif, tag, TIFF_ANY) && TIFFGetField(tif, tag, &text) && text) return text;
  return {};
}

template <class T>
void set_array(TIFF* tif, ttag_t tag, const std::vector<T>& values) {
  if (values.empty()) return;
  const TIFFField* field = TIFFFindField(tif, tag, TIFF_ANY);
  if (field && TIFFFieldWriteCount(field) == TIFF_VARIABLE2)
    TIFFSetField(tif, tag, static_cast<uint32_t>(values.size()), values.data());
  else
    TIFFSetField(tif, tag, static_cast<int>(values.size()), values.data());
}

// One sample of the file's type, as float.
float sample(const uint8_t* p, uint16_t format, uint16_t bits) {
  switch (format) {
    case SAMPLEFORMAT_IEEEFP:
      if (bits == 32) { float v; std::memcpy(&v, p, 4); return v; }
      { double v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
    case SAMPLEFORMAT_INT:
      if (bits == 8) return static_cast<float>(static_cast<int8_t>(*p));
      if (bits == 16) { int16_t v; std::memcpy(&v, p, 2); return v; }
      if (bits == 32) { int32_t v; std::memcpy(&v, p, 4); return static_cast<float>(v); }
      { int64_t v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
    default:
      if (bits == 8) return *p;
      if (bits == 16) { uint16_t v; std::memcpy(&v, p, 2); return v; }
      if (bits == 32) { uint32_t v; std::memcpy(&v, p, 4); return static_cast<float>(v); }
      { uint64_t v; std::memcpy(&v, p, 8); return static_cast<float>(v); }
  }
}

// GDAL's band descriptions in its metadata XML:
// <Item name="DESCRIPTION" sample="0" role="description">NDVI</Item>
std::vector<std::string> gdal_band_names(const std::string& xml, int64_t bands) {
  std::vector<std::string> names(static_cast<std::size_t>(bands));
  std::size_t at = 0;
  while ((at = xml.find("<Item", at)) != std::string::npos) {
    const std::size_t close = xml.find('>', at), end = xml.find("</Item>", at);
    if (close == std::string::npos || end == std::string::npos) break;
    const std::string head = xml.substr(at, close - at);
    const std::size_t sample_at = head.find("sample=\"");
    if (head.find("role=\"description\"") != std::string::npos && sample_at != std::string::npos) {
      const int64_t band = std::atoll(head.c_str() + sample_at + 8);
      if (band >= 0 && band < bands) names[static_cast<std::size_t>(band)] = xml.substr(close + 1, end - close - 1);
    }
    at = end;
  }
  return names;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

}  // namespace

int Georeference::key(uint16_t id) const {
  if (keys.size() < 4) return -1;
  const std::size_t count = keys[3];
  for (std::size_t i = 0; i < count && 4 + 4 * i + 3 < keys.size(); ++i) {
    const uint16_t* entry = &keys[4 + 4 * i];
    if (entry[0] == id && entry[1] == 0) return entry[3];
  }
  return -1;
}

int Georeference::epsg() const {
  for (uint16_t id : {uint16_t{3072}, uint16_t{2048}}) {  // ProjectedCSTypeGeoKey, GeographicTypeGeoKey
    const int code = key(id);
    if (code > 0 && code != 32767) return code;  // 32767: user-defined
  }
  return 0;
}

std::optional<std::array<double, 6>> Georeference::transform() const {
  std::array<double, 6> t{};
  if (matrix.size() >= 16) {
    t = {matrix[3], matrix[0], matrix[1], matrix[7], matrix[4], matrix[5]};
  } else if (tie_points.size() >= 6 && pixel_scale.size() >= 2) {
    t = {tie_points[3] - tie_points[0] * pixel_scale[0], pixel_scale[0], 0.0,
         tie_points[4] + tie_points[1] * pixel_scale[1], 0.0, -pixel_scale[1]};
  } else {
    return std::nullopt;
  }
  if (key(1025) == 2) {  // GTRasterTypeGeoKey: RasterPixelIsPoint
    t[0] -= 0.5 * t[1] + 0.5 * t[2];
    t[3] -= 0.5 * t[4] + 0.5 * t[5];
  }
  return t;
}

std::shared_ptr<Raster> read_geotiff(const std::filesystem::path& file) {
  const std::string where = "cannot read " + file.string() + ": ";
  if (!std::filesystem::is_regular_file(file)) throw Error(where + "no such file");
  TIFF* tif = open(file, "r");
  if (!tif) throw Error(where + (last_tiff_error.empty() ? "not a TIFF file" : last_tiff_error));
  Closer closer{tif};
  uint32_t width = 0, height = 0;
  uint16_t bands = 1, bits = 8, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &bands);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  if (width == 0 || height == 0 || bands == 0) throw Error(where + "an empty image");
  if (bits != 8 && bits != 16 && bits != 32 && bits != 64)
    throw Error(where + std::to_string(bits) + "-bit samples (8, 16, 32 or 64 are read)");
  if (format != SAMPLEFORMAT_UINT && format != SAMPLEFORMAT_INT && format != SAMPLEFORMAT_IEEEFP)
    throw Error(where + "complex or undefined samples (integers and floats are read)");
  if (format == SAMPLEFORMAT_IEEEFP && bits < 32) throw Error(where + std::to_string(bits) + "-bit floats");
  if (static_cast<uint64_t>(width) * height * bands > (uint64_t{1} << 31))
    throw Error(where + "more than 2^31 samples");

  auto raster = std::make_shared<Raster>();
  raster->bands = at::empty({bands, static_cast<int64_t>(height), static_cast<int64_t>(width)}, at::kFloat);
  float* out = raster->bands.data_ptr<float>();
  const std::size_t bytes = bits / 8;
  const bool contiguous = planar == PLANARCONFIG_CONTIG;
  const int64_t per_pixel = contiguous ? bands : 1;
  // A block (strip or tile) of `rows` x `cols` pixels at (row0, col0), of
  // one band (planar files) or all of them.
  auto place = [&](const std::vector<uint8_t>& block, uint32_t row0, uint32_t col0, uint32_t rows, uint32_t cols,
                   uint32_t block_width, uint16_t band) {
    for (uint32_t r = 0; r < rows && row0 + r < height; ++r)
      for (uint32_t c = 0; c < cols && col0 + c < width; ++c) {
        const uint8_t* p = block.data() + (static_cast<std::size_t>(r) * block_width + c) * per_pixel * bytes;
        const std::size_t pixel = static_cast<std::size_t>(row0 + r) * width + col0 + c;
        if (contiguous) {
          for (uint16_t b = 0; b < bands; ++b) out[b * static_cast<std::size_t>(height) * width + pixel] = sample(p + b * bytes, format, bits);
        } else {
          out[band * static_cast<std::size_t>(height) * width + pixel] = sample(p, format, bits);
        }
      }
  };
  const uint16_t planes = contiguous ? 1 : bands;
  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0) throw Error(where + "tiles of size 0");
    std::vector<uint8_t> block(static_cast<std::size_t>(TIFFTileSize(tif)));
    for (uint16_t s = 0; s < planes; ++s)
      for (uint32_t y = 0; y < height; y += th)
        for (uint32_t x = 0; x < width; x += tw) {
          if (TIFFReadTile(tif, block.data(), x, y, 0, s) < 0) throw Error(where + last_tiff_error);
          place(block, y, x, th, tw, tw, s);
        }
  } else {
    uint32_t rows_per_strip = height;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
    rows_per_strip = std::min(std::max<uint32_t>(rows_per_strip, 1), height);
    const uint32_t strips_per_plane = (height + rows_per_strip - 1) / rows_per_strip;
    std::vector<uint8_t> block(static_cast<std::size_t>(TIFFStripSize(tif)));
    for (uint16_t s = 0; s < planes; ++s)
      for (uint32_t k = 0; k < strips_per_plane; ++k) {
        if (TIFFReadEncodedStrip(tif, s * strips_per_plane + k, block.data(), static_cast<tmsize_t>(block.size())) < 0)
          throw Error(where + last_tiff_error);
        place(block, k * rows_per_strip, 0, rows_per_strip, width, width, s);
      }
  }

  Georeference& g = raster->georef;
  g.pixel_scale = get_array<double>(tif, TIFFTAG_GEOPIXELSCALE);
  g.tie_points = get_array<double>(tif, TIFFTAG_GEOTIEPOINTS);
  g.matrix = get_array<double>(tif, TIFFTAG_GEOTRANSMATRIX);
  g.keys = get_array<uint16_t>(tif, TIFFTAG_GEOKEYDIRECTORY);
  g.doubles = get_array<double>(tif, TIFFTAG_GEODOUBLEPARAMS);
  g.ascii = get_ascii(tif, TIFFTAG_GEOASCIIPARAMS);
  if (std::string nodata = get_ascii(tif, kGdalNodata); !nodata.empty()) {
    try {
      raster->nodata = std::stod(nodata);
    } catch (const std::exception&) {
    }
  }
  raster->names = gdal_band_names(get_ascii(tif, kGdalMetadata), bands);
  for (uint16_t b = 0; b < bands; ++b) {
    raster->sources.push_back(std::to_string(b + 1));
    if (raster->names[b].empty()) raster->names[b] = "band" + std::to_string(b + 1);
  }
  raster->units = format == SAMPLEFORMAT_IEEEFP ? "" : "DN";
  return raster;
}

void write_geotiff(const Raster& raster, const std::filesystem::path& file) {
  const at::Tensor bands = raster.bands.to(at::kCPU, at::kFloat).contiguous();
  const int64_t count = bands.size(0), height = bands.size(1), width = bands.size(2);
  TIFF* tif = open(file, "w");
  if (!tif) throw Error("cannot write " + file.string() + ": " + last_tiff_error);
  Closer closer{tif};
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(height));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(count));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t{32});
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, uint16_t{SAMPLEFORMAT_IEEEFP});
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, uint16_t{PLANARCONFIG_CONTIG});
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t{PHOTOMETRIC_MINISBLACK});
  TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t{COMPRESSION_ADOBE_DEFLATE});
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
  if (count > 1) {
    std::vector<uint16_t> extra(static_cast<std::size_t>(count - 1), EXTRASAMPLE_UNSPECIFIED);
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, static_cast<uint16_t>(extra.size()), extra.data());
  }
  const Georeference& g = raster.georef;
  set_array(tif, TIFFTAG_GEOPIXELSCALE, g.pixel_scale);
  set_array(tif, TIFFTAG_GEOTIEPOINTS, g.tie_points);
  set_array(tif, TIFFTAG_GEOTRANSMATRIX, g.matrix);
  set_array(tif, TIFFTAG_GEOKEYDIRECTORY, g.keys);
  set_array(tif, TIFFTAG_GEODOUBLEPARAMS, g.doubles);
  if (!g.ascii.empty()) TIFFSetField(tif, TIFFTAG_GEOASCIIPARAMS, g.ascii.c_str());
  std::ostringstream xml;
  xml << "<GDALMetadata>";
  for (int64_t b = 0; b < count && b < static_cast<int64_t>(raster.names.size()); ++b)
    xml << "<Item name=\"DESCRIPTION\" sample=\"" << b << "\" role=\"description\">" << xml_escape(raster.names[b])
        << "</Item>";
  if (!raster.units.empty()) xml << "<Item name=\"UNITS\">" << xml_escape(raster.units) << "</Item>";
  xml << "</GDALMetadata>";
  TIFFSetField(tif, kGdalMetadata, xml.str().c_str());
  if (raster.nodata) {
    std::ostringstream text;
    text.precision(17);
    text << *raster.nodata;
    TIFFSetField(tif, kGdalNodata, text.str().c_str());
  }
  std::vector<float> row(static_cast<std::size_t>(width * count));
  const float* data = bands.data_ptr<float>();
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x)
      for (int64_t b = 0; b < count; ++b) row[x * count + b] = data[(b * height + y) * width + x];
    if (TIFFWriteScanline(tif, row.data(), static_cast<uint32_t>(y), 0) < 0)
      throw Error("cannot write " + file.string() + ": " + last_tiff_error);
  }
}

}  // namespace cozy::agriculture
