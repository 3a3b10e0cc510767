// The medical pack on real files (scripts/data.sh fetches pydicom's test
// files and octave-dicom's images from Debian's packages): every file loads
// or says why, with the values pydicom reads; DICOM's VOI functions at their
// defining points; files written then read back by GDCM and by pydicom; a
// series folder sorted along the slice normal; MONAI's intensity scaling.
#include "anomaly.hpp"
#include "volume.hpp"

#include <cozy/dataset.hpp>

#include <cozy/testing.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace cozy::medical {
namespace {

namespace fs = std::filesystem;
const fs::path kData = MEDICAL_DATA_DIR;
const fs::path kPydicom = kData / "pydicom";
const fs::path kOctave = kData / "octave";
const fs::path kNifti = kData / "nifti";
const std::string kChecker = std::string(MEDICAL_SOURCE_DIR) + "/tests/check_with_pydicom.py";
const std::string kNibabel = "/usr/bin/python3 " + std::string(MEDICAL_SOURCE_DIR) + "/tests/check_with_nibabel.py";

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
bool have_nibabel() { return shell("/usr/bin/python3 -c 'import nibabel, scipy.ndimage'").second == 0; }
#define SKIP_WITHOUT_NIBABEL() \
  if (!have_nibabel()) GTEST_SKIP() << "needs /usr/bin/python3 with nibabel and scipy (python3-nibabel, python3-scipy)"

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
  // As dump, with the frame and the geometry, for check_with_nibabel.py.
  static void dump_geometry(const Volume& volume, const fs::path& stem, const fs::path& file, int64_t frame = 0) {
    dump(volume, stem, file);
    std::ifstream in(stem.string() + ".json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ostringstream more;
    more.precision(17);
    const auto list = [&](const auto& values) {
      more << "[";
      for (std::size_t i = 0; i < values.size(); ++i) more << (i ? ", " : "") << values[i];
      more << "]";
    };
    more << ", \"frame\": " << frame << ", \"spacing\": ";
    list(volume.spacing);
    more << ", \"origin\": ";
    list(volume.origin);
    more << ", \"orientation\": ";
    list(volume.orientation);
    text.insert(text.size() - 1, more.str());
    std::ofstream(stem.string() + ".json") << text;
  }
  static Value held(const VolumePtr& volume) { return Value(std::const_pointer_cast<Volume>(volume)); }
  VolumePtr load_nifti(const fs::path& path, int64_t frame = 0) {
    return volume_of(run("LoadNIfTI", {{"path", path.string()}, {"frame", frame}})[0]);
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

#define SKIP_WITHOUT_NIFTI(file)                                                                          \
  if (!fs::exists(file)) GTEST_SKIP() << (file).string() << " is missing: scripts/data.sh fetches it from " \
                                      << "Debian's mricron-data"

// Colin27 (1 and 0.5 mm), its brain alone, a macaque template in float32,
// and files nibabel writes from a crop of Colin27 (gzip'd or not, big-endian
// with a scaling, NIfTI-2, a rotated left-handed qform, four frames): the
// voxels and their place in space as nibabel reads them.
TEST_F(Medical, NiftiFilesLoadAsNibabelReadsThem) {
  SKIP_WITHOUT_NIFTI(kNifti / "ch2.nii.gz");
  VolumePtr colin = load_nifti(kNifti / "ch2.nii.gz");
  EXPECT_EQ(colin->voxels.sizes(), (std::vector<int64_t>{181, 1, 217, 181}));
  EXPECT_EQ(colin->spacing, (std::array<double, 3>{1, 1, 1}));
  EXPECT_EQ(colin->modality, "MR");
  EXPECT_EQ(colin->orientation, (std::array<double, 6>{-1, 0, 0, 0, -1, 0}));  // RAS+ stored: LPS negates x and y
  EXPECT_EQ(colin->origin, (std::array<double, 3>{90, 125, -71}));
  SKIP_WITHOUT_NIBABEL();
  const fs::path dumps = ctx.root() / "dumps", made = ctx.root() / "made";
  fs::create_directories(dumps), fs::create_directories(made);
  auto [written, status] = shell(kNibabel + " variants " + (kNifti / "ch2.nii.gz").string() + " " + made.string());
  ASSERT_EQ(status, 0) << written;
  std::vector<std::pair<fs::path, int64_t>> files = {{kNifti / "ch2.nii.gz", 0}, {kNifti / "ch2bet.nii.gz", 0},
                                                     {kNifti / "ch2better.nii.gz", 0},
                                                     {kNifti / "inia19-t1-brain.nii.gz", 0}};
  for (const char* name : {"plain.nii", "gzip.nii.gz", "big_endian_scaled.nii", "nifti2.nii.gz", "qform_left_handed.nii.gz"})
    files.emplace_back(made / name, 0);
  files.emplace_back(made / "frames.nii.gz", 2);
  for (const auto& [file, frame] : files) {
    if (!fs::exists(file)) {
      ADD_FAILURE() << file << " is missing";
      continue;
    }
    const std::string stem = (dumps / file.filename()).string();
    dump_geometry(*load_nifti(file, frame), stem, file, frame);
    auto [report, code] = shell(kNibabel + " compare " + stem);
    std::printf("%s: %s", file.filename().c_str(), report.c_str());
    EXPECT_EQ(code, 0) << file << ": " << report;
  }
  // RGB24 (the pack's own small file): three channels, interleaved in the file.
  VolumePtr rgb = load_nifti(fs::path(MEDICAL_SOURCE_DIR) / "tests/data/nifti/rgb24.nii");
  ASSERT_EQ(rgb->voxels.sizes(), (std::vector<int64_t>{2, 3, 2, 3}));
  EXPECT_EQ(rgb->voxels[1][0][1][2].item<float>(), 2 * 4 + 1 * 2 + 1);  // R at (i, j, k) = (2, 1, 1): 4 i + 2 j + k
  EXPECT_EQ(rgb->voxels[1][1][1][2].item<float>(), 100);
  EXPECT_EQ(rgb->voxels[1][2][1][2].item<float>(), 2 * 11);
  // The left-handed file's slices come reversed (the volume's slices run
  // along row x column), its origin at what was the last one.
  VolumePtr left = load_nifti(made / "qform_left_handed.nii.gz");
  EXPECT_NEAR(left->spacing[2], 2.5, 1e-5);
  try {
    load_nifti(made / "frames.nii.gz", 3);
    ADD_FAILURE() << "a fourth frame of three loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it has 3 frame(s); frame 3 was asked for"), std::string::npos) << e.what();
  }
  {  // A NIfTI pair's header alone.
    std::string header(348, '\0');
    const int32_t size = 348;
    std::memcpy(header.data(), &size, 4);
    header.replace(344, 4, std::string("ni1\0", 4));
    std::ofstream(ctx.input_dir() / "pair.hdr", std::ios::binary) << header;
    try {
      load_nifti("pair.hdr");
      ADD_FAILURE() << "a .hdr loaded";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "cannot read " + (ctx.input_dir() / "pair.hdr").string() +
                                           ": a NIfTI pair (.hdr with .img) is not read: convert it to .nii");
    }
  }
  std::ofstream(ctx.input_dir() / "short.nii") << "too short";
  try {
    load_nifti("short.nii");
    ADD_FAILURE() << "nine bytes loaded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot read " + (ctx.input_dir() / "short.nii").string() + ": too short for a NIfTI header (9 bytes)");
  }
}

