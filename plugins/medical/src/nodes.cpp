// The medical pack's nodes. See plugins/medical/README.md.
#include "anomaly.hpp"
#include "volume.hpp"

#include <cozy/dataset.hpp>

#include <cozy/files.hpp>

#include <cmath>
#include <map>

namespace cozy::medical {

namespace {

const char* kCategory = "medical";

VolumePtr volume_input(const Inputs& in, const char* name = "volume") {
  auto volume = std::dynamic_pointer_cast<const Volume>(in[name].as_object());
  if (!volume) throw Error("input '" + std::string(name) + "' is not a VOLUME");
  return volume;
}

Value as_value(std::shared_ptr<Volume> volume) { return Value(std::static_pointer_cast<Object>(std::move(volume))); }

NodeDef load_dicom() {
  NodeDef d = NodeDef::named("LoadDICOM", "Load DICOM", kCategory,
                             "A DICOM file (one image or many frames) or a folder of one series (its slices sorted "
                             "along the slice normal, as ITK and MONAI sort them), as a VOLUME in the file's units: "
                             "Hounsfield units for CT (rescale slope and intercept applied in float). Every transfer "
                             "syntax GDCM decodes (JPEG baseline, extended, lossless, JPEG-LS, JPEG 2000, RLE, "
                             "deflate, big endian); palette colour becomes RGB.");
  d.spec.inputs = {InputSpec::String("path").files_in("input", {".dcm", ".DCM", ".dicom"})
                       .help("A DICOM file, or a folder holding one series; relative to the input folder")};
  d.spec.outputs = {{"VOLUME", VOLUME}, {"slices", types::INT}};
  d.spec.pure = false;  // the files can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    std::filesystem::path path(in.string("path"));
    if (path.is_relative()) path = ctx.input_dir() / path;
    auto volume = read_dicom(path);
    ctx.log(LogLevel::info, path.filename().string() + ": " + std::to_string(volume->slices()) + " x " +
                                std::to_string(volume->voxels.size(2)) + " x " + std::to_string(volume->voxels.size(3)) +
                                (volume->modality.empty() ? "" : ", " + volume->modality));
    const int64_t slices = volume->slices();
    return {as_value(std::move(volume)), slices};
  };
  return d;
}

// Common CT windows (centre, width) in HU.
const std::map<std::string, std::pair<double, double>>& presets() {
  static const std::map<std::string, std::pair<double, double>> windows = {
      {"brain", {40, 80}}, {"subdural", {75, 215}}, {"bone", {400, 1800}}, {"lung", {-600, 1500}},
      {"abdomen", {50, 400}}, {"mediastinum", {50, 350}}};
  return windows;
}

NodeDef windowing() {
  NodeDef d = NodeDef::named(
      "Windowing", "Windowing (VOI LUT)", kCategory,
      "A VOLUME to an IMAGE batch (a slice an image) through DICOM's VOI LUT function (LINEAR, LINEAR_EXACT or "
      "SIGMOID, PS3.3 C.11.2.1.2) with the file's window, a preset (brain 40/80, subdural 75/215, bone 400/1800, "
      "lung -600/1500, abdomen 50/400, mediastinum 50/350 HU: centre/width), or the centre and width given. "
      "A MONOCHROME1 file comes out inverted, as it is shown. Without a window in the file: its whole range.");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME),
                   InputSpec::Choice("window", {"file", "brain", "subdural", "bone", "lung", "abdomen", "mediastinum", "custom"}),
                   InputSpec::Choice("function", {"LINEAR", "LINEAR_EXACT", "SIGMOID"}),
                   InputSpec::Float("center", 40.0).with_step(1).help("custom only"),
                   InputSpec::Float("width", 400.0).range(1e-6, 1e9).with_step(1).help("custom only")};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    VolumePtr volume = volume_input(in);
    const std::string& window = in.string("window");
    double center = in.number("center"), width = in.number("width");
    if (window == "file") {
      if (!volume->windows.empty()) {
        std::tie(center, width) = volume->windows.front();
      } else {
        const double lo = volume->voxels.min().item<double>(), hi = volume->voxels.max().item<double>();
        center = (lo + hi) / 2;
        width = std::max(hi - lo, 1.0);
      }
    } else if (window != "custom") {
      std::tie(center, width) = presets().at(window);
    }
    at::Tensor image = voi_lut(volume->voxels, center, width, in.string("function"));
    if (volume->monochrome1) image = 1.0f - image;
    return {image.contiguous().to(ctx.device())};
  };
  return d;
}

