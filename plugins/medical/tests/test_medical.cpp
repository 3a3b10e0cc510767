// The medical pack on real files (scripts/data.sh fetches pydicom's test
// files and octave-dicom's images from Debian's packages): every file loads
// or says why, with the values pydicom reads; DICOM's VOI functions at their
// defining points; files written then read back by GDCM and by pydicom; a
// series folder sorted along the slice normal; MONAI's intensity scaling.
#include "volume.hpp"

#include <cozy/testing.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

namespace cozy::medical {
namespace {

namespace fs = std::filesystem;
const fs::path kData = MEDICAL_DATA_DIR;
const fs::path kPydicom = kData / "pydicom";
const fs::path kOctave = kData / "octave";
const std::string kChecker = std::string(MEDICAL_SOURCE_DIR) + "/tests/check_with_pydicom.py";

#define SKIP_WITHOUT(file)                                                                                 \
  if (!fs::exists(file)) GTEST_SKIP() << (file).string() << " is missing: scripts/data.sh fetches it from " \
                                      << "Debian's python3-pydicom and octave-dicom"

std::pair<std::string, int> shell(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  std::string out;
  char buffer[4096];
  while (pipe && fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
  const int status = pclose(pipe.release());
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}
bool have_pydicom() { return shell("/usr/bin/python3 -c 'import pydicom, numpy'").second == 0; }

class Medical : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { plugin = new testing::Plugin(MEDICAL_PLUGIN); }
  static void TearDownTestSuite() { delete plugin; }
  void TearDown() override { fs::remove_all(ctx.root()); }
  Outputs run(const std::string& node, const std::map<std::string, Value>& inputs) {
    return testing::run_node(plugin->node(node), inputs, ctx);
  }
  static VolumePtr volume_of(const Value& v) { return std::dynamic_pointer_cast<const Volume>(v.as_object()); }
  VolumePtr load(const fs::path& path) { return volume_of(run("LoadDICOM", {{"path", path.string()}})[0]); }
  // Cozy's values as a float32 dump beside its shape and file, for the checker.
  static void dump(const Volume& volume, const fs::path& stem, const fs::path& file) {
    const at::Tensor v = volume.voxels.contiguous();
    std::ofstream(stem.string() + ".bin", std::ios::binary)
        .write(static_cast<const char*>(v.data_ptr()), static_cast<std::streamsize>(v.numel() * 4));
    std::ostringstream shape;
    for (int64_t d = 0; d < v.dim(); ++d) shape << (d ? "," : "") << v.size(d);
    std::ofstream(stem.string() + ".json") << "{\"shape\": [" << shape.str() << "], \"file\": \"" << file.string() << "\"}";
  }

  static testing::Plugin* plugin;
  testing::FakeContext ctx;
};
testing::Plugin* Medical::plugin = nullptr;

// pydicom's test files: JPEG baseline, extended and lossless, JPEG-LS,
// JPEG 2000, RLE, deflate, big endian, implicit VR, multi-frame, truncated
// and broken ones. Each loads, or fails with "cannot read FILE: reason"; none
// crashes; what loads equals what pydicom reads wherever pydicom can decode it.
TEST_F(Medical, EveryPydicomTestFileLoadsOrSaysWhy) {
  SKIP_WITHOUT(kPydicom / "CT_small.dcm");
  int loaded = 0, refused = 0;
  const fs::path dumps = ctx.root() / "dumps";
  fs::create_directories(dumps);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kPydicom)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::string refusals;
  for (const fs::path& file : files) {
    try {
      VolumePtr volume = load(file);
      ++loaded;
      dump(*volume, dumps / file.stem(), file);
    } catch (const Error& e) {
      ++refused;
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("cannot read " + file.string() + ": ", 0), 0u) << message;
      refusals += "  " + file.filename().string() + ": " + message.substr(message.find(": ") + 2) + "\n";
    }
  }
  std::printf("%d of %zu files loaded, %d refused:\n%s", loaded, files.size(), refused, refusals.c_str());
  EXPECT_GE(loaded, 40);  // 40 of the 68 as measured; the refused ones have no pixels, or are listed in the README
  // One of each transfer syntax the pack promises.
  for (const char* file : {"CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
                           "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "JPEG-lossy.dcm",
                           "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm",
                           "SC_rgb_rle_2frame.dcm"})
    EXPECT_EQ(refusals.find(std::string("  ") + file + ":"), std::string::npos) << file << " was refused";
  if (!have_pydicom()) GTEST_SKIP() << "needs /usr/bin/python3 with pydicom and numpy (python3-pydicom)";
  // J2K_pixelrep_mismatch.dcm says its pixels are unsigned where its JPEG 2000
  // stream holds signed ones: pydicom follows the stream, GDCM the header.
  fs::remove(dumps / "J2K_pixelrep_mismatch.json");
  auto [report, code] = shell("/usr/bin/python3 " + kChecker + " pixels " + dumps.string() + " 2>/dev/null");
  std::printf("%s", report.c_str());
  EXPECT_EQ(code, 0) << report;
  EXPECT_NE(report.find("CT_small.dcm: equal"), std::string::npos) << report;
}