// Resampled to a coarser grid that falls on the old voxels, the voxels come
// through bit for bit; elsewhere the values are scipy's trilinear ones.
TEST_F(Medical, ResamplingKeepsTheGridAndInterpolatesAsScipy) {
  SKIP_WITHOUT_NIFTI(kNifti / "ch2better.nii.gz");
  VolumePtr fine = load_nifti(kNifti / "ch2better.nii.gz");  // 0.5 mm
  for (const char* mode : {"linear", "nearest"}) {
    VolumePtr coarse = volume_of(run("Resample", {{"volume", held(fine)}, {"x", 1.0}, {"y", 1.0}, {"z", 1.0}, {"mode", mode}})[0]);
    const at::Tensor every_other = fine->voxels.slice(0, 0, c10::nullopt, 2).slice(2, 0, c10::nullopt, 2).slice(3, 0, c10::nullopt, 2);
    EXPECT_TRUE(at::equal(coarse->voxels, every_other)) << mode;
    EXPECT_EQ(coarse->spacing, (std::array<double, 3>{1, 1, 1}));
    EXPECT_EQ(coarse->origin, fine->origin);
  }
  SKIP_WITHOUT_NIBABEL();
  VolumePtr colin = load_nifti(kNifti / "ch2.nii.gz");
  VolumePtr odd = volume_of(run("Resample", {{"volume", held(colin)}, {"x", 1.5}, {"y", 0.8}, {"z", 2.3}})[0]);
  EXPECT_EQ(odd->voxels.sizes(), (std::vector<int64_t>{79, 1, 271, 121}));  // floor((n - 1) x old / new) + 1
  const std::string stem = (ctx.root() / "resampled").string();
  dump(*odd, stem, kNifti / "ch2.nii.gz");
  auto [report, code] = shell(kNibabel + " resample " + stem + " 1.5 0.8 2.3");
  std::printf("%s", report.c_str());
  EXPECT_EQ(code, 0) << report;
}