// (x - a_min) / (a_max - a_min) x (b_max - b_min) + b_min, clipped to
// [b_min, b_max] if asked; equal a's shift instead of dividing by zero (as
// MONAI does): a new VOLUME, in no unit.
Value scaled(const Volume& volume, double a_min, double a_max, double b_min, double b_max, bool clip) {
  at::Tensor x = volume.voxels.to(at::kDouble);
  x = a_max == a_min ? x - a_min + b_min : (x - a_min) / (a_max - a_min) * (b_max - b_min) + b_min;
  if (clip) x = x.clamp(std::min(b_min, b_max), std::max(b_min, b_max));
  auto out = std::make_shared<Volume>(volume);
  out->voxels = x.to(at::kFloat);
  out->units = "";
  out->windows.clear();
  return as_value(std::move(out));
}

NodeDef scale_intensity_range() {
  NodeDef d = NodeDef::named("ScaleIntensityRange", "Scale Intensity Range", kCategory,
                             "MONAI's ScaleIntensityRange: (x - a_min) / (a_max - a_min) x (b_max - b_min) + b_min, "
                             "clipped to [b_min, b_max] when clip is on.");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME), InputSpec::Float("a_min", -1000), InputSpec::Float("a_max", 1000),
                   InputSpec::Float("b_min", 0), InputSpec::Float("b_max", 1), InputSpec::Boolean("clip", true)};
  d.spec.outputs = {{"VOLUME", VOLUME}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    VolumePtr volume = volume_input(in);
    const double a_min = in.number("a_min"), a_max = in.number("a_max"), b_min = in.number("b_min"), b_max = in.number("b_max");
    if (a_max == a_min) throw Error("a_min and a_max are equal: no range to scale");
    return {scaled(*volume, a_min, a_max, b_min, b_max, in.boolean("clip"))};
  };
  return d;
}

NodeDef scale_intensity_percentiles() {
  NodeDef d = NodeDef::named("ScaleIntensityRangePercentiles", "Scale Intensity (Percentiles)", kCategory,
                             "MONAI's ScaleIntensityRangePercentiles: the lower and upper percentiles of the volume "
                             "(numpy's) to b_min and b_max; relative moves b_min and b_max to the percentiles' "
                             "place between them, as MONAI does.");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME), InputSpec::Float("lower", 1).range(0, 100),
                   InputSpec::Float("upper", 99).range(0, 100), InputSpec::Float("b_min", 0), InputSpec::Float("b_max", 1),
                   InputSpec::Boolean("clip", true), InputSpec::Boolean("relative", false)};
  d.spec.outputs = {{"VOLUME", VOLUME}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    VolumePtr volume = volume_input(in);
    const double lower = in.number("lower"), upper = in.number("upper");
    if (lower > upper) throw Error("lower is above upper");
    const double a_min = percentile(volume->voxels, lower), a_max = percentile(volume->voxels, upper);
    double b_min = in.number("b_min"), b_max = in.number("b_max");
    if (in.boolean("relative")) {
      const double span = b_max - b_min;
      b_min = span * (lower / 100.0) + in.number("b_min");
      b_max = span * (upper / 100.0) + in.number("b_min");
    }
    return {scaled(*volume, a_min, a_max, b_min, b_max, in.boolean("clip"))};
  };
  return d;
}

