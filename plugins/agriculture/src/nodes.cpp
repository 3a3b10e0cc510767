// The agriculture pack's nodes. See plugins/agriculture/README.md.
#include "raster.hpp"

#include <cozy/dataset.hpp>
#include <cozy/files.hpp>

#include <cmath>
#include <sstream>

namespace cozy::agriculture {

namespace {

const char* kCategory = "agriculture";

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const std::size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) items.push_back(item.substr(a, b - a + 1));
  }
  return items;
}

std::filesystem::path resolve(const std::string& value, const Context& ctx) {
  const std::filesystem::path file(value);
  return file.is_relative() ? ctx.input_dir() / file : file;
}

RasterPtr raster_input(const Inputs& in, const char* name = "raster") {
  auto raster = std::dynamic_pointer_cast<const Raster>(in[name].as_object());
  if (!raster) throw Error("input '" + std::string(name) + "' is not a RASTER");
  return raster;
}

// The one band a node works on: `band` by name, or the first.
at::Tensor one_band(const Raster& raster, const std::string& band, const std::string& why) {
  return band.empty() ? raster.bands[0] : raster.band(band, why);
}

// A Landsat scene from its MTL file: the bands it lists, beside it.
std::shared_ptr<Raster> load_landsat(const std::filesystem::path& mtl_file, const std::string& bands) {
  auto mtl = read_mtl(mtl_file);
  const std::string spacecraft = mtl["SPACECRAFT_ID"];
  const bool oli = spacecraft == "LANDSAT_8" || spacecraft == "LANDSAT_9";
  std::vector<std::string> wanted = split_list(bands);
  if (wanted.empty()) wanted = oli ? std::vector<std::string>{"2", "3", "4", "5", "6", "7"}
                                   : std::vector<std::string>{"1", "2", "3", "4", "5", "7"};
  auto raster = std::make_shared<Raster>();
  std::vector<at::Tensor> planes;
  for (const std::string& band : wanted) {
    const std::string key = "FILE_NAME_BAND_" + band;
    if (!mtl.count(key)) throw Error(mtl_file.string() + " lists no file for band " + band + " (" + key + ")");
    auto one = read_geotiff(mtl_file.parent_path() / mtl[key]);
    if (one->count() != 1) throw Error(mtl[key] + " has " + std::to_string(one->count()) + " bands, not 1");
    if (!planes.empty() && one->bands.sizes() != planes.front().unsqueeze(0).sizes())
      throw Error(mtl[key] + " is not the size of the scene's other bands");
    if (planes.empty()) raster->georef = one->georef;
    planes.push_back(one->bands[0]);
    int number = 0;
    try {
      number = std::stoi(band);
    } catch (const std::exception&) {
    }
    raster->names.push_back(landsat_band_role(spacecraft, number));
    raster->sources.push_back("B" + band);
  }
  raster->bands = at::stack(planes, 0);
  raster->units = "DN";
  raster->metadata = std::move(mtl);
  return raster;
}

NodeDef load_multispectral() {
  NodeDef d = NodeDef::named("LoadMultispectral", "Load Multispectral", kCategory,
                             "A multi-band GeoTIFF (any number of bands, integer or float) with its georeferencing, "
                             "or a Landsat scene from its MTL file (the bands it lists, with their calibration), as a "
                             "RASTER in the file's units.");
  d.spec.inputs = {
      InputSpec::String("path").files_in("input", {".tif", ".tiff", ".TIF", ".TIFF", "_MTL.txt"})
          .help("A GeoTIFF, or a Landsat *_MTL.txt with its band files beside it; relative to the input folder"),
      InputSpec::String("band_names", "")
          .help("Names for the bands in order, comma-separated (blue, green, red, nir, swir1, swir2, rededge name "
                "the roles the indices read); empty: the file's names, Landsat's roles, or band1, band2, ..."),
      InputSpec::String("bands", "").help("Landsat only: the band numbers to load (default: the reflective ones)")};
  d.spec.outputs = {{"RASTER", RASTER}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const std::filesystem::path file = resolve(in.string("path"), ctx);
    const std::string name = file.filename().string();
    const bool mtl = name.size() > 8 && name.compare(name.size() - 8, 8, "_MTL.txt") == 0;
    std::shared_ptr<Raster> raster = mtl ? load_landsat(file, in.string("bands")) : read_geotiff(file);
    const std::vector<std::string> names = split_list(in.string("band_names"));
    if (!names.empty()) {
      if (static_cast<int64_t>(names.size()) != raster->count())
        throw Error("band_names names " + std::to_string(names.size()) + " bands, but " + name + " has " +
                    std::to_string(raster->count()));
      raster->names = names;
    }
    ctx.log(LogLevel::info, name + ": " + std::to_string(raster->count()) + " bands of " +
                                std::to_string(raster->bands.size(2)) + " x " + std::to_string(raster->bands.size(1)) +
                                (raster->georef.epsg() ? ", EPSG:" + std::to_string(raster->georef.epsg()) : ""));
    return {Value(std::static_pointer_cast<Object>(raster))};
  };
  return d;
}

