// The agriculture pack on real scenes (scripts/data.sh fetches them from
// Debian's r-cran-stars and r-cran-satellite): the Landsat-7 scene read as
// GDAL reads it, every index and the reflectance against numpy (the
// formulas written again in check_with_numpy.py, the files read by GDAL),
// GeoTIFFs written then read back by this pack and by gdalinfo, the other
// nodes on small rasters of known values, and the pack's graphs run by cozy.
#include "raster.hpp"

#include <cozy/testing.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

namespace cozy::agriculture {
namespace {

namespace fs = std::filesystem;
const fs::path kData = AGRICULTURE_DATA_DIR;
const fs::path kScene = kData / "L7_ETMs.tif";
const fs::path kMtl = kData / "LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt";
const char* kNames = "blue,green,red,nir,swir1,swir2";

#define SKIP_WITHOUT(file)                                                                                 \
  if (!fs::exists(file)) GTEST_SKIP() << (file).string() << " is missing: scripts/data.sh fetches it from " \
                                      << "Debian's r-cran-stars and r-cran-satellite"

// A command's standard output and exit status.
std::pair<std::string, int> shell(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  std::string out;
  char buffer[4096];
  while (pipe && fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
  const int status = pclose(pipe.release());
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

bool have(const std::string& program) { return shell("command -v " + program).second == 0; }
bool have_python_gdal() { return shell("/usr/bin/python3 -c 'import numpy; from osgeo import gdal'").second == 0; }

class Agriculture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { plugin = new testing::Plugin(AGRICULTURE_PLUGIN); }
  static void TearDownTestSuite() { delete plugin; }
  void TearDown() override { fs::remove_all(ctx.root()); }

  Outputs run(const std::string& node, const std::map<std::string, Value>& inputs) {
    return testing::run_node(plugin->node(node), inputs, ctx);
  }
  RasterPtr scene() {
    return std::dynamic_pointer_cast<const Raster>(
        run("LoadMultispectral", {{"path", kScene.string()}, {"band_names", kNames}})[0].as_object());
  }
  static RasterPtr raster_of(const Value& v) { return std::dynamic_pointer_cast<const Raster>(v.as_object()); }

  static testing::Plugin* plugin;
  testing::FakeContext ctx;
};
testing::Plugin* Agriculture::plugin = nullptr;

// What gdalinfo says of the scene: 349 x 352, 6 bytes a pixel, SIRGAS 2000 /
// UTM zone 25S (EPSG:31985), origin (288776.25, 9120760.75), 28.5 m pixels.
TEST_F(Agriculture, ReadsTheLandsat7SceneAsGdalDoes) {
  SKIP_WITHOUT(kScene);
  RasterPtr raster = scene();
  ASSERT_TRUE(raster);
  EXPECT_EQ(raster->bands.sizes(), (std::vector<int64_t>{6, 352, 349}));
  EXPECT_EQ(raster->names, (std::vector<std::string>{"blue", "green", "red", "nir", "swir1", "swir2"}));
  EXPECT_EQ(raster->georef.epsg(), 31985);
  const auto t = raster->georef.transform();
  ASSERT_TRUE(t);
  EXPECT_NEAR((*t)[0], 288776.250000803149305, 1e-6);
  EXPECT_NEAR((*t)[3], 9120760.750028736889362, 1e-6);
  EXPECT_NEAR((*t)[1], 28.499999999274539, 1e-9);
  EXPECT_NEAR((*t)[5], -28.499999999274539, 1e-9);
  EXPECT_GE(raster->bands.min().item<float>(), 0.0f);  // DN, 8-bit
  EXPECT_LE(raster->bands.max().item<float>(), 255.0f);
  if (!have("gdallocationinfo")) return;
  // A few pixels, as GDAL reads them (column, row; bands 1 and 4).
  for (auto [x, y] : std::vector<std::pair<int, int>>{{0, 0}, {100, 200}, {348, 351}})
    for (int band : {1, 4}) {
      auto [out, code] = shell("gdallocationinfo -valonly -b " + std::to_string(band) + " " + kScene.string() + " " +
                               std::to_string(x) + " " + std::to_string(y));
      ASSERT_EQ(code, 0) << out;
      EXPECT_EQ(std::stof(out), raster->bands[band - 1][y][x].item<float>()) << x << "," << y << " band " << band;
    }
}

TEST_F(Agriculture, EveryIndexMatchesNumpyOnTheScene) {
  SKIP_WITHOUT(kScene);
  if (!have_python_gdal()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy and GDAL (python3-gdal)";
  RasterPtr raster = scene();
  auto renamed = std::make_shared<Raster>(*raster);
  renamed->names[4] = "rededge";  // Landsat has no red-edge band: NDRE's formula is checked on swir1
  for (const std::string& index : index_names()) {
    const RasterPtr source = index == "NDRE" ? RasterPtr(renamed) : raster;
    Outputs out = run("VegetationIndex", {{"index", index}, {"raster", Value(std::const_pointer_cast<Raster>(source))}});
    run("SaveGeoTIFF", {{"raster", out[0]}, {"filename_prefix", index}});
  }
  auto [report, code] = shell("/usr/bin/python3 " + std::string(AGRICULTURE_SOURCE_DIR) +
                              "/tests/check_with_numpy.py indices " + kScene.string() + " " + ctx.output_dir().string());
  EXPECT_EQ(code, 0) << report;
  EXPECT_NE(report.find("NDVI: max relative difference"), std::string::npos) << report;
  std::printf("%s", report.c_str());
}

TEST_F(Agriculture, ReflectanceMatchesNumpyOnTheLandsat8Bands) {
  SKIP_WITHOUT(kMtl);
  Outputs loaded = run("LoadMultispectral", {{"path", kMtl.string()}});
  RasterPtr dn = raster_of(loaded[0]);
  EXPECT_EQ(dn->names, (std::vector<std::string>{"blue", "green", "red", "nir", "swir1", "swir2"}));
  EXPECT_EQ(dn->sources, (std::vector<std::string>{"B2", "B3", "B4", "B5", "B6", "B7"}));
  EXPECT_EQ(dn->bands.sizes(), (std::vector<int64_t>{6, 41, 41}));
  EXPECT_EQ(dn->georef.epsg(), 32632);
  Outputs rho = run("Reflectance", {{"raster", loaded[0]}});
  EXPECT_EQ(raster_of(rho[0])->units, "reflectance");
  run("SaveGeoTIFF", {{"raster", rho[0]}, {"filename_prefix", "reflectance"}});
  if (!have_python_gdal()) GTEST_SKIP() << "needs /usr/bin/python3 with numpy and GDAL (python3-gdal)";
  auto [report, code] = shell("/usr/bin/python3 " + std::string(AGRICULTURE_SOURCE_DIR) +
                              "/tests/check_with_numpy.py reflectance " + kMtl.string() + " " +
                              (ctx.output_dir() / "reflectance_00001.tif").string());
  EXPECT_EQ(code, 0) << report;
  std::printf("%s", report.c_str());
}

// Written, then read back by this pack and by gdalinfo: the same bands,
// names, coordinate system and geotransform.
TEST_F(Agriculture, AGeoTIFFWrittenKeepsBandsAndGeoreferencing) {
  SKIP_WITHOUT(kScene);
  RasterPtr raster = scene();
  run("SaveGeoTIFF", {{"raster", Value(std::const_pointer_cast<Raster>(raster))}, {"filename_prefix", "scene/copy"}});
  const fs::path file = ctx.output_dir() / "scene" / "copy_00001.tif";
  ASSERT_TRUE(fs::exists(file));
  auto back = read_geotiff(file);
  EXPECT_TRUE(at::equal(back->bands, raster->bands));
  EXPECT_EQ(back->names, raster->names);
  EXPECT_EQ(back->georef.epsg(), 31985);
  EXPECT_EQ(*back->georef.transform(), *raster->georef.transform());
  if (!have("gdalinfo")) return;
  auto [json_text, code] = shell("gdalinfo -json " + file.string());
  ASSERT_EQ(code, 0) << json_text;
  auto info = nlohmann::json::parse(json_text);
  auto [source_text, source_code] = shell("gdalinfo -json " + kScene.string());
  auto source = nlohmann::json::parse(source_text);
  EXPECT_EQ(info["geoTransform"], source["geoTransform"]);
  EXPECT_NE(info["coordinateSystem"]["wkt"].get<std::string>().find("\"EPSG\",31985"), std::string::npos);
  ASSERT_EQ(info["bands"].size(), 6u);
  EXPECT_EQ(info["bands"][3]["description"], "nir");
  EXPECT_EQ(info["bands"][3]["type"], "Float32");
}

// A raster of known values: the mask, the cover fraction, no data, the
// colour map's ends, the stretch and the patches.
TEST_F(Agriculture, MaskCoverColoursAndPatchesOnKnownValues) {
  auto index = std::make_shared<Raster>();
  index->bands = at::tensor({0.1f, 0.5f, 0.9f, std::nanf(""), -1.0f, 1.0f}, at::kFloat).view({1, 2, 3});
  index->names = {"NDVI"};
  index->sources = {"1"};
  Outputs mask = run("VegetationMask", {{"raster", Value(index)}, {"threshold", 0.3}});
  EXPECT_TRUE(at::equal(mask[0].as_tensor(), at::tensor({0.f, 1.f, 1.f, 0.f, 0.f, 1.f}).view({1, 1, 2, 3})));
  EXPECT_DOUBLE_EQ(mask[1].as_float(), 3.0 / 5.0);  // 3 of the 5 pixels with data
  Outputs colours = run("IndexColormap", {{"raster", Value(index)}, {"colormap", "RdYlGn"}});
  const at::Tensor rgb = colours[0].as_tensor();  // [1, 3, 2, 3]
  EXPECT_TRUE(at::allclose(rgb[0].select(1, 1).select(1, 1), at::tensor({165.f, 0.f, 38.f}) / 255));  // -1
  EXPECT_TRUE(at::allclose(rgb[0].select(1, 1).select(1, 2), at::tensor({0.f, 104.f, 55.f}) / 255));  // +1
  EXPECT_TRUE(at::equal(rgb[0].select(1, 1).select(1, 0), at::zeros({3})));                            // no data

  auto bands = std::make_shared<Raster>();
  bands->bands = at::arange(3 * 64 * 48, at::kFloat).view({3, 64, 48});
  bands->names = {"green", "red", "nir"};
  bands->sources = {"1", "2", "3"};
  Outputs composite = run("FalseColor", {{"raster", Value(bands)}, {"low_percent", 0.0}, {"high_percent", 100.0}});
  const at::Tensor image = composite[0].as_tensor();
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{1, 3, 64, 48}));
  EXPECT_FLOAT_EQ(image.min().item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(image.max().item<float>(), 1.0f);
  EXPECT_TRUE(at::allclose(image[0][0], image[0][2]));  // each band stretched alike: the same ramp
  Outputs patches = run("TilePatches", {{"raster", Value(bands)}, {"size", 16}, {"stride", 8}});
  EXPECT_EQ(patches[1].as_int(), 7 * 5);  // (64 - 16) / 8 + 1 rows of (48 - 16) / 8 + 1
  auto dataset = patches[0].as<Dataset>();
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 16, 16}));
  auto [images, labels] = dataset->batch(at::tensor({0, 34}, at::kLong));
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_GE(images.min().item<float>(), 0.0f);
  EXPECT_LE(images.max().item<float>(), 1.0f);
}