// The Shepp-Logan head phantom (Toft's modified intensities, as scikit-image
// and MATLAB's "Modified Shepp-Logan" draw it): ten ellipses in [-1, 1]^2.
NodeDef shepp_logan() {
  NodeDef d = NodeDef::named("SheppLoganPhantom", "Shepp-Logan Phantom", kCategory,
                             "The modified Shepp-Logan head phantom (Toft's intensities, values 0 to 1) as a one-slice "
                             "VOLUME of size x size, 1 mm pixels, optionally scaled to HU (x 1000 - 1000 shifts it "
                             "to -1000 for air, 0 for water-like skull interior).");
  d.spec.inputs = {InputSpec::Int("size", 256).range(16, 4096), InputSpec::Boolean("hounsfield", false)};
  d.spec.outputs = {{"VOLUME", VOLUME}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    struct Ellipse { double value, a, b, x0, y0, phi; };
    static const Ellipse ellipses[] = {
        {1.0, 0.69, 0.92, 0, 0, 0},        {-0.8, 0.6624, 0.874, 0, -0.0184, 0}, {-0.2, 0.11, 0.31, 0.22, 0, -18},
        {-0.2, 0.16, 0.41, -0.22, 0, 18},  {0.1, 0.21, 0.25, 0, 0.35, 0},        {0.1, 0.046, 0.046, 0, 0.1, 0},
        {0.1, 0.046, 0.046, 0, -0.1, 0},   {0.1, 0.046, 0.023, -0.08, -0.605, 0}, {0.1, 0.023, 0.023, 0, -0.606, 0},
        {0.1, 0.023, 0.046, 0.06, -0.605, 0}};
    const int64_t n = in.integer("size");
    at::Tensor coords = at::linspace(-1, 1, n, at::kDouble);
    at::Tensor y = coords.view({n, 1}).expand({n, n}).flip(0), x = coords.view({1, n}).expand({n, n});
    at::Tensor image = at::zeros({n, n}, at::kDouble);
    for (const Ellipse& e : ellipses) {
      const double phi = e.phi * M_PI / 180.0;
      at::Tensor xr = (x - e.x0) * std::cos(phi) + (y - e.y0) * std::sin(phi);
      at::Tensor yr = -(x - e.x0) * std::sin(phi) + (y - e.y0) * std::cos(phi);
      image = image + e.value * ((xr / e.a).pow(2) + (yr / e.b).pow(2) <= 1).to(at::kDouble);
    }
    auto volume = std::make_shared<Volume>();
    volume->voxels = (in.boolean("hounsfield") ? image * 1000 - 1000 : image).to(at::kFloat).view({1, 1, n, n});
    volume->units = in.boolean("hounsfield") ? "HU" : "";
    volume->modality = in.boolean("hounsfield") ? "CT" : "OT";
    return {as_value(std::move(volume))};
  };
  return d;
}

NodeDef save_dicom() {
  NodeDef d = NodeDef::named(
      "SaveDICOM", "Save DICOM", kCategory,
      "Each slice as a derived DICOM image (CT and MR stay CT and MR images, anything else is a Secondary "
      "Capture), <prefix>_<counter>.dcm in the output folder: 16-bit "
      "pixels with a rescale that keeps a VOLUME's values in their units (an IMAGE is written as 0-255), new series "
      "and instance UIDs, ImageType DERIVED\\SECONDARY, the patient and study copied or (anonymize) replaced and "
      "removed, compressed losslessly as chosen.");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME).optional(), InputSpec::Link("image", types::IMAGE).optional(),
                   InputSpec::String("filename_prefix", "cozy_dicom"),
                   InputSpec::Choice("compression", {"none", "rle", "jpeg-lossless", "jpeg-ls", "jpeg2000"}),
                   InputSpec::Boolean("anonymize", false)};
  d.spec.output_node = true;
  d.spec.pure = false;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    if (in.has("volume") == in.has("image")) throw Error("give a volume or an image (one of them)");
    std::shared_ptr<const Volume> volume;
    if (in.has("volume")) {
      volume = volume_input(in);
    } else {
      const at::Tensor& image = in.image("image");
      if (image.size(1) != 1) throw Error("SaveDICOM writes grey images; this one has 3 channels");
      auto made = std::make_shared<Volume>();
      made->voxels = (image.to(at::kCPU) * 255).round();
      made->modality = "OT";
      volume = made;
    }
    SaveOptions options;
    options.compression = in.string("compression");
    options.anonymize = in.boolean("anonymize");
    const std::string study = options.anonymize || !volume->tags.count("0020,000d") ? new_uid() : volume->tags.at("0020,000d");
    const std::string series = new_uid();
    const std::filesystem::path prefix = path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    std::filesystem::create_directories(prefix.parent_path());
    for (int64_t s = 0; s < volume->slices(); ++s) {
      ctx.check_cancelled();
      const auto file = write_numbered_file(prefix.parent_path(), prefix.filename().string(), ".dcm",
                                            [&](const std::filesystem::path& temp) {
                                              write_dicom_slice(*volume, s, temp, options, study, series);
                                            });
      ctx.add_file(file, "output");
    }
    return {};
  };
  return d;
}