// Colin27 is stored from the patient's right and front: turned to the
// patient's axes, columns run to the left and rows to the back, as a viewer
// shows an axial slice; VolumeSlices cuts it along each axis, leaving empty
// slices out.
TEST_F(Medical, SlicesComeOutAsAViewerShowsThem) {
  SKIP_WITHOUT_NIFTI(kNifti / "ch2bet.nii.gz");
  VolumePtr brain = load_nifti(kNifti / "ch2bet.nii.gz");
  auto turned = reoriented(*brain);
  EXPECT_EQ(turned->orientation, (std::array<double, 6>{1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(turned->origin, (std::array<double, 3>{-90, -91, -71}));  // was voxel (180, 216, 0)
  EXPECT_TRUE(at::equal(turned->voxels, brain->voxels.flip({2, 3})));
  EXPECT_EQ(reoriented(*turned)->voxels.data_ptr(), turned->voxels.data_ptr()) << "already turned: nothing to do";
  Outputs scaled = run("ScaleIntensityRange", {{"volume", held(brain)}, {"a_min", 0.0}, {"a_max", 133.0}});
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"axial", {1, 217, 181}}, {"coronal", {1, 181, 181}}, {"sagittal", {1, 181, 217}}};
  for (const auto& [axis, shape] : shapes) {
    Outputs all = run("VolumeSlices", {{"volume", scaled[0]}, {"axis", axis}, {"threshold", 0.0}, {"min_fraction", 0.0}});
    Outputs brainy = run("VolumeSlices", {{"volume", scaled[0]}, {"axis", axis}, {"threshold", 0.05}, {"min_fraction", 0.1}});
    const at::Tensor& images = all[1].as_tensor();
    EXPECT_EQ(images.sizes().slice(1), shape) << axis;
    EXPECT_EQ(all[2].as_int(), axis == "axial" ? 181 : axis == "coronal" ? 217 : 181) << axis;
    EXPECT_LT(brainy[2].as_int(), all[2].as_int()) << axis << ": the empty slices are left out";
    auto dataset = std::dynamic_pointer_cast<const Dataset>(brainy[0].as_object());
    ASSERT_TRUE(dataset) << axis;
    EXPECT_EQ(dataset->size(), brainy[2].as_int());
    EXPECT_EQ(dataset->image_shape(), shape);
  }
  // Superior up in a coronal slice: the top row is the highest slice.
  Outputs coronal = run("VolumeSlices", {{"volume", scaled[0]}, {"axis", "coronal"}, {"first", 100}, {"last", 100}});
  const at::Tensor top = coronal[1].as_tensor()[0][0][0];
  EXPECT_TRUE(at::equal(top, turned->voxels[180][0][100] / 133.0f)) << "row 0 is the last axial slice";
  try {
    run("VolumeSlices", {{"volume", scaled[0]}, {"first", 0}, {"last", 5}, {"threshold", 0.05}, {"min_fraction", 0.5}});
    ADD_FAILURE() << "the feet's empty slices were kept";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "every slice is empty (below min_fraction above threshold)");
  }
  Outputs small = run("VolumeSlices", {{"volume", scaled[0]}, {"first", 90}, {"last", 95}, {"step", 2}, {"size", 64}});
  EXPECT_EQ(small[1].as_tensor().sizes(), (std::vector<int64_t>{3, 1, 64, 64}));
  try {
    run("VolumeSlices", {{"volume", held(brain)}});
    ADD_FAILURE() << "values up to 133 were cut into images";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scale them to [0, 1] first"), std::string::npos) << e.what();
  }
}