// The colour indices of an RGB IMAGE are those of a raster of its 0-255 values.
TEST_F(Agriculture, ColourIndicesOfAnImageAreThoseOfItsLevels) {
  const at::Tensor levels = at::randint(0, 256, {3, 8, 9}, at::kLong).to(at::kFloat);
  auto raster = std::make_shared<Raster>();
  raster->bands = levels;
  raster->names = {"red", "green", "blue"};
  raster->sources = {"1", "2", "3"};
  for (const char* index : {"ExG", "ExR", "ExGR", "CIVE", "VARI", "GLI", "NGRDI"}) {
    const at::Tensor from_image =
        raster_of(run("VegetationIndex", {{"index", index}, {"image", (levels / 255).unsqueeze(0)}})[0])->bands;
    const at::Tensor from_raster = raster_of(run("VegetationIndex", {{"index", index}, {"raster", Value(raster)}})[0])->bands;
    EXPECT_TRUE(at::allclose(from_image, from_raster, 1e-4, 1e-4, /*equal_nan=*/true)) << index;
  }
}

TEST_F(Agriculture, MistakesAreNamed) {
  auto raster = std::make_shared<Raster>();
  raster->bands = at::zeros({2, 4, 4});
  raster->names = {"red", "green"};
  raster->sources = {"1", "2"};
  try {
    run("VegetationIndex", {{"index", "NDVI"}, {"raster", Value(raster)}});
    ADD_FAILURE() << "NDVI without a nir band";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "the index NDVI needs a band named 'nir'; the raster has red, green (LoadMultispectral's band_names "
              "names them)");
  }
  std::ofstream(ctx.input_dir() / "not.tif") << "hello";
  EXPECT_THROW(run("LoadMultispectral", {{"path", "not.tif"}}), Error);
  SKIP_WITHOUT(kScene);
  try {
    run("LoadMultispectral", {{"path", kScene.string()}, {"band_names", "red,nir"}});
    ADD_FAILURE() << "two names for six bands";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "band_names names 2 bands, but L7_ETMs.tif has 6");
  }
}