// octave-dicom's CT ankle (rescale and window in the file) and its 10-frame
// RLE palette-colour ultrasound.
TEST_F(Medical, ACtInHounsfieldUnitsAndAPaletteUltrasound) {
  SKIP_WITHOUT(kOctave / "CT-MONO2-16-ankle.dcm");
  VolumePtr ct = load(kOctave / "CT-MONO2-16-ankle.dcm");
  EXPECT_EQ(ct->modality, "CT");
  EXPECT_EQ(ct->units, "HU");
  EXPECT_EQ(ct->voxels.size(0), 1);
  EXPECT_EQ(ct->voxels.size(1), 1);
  EXPECT_FALSE(ct->windows.empty());
  VolumePtr us = load(kOctave / "US-PAL-8-10x-echo.dcm");
  EXPECT_EQ(us->voxels.size(0), 10);  // frames
  EXPECT_EQ(us->voxels.size(1), 3);   // palette colour made RGB
  if (have_pydicom()) {
    const fs::path dumps = ctx.root() / "dumps";
    fs::create_directories(dumps);
    dump(*ct, dumps / "ct", kOctave / "CT-MONO2-16-ankle.dcm");
    dump(*us, dumps / "us", kOctave / "US-PAL-8-10x-echo.dcm");
    auto [report, code] = shell("/usr/bin/python3 " + kChecker + " pixels " + dumps.string() + " 2>/dev/null");
    std::printf("%s", report.c_str());
    EXPECT_EQ(code, 0) << report;
    EXPECT_NE(report.find("US-PAL-8-10x-echo.dcm: equal"), std::string::npos) << report;
  }
  Outputs windowed = run("Windowing", {{"volume", Value(std::const_pointer_cast<Volume>(ct))}, {"window", "bone"}});
  const at::Tensor image = windowed[0].as_tensor();
  EXPECT_EQ(image.sizes(), ct->voxels.sizes());
  EXPECT_GE(image.min().item<float>(), 0.0f);
  EXPECT_LE(image.max().item<float>(), 1.0f);
}

// DICOM PS3.3 C.11.2.1.2 at its defining points (centre 40, width 400).
TEST(VoiLut, TheStandardsFunctionsAtTheirPoints) {
  const at::Tensor x = at::tensor({-160.5, -159.5, 39.5, 40.0, 239.5, 240.0, 1000.0}, at::kDouble);
  const at::Tensor linear = voi_lut(x, 40, 400, "LINEAR").to(at::kDouble);
  // x <= c - 0.5 - (w - 1) / 2 = -160: 0; x > c - 0.5 + (w - 1) / 2 = 239: 1.
  EXPECT_DOUBLE_EQ(linear[0].item<double>(), 0.0);
  EXPECT_NEAR(linear[1].item<double>(), ((-159.5 - 39.5) / 399 + 0.5), 1e-7);
  EXPECT_NEAR(linear[2].item<double>(), 0.5, 1e-7);
  EXPECT_DOUBLE_EQ(linear[4].item<double>(), 1.0);
  const at::Tensor exact = voi_lut(x, 40, 400, "LINEAR_EXACT").to(at::kDouble);
  EXPECT_NEAR(exact[3].item<double>(), 0.5, 1e-7);  // the centre
  EXPECT_DOUBLE_EQ(exact[5].item<double>(), 1.0);   // c + w / 2 is not above it: (240 - 40) / 400 + 0.5
  EXPECT_DOUBLE_EQ(exact[6].item<double>(), 1.0);
  const at::Tensor sigmoid = voi_lut(x, 40, 400, "SIGMOID").to(at::kDouble);
  EXPECT_NEAR(sigmoid[3].item<double>(), 0.5, 1e-7);
  EXPECT_NEAR(sigmoid[5].item<double>(), 1.0 / (1.0 + std::exp(-2.0)), 1e-7);  // -4 (x - c) / w = -2
  EXPECT_THROW(voi_lut(x, 40, 0.5, "LINEAR"), Error);
}