// The metrics on cases worked by hand.
TEST(AnomalyMetrics, AurocDiceAndMasksOnHandWorkedCases) {
  const auto d = [](std::vector<double> v) { return at::tensor(v, at::kDouble); };
  const auto b = [](std::vector<int64_t> v) { return at::tensor(v, at::kLong) > 0; };
  // scikit-learn's example: 0.75.
  EXPECT_DOUBLE_EQ(auroc(d({0.1, 0.4, 0.35, 0.8}), b({0, 0, 1, 1})), 0.75);
  EXPECT_DOUBLE_EQ(auroc(d({0.5, 0.5, 0.5, 0.5}), b({0, 1, 0, 1})), 0.5);  // ties count half
  EXPECT_DOUBLE_EQ(auroc(d({0.9, 0.2, 0.1}), b({1, 0, 0})), 1.0);
  EXPECT_THROW(auroc(d({0.1, 0.2}), b({0, 0})), Error);
  // Predicting {0.9, 0.8}: 2 x 1 / (2 + 2) = 0.5; {0.9}: 2 / 3; {0.9, 0.8, 0.7}: 2 x 2 / 5 = 0.8.
  auto [dice, threshold] = best_dice(d({0.9, 0.8, 0.7, 0.1}), b({1, 0, 1, 0}));
  EXPECT_DOUBLE_EQ(dice, 0.8);
  EXPECT_DOUBLE_EQ(threshold, 0.7);
  // A ring with a hole: filled; the outside stays 0.
  at::Tensor ring = at::zeros({1, 1, 9, 9});
  ring.slice(2, 2, 7).slice(3, 2, 7).fill_(1);
  ring.slice(2, 4, 5).slice(3, 4, 5).fill_(0);
  const at::Tensor filled = fill_holes(ring);
  EXPECT_EQ(filled.sum().item<float>(), 25.0f);
  EXPECT_EQ(filled[0][0][0][0].item<float>(), 0.0f);
  // A blur keeps a constant image and the sum of a point away from the edges.
  EXPECT_TRUE(at::allclose(gaussian_blur(at::full({1, 1, 16, 16}, 0.25f), 1.5), at::full({1, 1, 16, 16}, 0.25f)));
  at::Tensor point = at::zeros({1, 1, 31, 31});
  point[0][0][15][15] = 1;
  EXPECT_NEAR(gaussian_blur(point, 2.0).sum().item<float>(), 1.0f, 1e-5);
}

