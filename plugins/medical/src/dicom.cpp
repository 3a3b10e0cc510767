// DICOM out with GDCM (derived images), the VOI functions, and the volume
// made from what the decoder (decode.cpp) read.
#include "decode.hpp"
#include "volume.hpp"

#include <gdcmAnonymizer.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageWriter.h>
#include <gdcmReader.h>
#include <gdcmUIDGenerator.h>
#include <gdcmWriter.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

namespace cozy::medical {

namespace fs = std::filesystem;

std::shared_ptr<Volume> read_dicom(const fs::path& path) { return volume_from(decode_isolated(path, 300)); }

std::string new_uid() {
  static std::mutex mutex;  // GDCM's generator keeps state
  std::lock_guard<std::mutex> lock(mutex);
  gdcm::UIDGenerator generator;
  return generator.Generate();
}

void write_dicom_slice(const Volume& volume, int64_t slice, const fs::path& file, const SaveOptions& options,
                       const std::string& study_uid, const std::string& series_uid) {
  quiet_gdcm();
  const at::Tensor plane = volume.voxels[slice].to(at::kDouble);  // [C, H, W]
  if (plane.size(0) != 1) throw Error("SaveDICOM writes grey slices (this one has " + std::to_string(plane.size(0)) + " channels)");
  const int64_t rows = plane.size(1), cols = plane.size(2);
  // 16-bit signed pixels and a rescale that gives back the values: the
  // identity when they are whole numbers that fit, else a linear map of
  // their range onto the 16 bits.
  const double lo = plane.min().item<double>(), hi = plane.max().item<double>();
  const bool whole = at::equal(plane, plane.round()) && lo >= -32768 && hi <= 32767;
  const double slope = whole ? 1.0 : (hi > lo ? (hi - lo) / 65535.0 : 1.0);
  const double intercept = whole ? 0.0 : lo + 32768.0 * slope;
  at::Tensor stored = ((plane[0] - intercept) / slope).round().clamp(-32768, 32767).to(at::kShort).contiguous();

  gdcm::ImageWriter writer;
  gdcm::Image& image = writer.GetImage();
  image.SetNumberOfDimensions(2);
  image.SetDimension(0, static_cast<unsigned int>(cols));
  image.SetDimension(1, static_cast<unsigned int>(rows));
  image.SetPixelFormat(gdcm::PixelFormat(gdcm::PixelFormat::INT16));
  image.SetPhotometricInterpretation(volume.monochrome1 ? gdcm::PhotometricInterpretation::MONOCHROME1
                                                        : gdcm::PhotometricInterpretation::MONOCHROME2);
  image.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
  image.SetSlope(slope);
  image.SetIntercept(intercept);
  const double spacing[3] = {volume.spacing[0], volume.spacing[1], volume.spacing[2]};
  image.SetSpacing(spacing);
  {  // the slice's place: the writer writes ImagePositionPatient and ImageOrientationPatient from these
    const auto& o = volume.orientation;
    const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
    const double z = static_cast<double>(slice) * volume.spacing[2];
    const double origin[3] = {volume.origin[0] + z * n[0], volume.origin[1] + z * n[1], volume.origin[2] + z * n[2]};
    image.SetOrigin(origin);
    image.SetDirectionCosines(o.data());
  }
  gdcm::DataElement pixel_data(gdcm::Tag(0x7fe0, 0x0010));
  pixel_data.SetByteValue(static_cast<const char*>(stored.data_ptr()), static_cast<uint32_t>(stored.numel() * 2));
  image.SetDataElement(pixel_data);

  gdcm::ImageChangeTransferSyntax change;
  const std::map<std::string, gdcm::TransferSyntax::TSType> syntaxes = {
      {"none", gdcm::TransferSyntax::ExplicitVRLittleEndian}, {"rle", gdcm::TransferSyntax::RLELossless},
      {"jpeg-lossless", gdcm::TransferSyntax::JPEGLosslessProcess14_1},
      {"jpeg-ls", gdcm::TransferSyntax::JPEGLSLossless}, {"jpeg2000", gdcm::TransferSyntax::JPEG2000Lossless}};
  auto syntax = syntaxes.find(options.compression);
  if (syntax == syntaxes.end()) throw Error("unknown compression " + options.compression);
  if (syntax->second != gdcm::TransferSyntax::ExplicitVRLittleEndian) {
    change.SetTransferSyntax(syntax->second);
    change.SetInput(image);
    if (!change.Change()) throw Error("GDCM cannot compress to " + options.compression);
    writer.SetImage(change.GetOutput());
  }

  gdcm::File& out = writer.GetFile();
  gdcm::DataSet& ds = out.GetDataSet();
  gdcm::Anonymizer edit;
  edit.SetFile(out);
  for (const auto& [key, value] : volume.tags) {
    unsigned int group = 0, element = 0;
    if (std::sscanf(key.c_str(), "%x,%x", &group, &element) == 2)
      edit.Replace(gdcm::Tag(static_cast<uint16_t>(group), static_cast<uint16_t>(element)), value.c_str());
  }
  const std::string sop = new_uid();
  // A CT or MR volume stays a CT or MR image (derived): its Image Plane
  // module keeps the slices' place; anything else is a Secondary Capture.
  const char* sop_class = volume.modality == "CT"   ? "1.2.840.10008.5.1.4.1.1.2"
                          : volume.modality == "MR" ? "1.2.840.10008.5.1.4.1.1.4"
                                                    : "1.2.840.10008.5.1.4.1.1.7";
  edit.Replace(gdcm::Tag(0x0008, 0x0016), sop_class);
  edit.Replace(gdcm::Tag(0x0008, 0x0018), sop.c_str());
  edit.Replace(gdcm::Tag(0x0020, 0x000D), study_uid.c_str());
  edit.Replace(gdcm::Tag(0x0020, 0x000E), series_uid.c_str());
  edit.Replace(gdcm::Tag(0x0008, 0x0008), "DERIVED\\SECONDARY");
  edit.Replace(gdcm::Tag(0x0008, 0x0060), volume.modality.empty() ? "OT" : volume.modality.c_str());
  edit.Replace(gdcm::Tag(0x0008, 0x0064), "WSD");  // conversion: workstation
  edit.Replace(gdcm::Tag(0x0008, 0x103E), options.description.c_str());
  edit.Replace(gdcm::Tag(0x0020, 0x0011), "1");
  edit.Replace(gdcm::Tag(0x0020, 0x0013), std::to_string(slice + 1).c_str());
  std::ostringstream pixel_spacing, rescale_slope, rescale_intercept;
  pixel_spacing.precision(10), rescale_slope.precision(10), rescale_intercept.precision(10);
  pixel_spacing << volume.spacing[1] << '\\' << volume.spacing[0];
  rescale_slope << slope;
  rescale_intercept << intercept;
  edit.Replace(gdcm::Tag(0x0028, 0x0030), pixel_spacing.str().c_str());
  edit.Replace(gdcm::Tag(0x0028, 0x1052), rescale_intercept.str().c_str());
  edit.Replace(gdcm::Tag(0x0028, 0x1053), rescale_slope.str().c_str());
  edit.Replace(gdcm::Tag(0x0028, 0x1054), volume.units == "HU" ? "HU" : "US");
  if (options.anonymize) {
    edit.Replace(gdcm::Tag(0x0010, 0x0010), "Anonymous");
    edit.Replace(gdcm::Tag(0x0010, 0x0020), series_uid.substr(series_uid.size() > 16 ? series_uid.size() - 16 : 0).c_str());
    for (const gdcm::Tag tag : {gdcm::Tag(0x0010, 0x0030), gdcm::Tag(0x0010, 0x0040), gdcm::Tag(0x0008, 0x0080),
                                gdcm::Tag(0x0008, 0x0090), gdcm::Tag(0x0008, 0x0050)})
      edit.Remove(tag);
    edit.Replace(gdcm::Tag(0x0012, 0x0062), "YES");  // patient identity removed
    edit.Replace(gdcm::Tag(0x0012, 0x0063), "Cozy SaveDICOM: name, id, birth date, sex, institution, physician");
  }
  (void)ds;
  writer.SetFileName(file.c_str());
  if (!writer.Write()) throw Error("cannot write " + file.string() + ": GDCM refused it");
  // GDCM writes a 2-D image's position without its z: the slice's place, again.
  gdcm::Reader again;
  again.SetFileName(file.c_str());
  if (!again.Read()) throw Error("cannot read back " + file.string());
  std::ostringstream position;
  position.precision(10);
  {
    const auto& o = volume.orientation;
    const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
    const double z = static_cast<double>(slice) * volume.spacing[2];
    position << volume.origin[0] + z * n[0] << '\\' << volume.origin[1] + z * n[1] << '\\' << volume.origin[2] + z * n[2];
  }
  gdcm::Anonymizer place;
  place.SetFile(again.GetFile());
  place.Replace(gdcm::Tag(0x0020, 0x0032), position.str().c_str());
  gdcm::Writer rewrite;
  rewrite.SetFile(again.GetFile());
  rewrite.SetFileName(file.c_str());
  if (!rewrite.Write()) throw Error("cannot write " + file.string() + ": GDCM refused it");
}

at::Tensor voi_lut(const at::Tensor& values, double center, double width, const std::string& function) {
  const at::Tensor x = values.to(at::kDouble);
  at::Tensor y;
  if (function == "LINEAR") {
    if (width < 1) throw Error("LINEAR needs a window width of at least 1, not " + std::to_string(width));
    const double low = center - 0.5 - (width - 1) / 2, high = center - 0.5 + (width - 1) / 2;
    y = ((x - (center - 0.5)) / (width - 1) + 0.5);
    if (width == 1) y = at::zeros_like(x);
    y = at::where(x <= low, at::zeros_like(y), at::where(x > high, at::ones_like(y), y));
  } else if (function == "LINEAR_EXACT") {
    if (width <= 0) throw Error("LINEAR_EXACT needs a window width above 0, not " + std::to_string(width));
    y = at::where(x <= center - width / 2, at::zeros_like(x),
                  at::where(x > center + width / 2, at::ones_like(x), (x - center) / width + 0.5));
  } else if (function == "SIGMOID") {
    if (width <= 0) throw Error("SIGMOID needs a window width above 0, not " + std::to_string(width));
    y = 1.0 / (1.0 + at::exp(-4.0 * (x - center) / width));
  } else {
    throw Error("unknown VOI LUT function " + function);
  }
  return y.to(at::kFloat);
}

double percentile(const at::Tensor& values, double q) {
  at::Tensor flat = values.flatten().to(at::kDouble);
  flat = flat.masked_select(~at::isnan(flat));
  if (flat.numel() == 0) return 0.0;
  const at::Tensor sorted = std::get<0>(flat.sort());
  const double* v = sorted.data_ptr<double>();
  const int64_t n = sorted.numel();
  const double position = q / 100.0 * static_cast<double>(n - 1);
  const int64_t i = static_cast<int64_t>(std::floor(position));
  const double f = position - static_cast<double>(i);
  return i + 1 < n ? v[i] + f * (v[i + 1] - v[i]) : v[n - 1];
}

}  // namespace cozy::medical