NodeDef reflectance() {
  NodeDef d = NodeDef::named("Reflectance", "Top-of-Atmosphere Reflectance", kCategory,
                             "Landsat digital numbers to top-of-atmosphere reflectance with the scene's MTL terms: "
                             "(M x DN + A) / sin(sun elevation); a DN of 0 (Landsat's fill) becomes no data (NaN).");
  d.spec.inputs = {InputSpec::Link("raster", RASTER)};
  d.spec.outputs = {{"RASTER", RASTER}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    RasterPtr raster = raster_input(in);
    if (!raster->metadata.count("SUN_ELEVATION"))
      throw Error("the raster has no Landsat calibration: load the scene from its _MTL.txt file");
    const double sun = std::stod(raster->metadata.at("SUN_ELEVATION")) * M_PI / 180.0;
    std::vector<at::Tensor> planes;
    for (int64_t b = 0; b < raster->count(); ++b) {
      const std::string number = raster->sources[b].substr(1);
      const std::string mult = "REFLECTANCE_MULT_BAND_" + number, add = "REFLECTANCE_ADD_BAND_" + number;
      if (!raster->metadata.count(mult) || !raster->metadata.count(add))
        throw Error("the MTL file has no " + mult + " and " + add + " for band " + raster->sources[b]);
      const at::Tensor dn = raster->bands[b].to(at::kDouble);
      at::Tensor rho = (std::stod(raster->metadata.at(mult)) * dn + std::stod(raster->metadata.at(add))) / std::sin(sun);
      planes.push_back(at::where(dn == 0, std::nan(""), rho).to(at::kFloat));
    }
    auto out = raster->like(at::stack(planes, 0), raster->names, "reflectance");
    out->sources = raster->sources;
    out->metadata = raster->metadata;
    out->nodata = std::nan("");
    return {Value(std::static_pointer_cast<Object>(out))};
  };
  return d;
}

NodeDef vegetation_index_node() {
  NodeDef d = NodeDef::named(
      "VegetationIndex", "Vegetation Index", kCategory,
      "A vegetation or water index of a RASTER's bands (NDVI, GNDVI, SAVI, MSAVI2, EVI, EVI2, NDWI, MNDWI, NDRE, ARVI, "
      "SR, as GRASS i.vi defines them), or of an IMAGE's colours alone (ExG, ExR, ExGR, CIVE, VARI, GLI, NGRDI, as "
      "PlantCV and the literature define them; an IMAGE is read as 0-255). NaN where a formula divides by zero.");
  d.spec.inputs = {InputSpec::Choice("index", index_names()), InputSpec::Link("raster", RASTER).optional(),
                   InputSpec::Link("image", types::IMAGE).optional()};
  d.spec.outputs = {{"RASTER", RASTER}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const std::string& index = in.string("index");
    if (in.has("raster") == in.has("image")) throw Error("give a raster or an image (one of them)");
    RasterPtr raster;
    if (in.has("raster")) {
      raster = raster_input(in);
    } else {
      const at::Tensor& image = in.image("image");
      if (image.size(0) != 1 || image.size(1) != 3)
        throw Error("the image must be one RGB image (ImageFromBatch picks one of a batch)");
      auto rgb = std::make_shared<Raster>();
      rgb->bands = (image[0].to(at::kCPU) * 255).contiguous();
      rgb->names = {"red", "green", "blue"};
      rgb->sources = {"1", "2", "3"};
      rgb->units = "DN";
      raster = rgb;
    }
    auto out = raster->like(vegetation_index(*raster, index).unsqueeze(0), {index}, "index");
    out->nodata = std::nan("");
    return {Value(std::static_pointer_cast<Object>(out))};
  };
  return d;
}