// Lesions lie wholly inside the body, where the truth says, with the
// contrast added.
TEST_F(Medical, SyntheticLesionsLieInsideTheBody) {
  at::Tensor images = at::zeros({2, 1, 48, 48});
  images.slice(2, 8, 40).slice(3, 8, 40).fill_(0.5);  // a square "body"
  Outputs out = run("SyntheticLesions", {{"images", images}, {"count", 2}, {"radius", 3.0}, {"contrast", 0.3}, {"seed", 7}});
  const at::Tensor lesioned = out[0].as_tensor(), truth = out[1].as_tensor();
  EXPECT_EQ(truth.sizes(), (std::vector<int64_t>{2, 1, 48, 48}));
  for (int64_t i = 0; i < 2; ++i) {
    // Two discs of radius 3: 29 pixels each.
    EXPECT_EQ(truth[i].sum().item<float>(), 58.0f) << i;
    const at::Tensor inside = truth[i][0] > 0.5;
    EXPECT_TRUE(at::allclose(lesioned[i][0].masked_select(inside), at::full({58}, 0.8f))) << i;
    EXPECT_TRUE(at::equal(lesioned[i][0].masked_select(~inside), images[i][0].masked_select(~inside))) << i;
    EXPECT_EQ((images[i][0].masked_select(inside) == 0).sum().item<int64_t>(), 0) << "a lesion outside the body";
  }
  Outputs again = run("SyntheticLesions", {{"images", images}, {"count", 2}, {"radius", 3.0}, {"contrast", 0.3}, {"seed", 7}});
  EXPECT_TRUE(at::equal(again[1].as_tensor(), truth)) << "the same seed, the same places";
  try {
    run("SyntheticLesions", {{"images", images}, {"radius", 30.0}});
    ADD_FAILURE() << "a lesion of radius 30 fitted in a body of 32";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no room for lesion 1 of radius 30"), std::string::npos) << e.what();
  }
}

// The pack's anomaly graph on Colin27's brain: a VAE trained on every other
// axial slice, dark lesions in the slices between, found by the residual far
// better than by their darkness alone.
TEST_F(Medical, TheAnomalyGraphFindsTheLesions) {
  SKIP_WITHOUT_NIFTI(kNifti / "ch2bet.nii.gz");
  const std::string cozy = MEDICAL_COZY;
  if (cozy.empty() || !fs::exists(cozy)) GTEST_SKIP() << "no cozy program was found to run the graph with";
  auto [log, code] = shell(cozy + " run " + std::string(MEDICAL_SOURCE_DIR) + "/graphs/brain_anomaly.json --plugins " +
                           MEDICAL_PLUGIN_DIR + " --input-dir " + kData.parent_path().string() + " --output-dir " +
                           ctx.output_dir().string() + " --progress none --threads 1");
  ASSERT_EQ(code, 0) << log;
  std::ifstream in(ctx.output_dir() / "medical" / "brain_anomaly_00001.json");
  ASSERT_TRUE(in) << log;
  const std::string metrics((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::printf("%s\n", metrics.c_str());
  // The number under "key" in the report SaveMetrics filed under `report`.
  const auto value = [&](const std::string& report, const std::string& key) {
    const std::size_t from = metrics.find("\"" + report + "\": {");
    const std::string quoted = "\"" + key + "\": ";
    const std::size_t at = from == std::string::npos ? from : metrics.find(quoted, from + report.size() + 4);
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + quoted.size()));
  };
  // Dark discs of radius 3 px (10 mm), contrast -0.2: the target is 0.9.
  EXPECT_GE(value("auroc", "auroc"), 0.9);
  EXPECT_GT(value("auroc", "auroc"), value("darkness_auroc", "auroc") + 0.1) << "no better than darkness alone";
  EXPECT_GT(value("dice", "dice"), 0.5);
  EXPECT_TRUE(fs::exists(ctx.output_dir() / "medical" / "brain_anomaly_heatmap_00001.png"));
}

}  // namespace
}  // namespace cozy::medical