// The pack's graphs run on the scene with cozy.
TEST_F(Agriculture, TheGraphsRun) {
  SKIP_WITHOUT(kScene);
  const std::string cozy = AGRICULTURE_COZY;
  if (cozy.empty() || !fs::exists(cozy)) GTEST_SKIP() << "no cozy program was found to run the graphs with";
  const fs::path graphs = fs::path(AGRICULTURE_SOURCE_DIR) / "graphs";
  // The GAN trains 40 steps here, not the graph's 1,500: that it runs is the point.
  for (auto [graph, extra] : std::vector<std::pair<std::string, std::string>>{{"ndvi_cover.json", ""},
                                                                              {"patches_gan.json", " --set 3.steps=40"}}) {
    const fs::path out = ctx.output_dir() / graph;
    auto [log, code] = shell(cozy + " run " + (graphs / graph).string() + " --plugins " + AGRICULTURE_PLUGIN_DIR +
                             " --input-dir " + kData.parent_path().string() + " --output-dir " + out.string() +
                             " --progress none --threads 1" + extra);
    EXPECT_EQ(code, 0) << graph << ":\n" << log;
  }
  EXPECT_TRUE(fs::exists(ctx.output_dir() / "ndvi_cover.json" / "agriculture" / "ndvi_00001.png"));
  EXPECT_TRUE(fs::exists(ctx.output_dir() / "ndvi_cover.json" / "agriculture" / "ndvi_00001.tif"));
  EXPECT_TRUE(fs::exists(ctx.output_dir() / "patches_gan.json" / "agriculture" / "gan_samples_00001.png"));
}

}  // namespace
}  // namespace cozy::agriculture