NodeDef index_colormap() {
  NodeDef d = NodeDef::named("IndexColormap", "Index Colormap", kCategory,
                             "One band of a RASTER (an index) as colours: minimum to maximum through the colour map; "
                             "no data is black.");
  d.spec.inputs = {InputSpec::Link("raster", RASTER), InputSpec::Choice("colormap", colormap_names()),
                   InputSpec::Float("minimum", -1.0).with_step(0.01), InputSpec::Float("maximum", 1.0).with_step(0.01),
                   InputSpec::String("band", "").help("the band to draw; empty: the first")};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    RasterPtr raster = raster_input(in);
    const at::Tensor values = one_band(*raster, in.string("band"), "IndexColormap");
    return {apply_colormap(values, in.string("colormap"), in.number("minimum"), in.number("maximum")).unsqueeze(0).to(ctx.device())};
  };
  return d;
}

NodeDef false_color() {
  NodeDef d = NodeDef::named("FalseColor", "False Color", kCategory,
                             "Three bands of a RASTER as red, green and blue, each stretched from its low to its high "
                             "percentile (no data black): nir, red, green is the classic vegetation-in-red composite.");
  d.spec.inputs = {InputSpec::Link("raster", RASTER), InputSpec::String("red", "nir"), InputSpec::String("green", "red"),
                   InputSpec::String("blue", "green"), InputSpec::Float("low_percent", 2.0).range(0, 100),
                   InputSpec::Float("high_percent", 98.0).range(0, 100)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    RasterPtr raster = raster_input(in);
    std::vector<at::Tensor> channels;
    for (const char* role : {"red", "green", "blue"}) {
      const at::Tensor band = raster->band(in.string(role), "FalseColor");
      auto [lo, hi] = percentiles(band, in.number("low_percent"), in.number("high_percent"));
      at::Tensor scaled = ((band - lo) / (hi > lo ? hi - lo : 1.0)).clamp(0, 1);
      channels.push_back(at::where(at::isnan(band), at::zeros_like(scaled), scaled));
    }
    return {at::stack(channels, 0).unsqueeze(0).to(at::kFloat).to(ctx.device())};
  };
  return d;
}

