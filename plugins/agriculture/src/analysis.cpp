// Bands by name, Landsat's calibration file, the indices, percentiles and
// colour maps.
#include "raster.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>

namespace cozy::agriculture {

namespace {

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string trim(const std::string& text) {
  const std::size_t a = text.find_first_not_of(" \t\r\n\""), b = text.find_last_not_of(" \t\r\n\"");
  return a == std::string::npos ? std::string() : text.substr(a, b - a + 1);
}

}  // namespace

int64_t Raster::find(const std::string& name) const {
  const std::string wanted = lower(name);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (lower(names[i]) == wanted) return static_cast<int64_t>(i);
  return -1;
}

at::Tensor Raster::band(const std::string& name, const std::string& why) const {
  const int64_t i = find(name);
  if (i < 0) {
    std::string there;
    for (const auto& n : names) there += (there.empty() ? "" : ", ") + n;
    throw Error(why + " needs a band named '" + name + "'; the raster has " + there +
                " (LoadMultispectral's band_names names them)");
  }
  return bands[i];
}

std::shared_ptr<Raster> Raster::like(at::Tensor new_bands, std::vector<std::string> new_names, std::string new_units) const {
  auto out = std::make_shared<Raster>();
  out->bands = std::move(new_bands);
  out->names = std::move(new_names);
  out->units = std::move(new_units);
  out->georef = georef;
  for (std::size_t i = 0; i < out->names.size(); ++i) out->sources.push_back(std::to_string(i + 1));
  return out;
}

std::map<std::string, std::string> read_mtl(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error("cannot read " + file.string() + ": no such file");
  std::map<std::string, std::string> values;
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq));
    if (key == "GROUP" || key == "END_GROUP") continue;
    values[key] = trim(line.substr(eq + 1));
  }
  if (!values.count("SPACECRAFT_ID"))
    throw Error("cannot read " + file.string() + ": not a Landsat MTL file (no SPACECRAFT_ID)");
  return values;
}

std::string landsat_band_role(const std::string& spacecraft, int band) {
  static const char* oli[] = {"", "coastal", "blue", "green", "red", "nir", "swir1", "swir2", "pan", "cirrus", "tirs1", "tirs2"};
  static const char* etm[] = {"", "blue", "green", "red", "nir", "swir1", "thermal", "swir2", "pan"};
  const bool is_oli = spacecraft == "LANDSAT_8" || spacecraft == "LANDSAT_9";
  if (is_oli && band >= 1 && band <= 11) return oli[band];
  if (!is_oli && band >= 1 && band <= 8) return etm[band];
  return "B" + std::to_string(band);
}

const std::vector<std::string>& index_names() {
  static const std::vector<std::string> names = {"NDVI", "GNDVI", "SAVI", "MSAVI2", "EVI", "EVI2", "NDWI",
                                                 "MNDWI", "NDRE", "ARVI", "SR", "ExG", "ExR", "ExGR",
                                                 "CIVE", "VARI", "GLI", "NGRDI"};
  return names;
}

at::Tensor vegetation_index(const Raster& raster, const std::string& index) {
  const std::string why = "the index " + index;
  // In double, stored as float: the formulas as written, to float precision.
  auto b = [&](const char* role) { return raster.band(role, why).to(at::kDouble); };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto ratio = [&](const at::Tensor& num, const at::Tensor& den) { return at::where(den == 0, nan, num / den); };
  at::Tensor out;
  if (index == "NDVI") out = ratio(b("nir") - b("red"), b("nir") + b("red"));
  else if (index == "GNDVI") out = ratio(b("nir") - b("green"), b("nir") + b("green"));
  else if (index == "SAVI") out = ratio(1.5 * (b("nir") - b("red")), b("nir") + b("red") + 0.5);
  else if (index == "MSAVI2") {
    const at::Tensor n = b("nir"), r = b("red");
    out = (2 * n + 1 - at::sqrt((2 * n + 1) * (2 * n + 1) - 8 * (n - r))) / 2;
  } else if (index == "EVI") out = ratio(2.5 * (b("nir") - b("red")), b("nir") + 6 * b("red") - 7.5 * b("blue") + 1);
  else if (index == "EVI2") out = ratio(2.5 * (b("nir") - b("red")), b("nir") + 2.4 * b("red") + 1);
  else if (index == "NDWI") out = ratio(b("green") - b("nir"), b("green") + b("nir"));
  else if (index == "MNDWI") out = ratio(b("green") - b("swir1"), b("green") + b("swir1"));
  else if (index == "NDRE") out = ratio(b("nir") - b("rededge"), b("nir") + b("rededge"));
  else if (index == "ARVI") {
    const at::Tensor rb = 2 * b("red") - b("blue");
    out = ratio(b("nir") - rb, b("nir") + rb);
  } else if (index == "SR") out = ratio(b("nir"), b("red"));
  else {
    const at::Tensor R = b("red"), G = b("green"), B = b("blue");
    const at::Tensor total = R + G + B;
    const at::Tensor r = ratio(R, total), g = ratio(G, total), bl = ratio(B, total);  // chromatic coordinates
    if (index == "ExG") out = 2 * g - r - bl;
    else if (index == "ExR") out = 1.4 * r - g;
    else if (index == "ExGR") out = (2 * g - r - bl) - (1.4 * r - g);
    else if (index == "CIVE") out = 0.441 * R - 0.811 * G + 0.385 * B + 18.78745;
    else if (index == "VARI") out = ratio(G - R, G + R - B);
    else if (index == "GLI") out = ratio(2 * G - R - B, 2 * G + R + B);
    else if (index == "NGRDI") out = ratio(G - R, G + R);
    else throw Error("unknown index " + index);
  }
  return out.to(at::kFloat);
}