// Written by SaveDICOM, read back by this pack (every compression) and by
// pydicom: the same values, derived Secondary Capture, new UIDs, and the
// patient's identity gone when anonymized.
TEST_F(Medical, SavedFilesReadBackTheSameInGdcmAndPydicom) {
  SKIP_WITHOUT(kPydicom / "CT_small.dcm");
  VolumePtr ct = load(kPydicom / "CT_small.dcm");
  const Value volume(std::const_pointer_cast<Volume>(ct));
  for (const char* compression : {"none", "rle", "jpeg-lossless", "jpeg-ls", "jpeg2000"}) {
    const std::string prefix = std::string("saved/") + compression;
    run("SaveDICOM", {{"volume", volume}, {"filename_prefix", prefix}, {"compression", compression}});
    VolumePtr back = load(ctx.output_dir() / (prefix + "_00001.dcm"));
    EXPECT_TRUE(at::equal(back->voxels, ct->voxels)) << compression;
  }
  run("SaveDICOM", {{"volume", volume}, {"filename_prefix", "saved/anonymous"}, {"anonymize", true}});
  if (!have_pydicom()) GTEST_SKIP() << "needs /usr/bin/python3 with pydicom and numpy (python3-pydicom)";
  auto [plain_text, code] = shell("/usr/bin/python3 " + kChecker + " saved " + (ctx.output_dir() / "saved/none_00001.dcm").string());
  ASSERT_EQ(code, 0) << plain_text;
  auto [anon_text, anon_code] = shell("/usr/bin/python3 " + kChecker + " saved " + (ctx.output_dir() / "saved/anonymous_00001.dcm").string());
  ASSERT_EQ(anon_code, 0) << anon_text;
  std::printf("%s%s", plain_text.c_str(), anon_text.c_str());
  auto field = [](const std::string& json, const std::string& key) {
    const std::size_t at = json.find("\"" + key + "\": ");
    if (at == std::string::npos) return std::string();
    std::size_t start = at + key.size() + 4, end = json.find_first_of(",}", start);
    if (json[start] == '"') end = json.find('"', start + 1) + 1;
    if (json[start] == '[') end = json.find(']', start) + 1;
    return json.substr(start, end - start);
  };
  EXPECT_EQ(field(plain_text, "SOPClassUID"), "\"1.2.840.10008.5.1.4.1.1.2\"");  // CT Image Storage: a CT stays one
  EXPECT_EQ(field(plain_text, "ImageType"), "[\"DERIVED\", \"SECONDARY\"]");
  EXPECT_EQ(std::stod(field(plain_text, "min")), ct->voxels.min().item<double>());
  EXPECT_EQ(std::stod(field(plain_text, "max")), ct->voxels.max().item<double>());
  EXPECT_EQ(std::stod(field(plain_text, "sum")), ct->voxels.to(at::kDouble).sum().item<double>());
  EXPECT_NE(field(plain_text, "PatientName"), "\"Anonymous\"");
  EXPECT_EQ(field(anon_text, "PatientName"), "\"Anonymous\"");
  EXPECT_EQ(field(anon_text, "PatientBirthDate"), "\"\"");  // emptied (GDCM writes the type 2 element empty)
  EXPECT_EQ(field(anon_text, "PatientIdentityRemoved"), "\"YES\"");
  EXPECT_NE(field(anon_text, "StudyInstanceUID"), field(plain_text, "StudyInstanceUID"));
  EXPECT_NE(field(anon_text, "SOPInstanceUID"), field(plain_text, "SOPInstanceUID"));
}

// Slices written in one order and named in another come back sorted along
// the slice normal, with the spacing between them.
TEST_F(Medical, ASeriesFolderIsSortedAlongTheSliceNormal) {
  auto volume = std::make_shared<Volume>();
  volume->voxels = (at::arange(5, at::kFloat) * 100).view({5, 1, 1, 1}).expand({5, 1, 8, 6}).contiguous();
  volume->spacing = {0.5, 0.5, 2.5};
  volume->origin = {-10, -20, 30};
  volume->modality = "CT";
  volume->units = "HU";
  run("SaveDICOM", {{"volume", Value(volume)}, {"filename_prefix", "series/slice"}});
  // Names that sort the other way round.
  const fs::path folder = ctx.output_dir() / "series";
  for (int i = 1; i <= 5; ++i) {
    char from[32], to[32];
    std::snprintf(from, sizeof from, "slice_%05d.dcm", i);
    std::snprintf(to, sizeof to, "z%d.dcm", 6 - i);
    fs::rename(folder / from, folder / to);
  }
  VolumePtr back = load(folder);
  ASSERT_EQ(back->slices(), 5);
  for (int64_t s = 0; s < 5; ++s) EXPECT_EQ(back->voxels[s][0][0][0].item<float>(), 100.0f * s) << s;
  EXPECT_NEAR(back->spacing[2], 2.5, 1e-6);
  EXPECT_NEAR(back->origin[2], 30.0, 1e-6);
}