NodeDef vegetation_mask() {
  NodeDef d = NodeDef::named("VegetationMask", "Vegetation Mask", kCategory,
                             "1 where the index is above the threshold (no data is 0), and the cover fraction: the "
                             "share of the pixels with data that are above it.");
  d.spec.inputs = {InputSpec::Link("raster", RASTER), InputSpec::Float("threshold", 0.3).with_step(0.01),
                   InputSpec::String("band", "").help("the band to threshold; empty: the first")};
  d.spec.outputs = {{"MASK", types::MASK}, {"cover", types::FLOAT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    RasterPtr raster = raster_input(in);
    const at::Tensor values = one_band(*raster, in.string("band"), "VegetationMask");
    const at::Tensor valid = ~at::isnan(values);
    const at::Tensor above = (values > in.number("threshold")) & valid;
    const int64_t with_data = valid.sum().item<int64_t>();
    const double cover = with_data ? static_cast<double>(above.sum().item<int64_t>()) / static_cast<double>(with_data) : 0.0;
    std::ostringstream text;
    text << "cover " << cover << " (" << above.sum().item<int64_t>() << " of " << with_data << " pixels above "
         << in.number("threshold") << ")";
    ctx.show_text(text.str());
    return {above.to(at::kFloat).unsqueeze(0).unsqueeze(0).to(ctx.device()), cover};
  };
  return d;
}

NodeDef tile_patches() {
  NodeDef d = NodeDef::named("TilePatches", "Tile Patches", kCategory,
                             "A scene cut into size x size patches every `stride` pixels, of the named bands, each "
                             "stretched from its low to its high percentile over the scene: a DATASET for TrainGAN "
                             "and TrainVAE (patches with no data are left out).");
  d.spec.inputs = {InputSpec::Link("raster", RASTER), InputSpec::String("bands", "nir,red,green"),
                   InputSpec::Int("size", 32).range(4, 4096), InputSpec::Int("stride", 32).range(1, 4096),
                   InputSpec::Float("low_percent", 2.0).range(0, 100), InputSpec::Float("high_percent", 98.0).range(0, 100)};
  d.spec.outputs = {{"DATASET", types::DATASET}, {"count", types::INT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    RasterPtr raster = raster_input(in);
    std::vector<at::Tensor> planes;
    for (const std::string& name : split_list(in.string("bands"))) {
      const at::Tensor band = raster->band(name, "TilePatches");
      auto [lo, hi] = percentiles(band, in.number("low_percent"), in.number("high_percent"));
      planes.push_back(((band - lo) / (hi > lo ? hi - lo : 1.0)).clamp(0, 1).to(at::kFloat));
    }
    if (planes.empty()) throw Error("bands names no band");
    const at::Tensor scene = at::stack(planes, 0);
    const int64_t size = in.integer("size"), stride = in.integer("stride");
    const int64_t h = scene.size(1), w = scene.size(2);
    if (size > h || size > w)
      throw Error("patches of " + std::to_string(size) + " do not fit the scene's " + std::to_string(w) + " x " + std::to_string(h));
    std::vector<at::Tensor> patches;
    for (int64_t y = 0; y + size <= h; y += stride)
      for (int64_t x = 0; x + size <= w; x += stride) {
        at::Tensor patch = scene.narrow(1, y, size).narrow(2, x, size);
        if (!at::isnan(patch).any().item<bool>()) patches.push_back(patch);
      }
    if (patches.empty()) throw Error("every patch has no-data pixels");
    at::Tensor images = at::stack(patches, 0).contiguous();
    ctx.log(LogLevel::info, std::to_string(images.size(0)) + " patches of " + std::to_string(size) + " x " + std::to_string(size));
    const int64_t count = images.size(0);
    return {Value(std::make_shared<ImageDataset>(std::move(images), std::to_string(count) + " patches of " + in.string("bands"),
                                                std::vector<std::string>{"patch"})),
            count};
  };
  return d;
}

NodeDef save_geotiff() {
  NodeDef d = NodeDef::named("SaveGeoTIFF", "Save GeoTIFF", kCategory,
                             "Writes the RASTER as a float32 GeoTIFF, <prefix>_<counter>.tif in the output folder, "
                             "with the scene's georeferencing, band names and no-data value.");
  d.spec.inputs = {InputSpec::Link("raster", RASTER), InputSpec::String("filename_prefix", "cozy_geotiff")};
  d.spec.output_node = true;
  d.spec.pure = false;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    RasterPtr raster = raster_input(in);
    const std::filesystem::path prefix = path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    std::filesystem::create_directories(prefix.parent_path());
    const auto file = write_numbered_file(prefix.parent_path(), prefix.filename().string(), ".tif",
                                          [&](const std::filesystem::path& temp) { write_geotiff(*raster, temp); });
    ctx.add_file(file, "output");
    return {};
  };
  return d;
}

}  // namespace

void register_nodes(Registrar& r) {
  r.add(load_multispectral());
  r.add(reflectance());
  r.add(vegetation_index_node());
  r.add(index_colormap());
  r.add(false_color());
  r.add(vegetation_mask());
  r.add(tile_patches());
  r.add(save_geotiff());
}

}  // namespace cozy::agriculture

COZY_PLUGIN("agriculture", "0.1.0", cozy::agriculture::register_nodes)