std::pair<double, double> percentiles(const at::Tensor& values, double low, double high) {
  at::Tensor flat = values.flatten().to(at::kDouble);
  flat = flat.masked_select(~at::isnan(flat));
  if (flat.numel() == 0) return {0.0, 1.0};
  const at::Tensor sorted = std::get<0>(flat.sort());
  const double* v = sorted.data_ptr<double>();
  const int64_t n = sorted.numel();
  auto at_percent = [&](double p) {  // numpy's linear interpolation
    const double position = p / 100.0 * static_cast<double>(n - 1);
    const int64_t i = static_cast<int64_t>(std::floor(position));
    const double f = position - static_cast<double>(i);
    return i + 1 < n ? v[i] + f * (v[i + 1] - v[i]) : v[n - 1];
  };
  return {at_percent(low), at_percent(high)};
}

const std::vector<std::string>& colormap_names() {
  static const std::vector<std::string> names = {"RdYlGn", "viridis", "gray"};
  return names;
}

at::Tensor apply_colormap(const at::Tensor& values, const std::string& name, double lo, double hi) {
  // Control colours, evenly spaced: ColorBrewer's RdYlGn (11 classes) and
  // matplotlib's viridis at nine points.
  static const std::vector<std::array<float, 3>> rdylgn = {
      {165, 0, 38},    {215, 48, 39},   {244, 109, 67},  {253, 174, 97}, {254, 224, 139}, {255, 255, 191},
      {217, 239, 139}, {166, 217, 106}, {102, 189, 99},  {26, 152, 80},  {0, 104, 55}};
  static const std::vector<std::array<float, 3>> viridis = {
      {68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
      {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};
  static const std::vector<std::array<float, 3>> gray = {{0, 0, 0}, {255, 255, 255}};
  const auto& stops = name == "RdYlGn" ? rdylgn : name == "viridis" ? viridis : gray;
  at::Tensor table = at::empty({static_cast<int64_t>(stops.size()), 3}, at::kFloat);
  for (std::size_t i = 0; i < stops.size(); ++i)
    for (int c = 0; c < 3; ++c) table[static_cast<int64_t>(i)][c] = stops[i][c] / 255.0f;
  const double span = hi > lo ? hi - lo : 1.0;
  at::Tensor t = ((values.to(at::kFloat) - lo) / span).clamp(0, 1);
  const at::Tensor valid = ~at::isnan(values);
  t = at::where(valid, t, at::zeros_like(t));
  const int64_t last = table.size(0) - 1;
  at::Tensor position = t * static_cast<float>(last);
  at::Tensor i0 = position.floor().clamp(0, last).to(at::kLong);
  at::Tensor i1 = (i0 + 1).clamp_max(last);
  at::Tensor f = (position - i0.to(at::kFloat)).unsqueeze(-1);
  at::Tensor rgb = table.index({i0}) * (1 - f) + table.index({i1}) * f;  // [H, W, 3]
  rgb = at::where(valid.unsqueeze(-1), rgb, at::zeros_like(rgb));
  return rgb.permute({2, 0, 1}).contiguous();
}

}  // namespace cozy::agriculture