// MONAI's definitions, on values whose percentiles are known.
TEST_F(Medical, IntensityScalingAsMonaiDefinesIt) {
  auto volume = std::make_shared<Volume>();
  volume->voxels = at::arange(101, at::kFloat).view({1, 1, 1, 101});  // 0..100: the p-th percentile is p
  Outputs scaled = run("ScaleIntensityRange", {{"volume", Value(volume)}, {"a_min", 0.0}, {"a_max", 50.0}});
  EXPECT_FLOAT_EQ(volume_of(scaled[0])->voxels.max().item<float>(), 1.0f);  // clipped
  EXPECT_FLOAT_EQ(volume_of(scaled[0])->voxels[0][0][0][25].item<float>(), 0.5f);
  Outputs pct = run("ScaleIntensityRangePercentiles", {{"volume", Value(volume)}, {"lower", 10.0}, {"upper", 90.0}});
  EXPECT_FLOAT_EQ(volume_of(pct[0])->voxels[0][0][0][50].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(volume_of(pct[0])->voxels[0][0][0][10].item<float>(), 0.0f);
  Outputs relative = run("ScaleIntensityRangePercentiles",
                         {{"volume", Value(volume)}, {"lower", 10.0}, {"upper", 90.0}, {"relative", true}});
  // b_min, b_max become 0.1 and 0.9: 10 -> 0.1, 90 -> 0.9.
  EXPECT_NEAR(volume_of(relative[0])->voxels[0][0][0][90].item<float>(), 0.9f, 1e-6);
  EXPECT_NEAR(volume_of(relative[0])->voxels[0][0][0][10].item<float>(), 0.1f, 1e-6);
}

TEST_F(Medical, ThePhantomAndMistakes) {
  Outputs phantom = run("SheppLoganPhantom", {{"size", 128}, {"hounsfield", true}});
  VolumePtr p = volume_of(phantom[0]);
  EXPECT_EQ(p->voxels.sizes(), (std::vector<int64_t>{1, 1, 128, 128}));
  EXPECT_FLOAT_EQ(p->voxels[0][0][0][0].item<float>(), -1000.0f);  // air
  EXPECT_NEAR(p->voxels[0][0][64][64].item<float>(), 1000 * 0.2 - 1000, 1e-3);  // brain: 1 - 0.8
  std::ofstream(ctx.input_dir() / "not.dcm") << "not DICOM at all";
  try {
    run("LoadDICOM", {{"path", "not.dcm"}});
    ADD_FAILURE() << "a text file loaded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read " + (ctx.input_dir() / "not.dcm").string() +
                                         ": not a DICOM image GDCM can read (no pixel data, or not DICOM)");
  }
}

// The pack's graph runs on the ankle CT with cozy.
TEST_F(Medical, TheGraphRuns) {
  SKIP_WITHOUT(kOctave / "CT-MONO2-16-ankle.dcm");
  const std::string cozy = MEDICAL_COZY;
  if (cozy.empty() || !fs::exists(cozy)) GTEST_SKIP() << "no cozy program was found to run the graph with";
  auto [log, code] = shell(cozy + " run " + std::string(MEDICAL_SOURCE_DIR) + "/graphs/windowed_ct.json --plugins " +
                           MEDICAL_PLUGIN_DIR + " --input-dir " + kData.parent_path().string() + " --output-dir " +
                           ctx.output_dir().string() + " --progress none --threads 1");
  ASSERT_EQ(code, 0) << log;
  for (const char* file : {"ankle_bone_00001.png", "ankle_file_window_00001.png", "ankle_00001.dcm",
                           "ankle_bone_capture_00001.dcm"})
    EXPECT_TRUE(fs::exists(ctx.output_dir() / "medical" / file)) << file;
  VolumePtr copy = load(ctx.output_dir() / "medical" / "ankle_00001.dcm");  // JPEG-LS, anonymized: still the HU
  VolumePtr source = load(kOctave / "CT-MONO2-16-ankle.dcm");
  EXPECT_TRUE(at::equal(copy->voxels, source->voxels));
}

}  // namespace
}  // namespace cozy::medical