NodeDef load_nifti() {
  NodeDef d = NodeDef::named("LoadNIfTI", "Load NIfTI", kCategory,
                             "A NIfTI-1 or NIfTI-2 file (.nii or .nii.gz) as a VOLUME: voxels in the file's units "
                             "(scl_slope and scl_inter applied), in the order the file stores them, their place from "
                             "the sform (else the qform) in patient space (DICOM's LPS, mm). One frame of a 4-D file.");
  d.spec.inputs = {InputSpec::String("path").files_in("input", {".nii", ".nii.gz"})
                       .help("a .nii or .nii.gz file; relative to the input folder"),
                   InputSpec::Int("frame", 0).range(0, 1 << 20).help("of a 4-D file (a time series)"),
                   InputSpec::Choice("modality", {"MR", "CT", "PT", "OT"}).help("NIfTI does not say; CT means HU")};
  d.spec.outputs = {{"VOLUME", VOLUME}, {"slices", types::INT}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    std::filesystem::path path(in.string("path"));
    if (path.is_relative()) path = ctx.input_dir() / path;
    auto volume = read_nifti(path, in.integer("frame"));
    volume->modality = in.string("modality");
    volume->units = volume->modality == "CT" ? "HU" : "";
    ctx.log(LogLevel::info, path.filename().string() + ": " + std::to_string(volume->voxels.size(3)) + " x " +
                                std::to_string(volume->voxels.size(2)) + " x " + std::to_string(volume->slices()) +
                                " voxels of " + std::to_string(volume->spacing[0]) + " x " +
                                std::to_string(volume->spacing[1]) + " x " + std::to_string(volume->spacing[2]) + " mm");
    const int64_t slices = volume->slices();
    return {as_value(std::move(volume)), slices};
  };
  return d;
}

NodeDef resample() {
  NodeDef d = NodeDef::named("Resample", "Resample to Spacing", kCategory,
                             "A VOLUME resampled to the given spacing in mm (0 keeps an axis): the first voxel stays, "
                             "new voxels every `spacing` mm up to the last old one, trilinear or nearest (for "
                             "labels). No smoothing before a coarser grid (as MONAI's Spacing).");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME), InputSpec::Float("x", 1.0).range(0, 1000).with_step(0.1).help("mm between columns; 0 keeps it"),
                   InputSpec::Float("y", 1.0).range(0, 1000).with_step(0.1).help("mm between rows; 0 keeps it"),
                   InputSpec::Float("z", 1.0).range(0, 1000).with_step(0.1).help("mm between slices; 0 keeps it"),
                   InputSpec::Choice("mode", {"linear", "nearest"})};
  d.spec.outputs = {{"VOLUME", VOLUME}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    VolumePtr volume = volume_input(in);
    return {as_value(resampled(*volume, {in.number("x"), in.number("y"), in.number("z")}, in.string("mode")))};
  };
  return d;
}

NodeDef volume_slices() {
  NodeDef d = NodeDef::named(
      "VolumeSlices", "Volume Slices", kCategory,
      "A VOLUME of values in [0, 1] (scale it first) turned to the patient's axes, cut into 2-D slices along an axis: "
      "axial (counted from the feet up), coronal (from the front) or sagittal (from the patient's right), slices "
      "first to last (-1: the end) every `step`; a slice with less than min_fraction of its pixels above threshold "
      "is left out (empty). With size, each is padded to a square (0) and resized (antialiased) to size x size. A "
      "DATASET for TrainVAE and TrainGAN, the same slices as an IMAGE batch, and their count.");
  d.spec.inputs = {InputSpec::Link("volume", VOLUME), InputSpec::Choice("axis", {"axial", "coronal", "sagittal"}),
                   InputSpec::Int("first", 0).range(0, 1 << 20), InputSpec::Int("last", -1).range(-1, 1 << 20),
                   InputSpec::Int("step", 1).range(1, 1 << 20),
                   InputSpec::Float("threshold", 0.05).range(0, 1).with_step(0.01),
                   InputSpec::Float("min_fraction", 0.0).range(0, 1).with_step(0.01),
                   InputSpec::Int("size", 0).range(0, 4096).help("0 keeps each slice's size")};
  d.spec.outputs = {{"DATASET", types::DATASET}, {"IMAGE", types::IMAGE}, {"count", types::INT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    VolumePtr volume = volume_input(in);
    const double lo = volume->voxels.min().item<double>(), hi = volume->voxels.max().item<double>();
    if (lo < -1e-6 || hi > 1 + 1e-6)
      throw Error("the volume's values run from " + std::to_string(lo) + " to " + std::to_string(hi) +
                  ": scale them to [0, 1] first (ScaleIntensityRange)");
    const std::string& axis = in.string("axis");
    const at::Tensor all = slices_along(reoriented(*volume)->voxels, axis).clamp(0, 1);
    const int64_t n = all.size(0), first = in.integer("first");
    const int64_t last = in.integer("last") < 0 ? n - 1 : std::min(in.integer("last"), n - 1);
    if (first > last) throw Error("no slices: first " + std::to_string(first) + ", last " + std::to_string(last) + " of " + std::to_string(n));
    const at::Tensor picked = all.narrow(0, first, last - first + 1).slice(0, 0, c10::nullopt, in.integer("step"));
    const at::Tensor full = (picked.mean(1) > in.number("threshold")).to(at::kDouble).mean({1, 2});
    const at::Tensor keep = (full >= in.number("min_fraction")).nonzero().flatten();
    if (keep.numel() == 0) throw Error("every slice is empty (below min_fraction above threshold)");
    at::Tensor images = picked.index_select(0, keep).contiguous();
    if (const int64_t size = in.integer("size"); size > 0) {
      const int64_t h = images.size(2), w = images.size(3), side = std::max(h, w);
      images = at::constant_pad_nd(images, {(side - w) / 2, side - w - (side - w) / 2, (side - h) / 2, side - h - (side - h) / 2}, 0);
      if (side != size) images = at::_upsample_bilinear2d_aa(images, {size, size}, /*align_corners=*/false).clamp(0, 1);
      images = images.contiguous();
    }
    const int64_t count = images.size(0);
    ctx.log(LogLevel::info, std::to_string(count) + " " + axis + " slices of " + std::to_string(images.size(2)) + " x " +
                                std::to_string(images.size(3)) + " (" + std::to_string(picked.size(0) - count) + " empty left out)");
    auto data = std::make_shared<ImageDataset>(images, std::to_string(count) + " " + axis + " slices",
                                               std::vector<std::string>{"slice"});
    return {Value(std::static_pointer_cast<Object>(data)), images.to(ctx.device()), count};
  };
  return d;
}

}  // namespace

void register_nodes(Registrar& r) {
  r.add(load_dicom());
  r.add(windowing());
  r.add(scale_intensity_range());
  r.add(scale_intensity_percentiles());
  r.add(shepp_logan());
  r.add(save_dicom());
  r.add(load_nifti());
  r.add(resample());
  r.add(volume_slices());
  register_anomaly_nodes(r);
}

}  // namespace cozy::medical

COZY_PLUGIN("medical", "0.1.0", cozy::medical::register_nodes)
