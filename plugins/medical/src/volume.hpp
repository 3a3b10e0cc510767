// The medical pack's volume: slices in the file's physical units (Hounsfield
// units for CT, after the rescale slope and intercept), with their place in
// the patient's space and the tags a derived file copies. An IMAGE is [0, 1]
// display values; a VOLUME is neither, which is why it is a type of its own
// (VOLUME) and Windowing makes IMAGEs of it.
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cozy::medical {

inline constexpr const char* VOLUME = "VOLUME";

class Volume final : public Object {
 public:
  std::string type_name() const override { return VOLUME; }

  /// float32 [D, C, H, W] on the CPU: D slices (frames), C = 1 (grey) or 3
  /// (colour: RGB, YBR or palette colour made RGB), in `units`.
  at::Tensor voxels;
  std::string units;                         ///< "HU" for CT, else "" (the modality's own)
  std::string modality;                      ///< CT, MR, US, OT, ...
  std::array<double, 3> spacing{1, 1, 1};    ///< mm between columns, rows, slices
  std::array<double, 3> origin{0, 0, 0};     ///< mm, the first voxel's centre (ImagePositionPatient)
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};  ///< row and column direction cosines
  bool monochrome1 = false;                  ///< the file shows low values white (display inverts)
  std::vector<std::pair<double, double>> windows;  ///< the file's (centre, width) pairs, first first
  /// Tags a derived file keeps (patient, study, equipment), as "gggg,eeee" -> text.
  std::map<std::string, std::string> tags;
  std::vector<std::string> files;            ///< where the slices came from, in order

  int64_t slices() const { return voxels.size(0); }
};

using VolumePtr = std::shared_ptr<const Volume>;

/// Reads a DICOM file (one image or many frames) or a folder of one series
/// (its slices sorted along the slice normal by ImagePositionPatient, as
/// ITK and MONAI order them). Every transfer syntax GDCM decodes; rescale
/// slope and intercept applied in float; palette colour made RGB. Throws
/// cozy::Error naming the file and the reason.
std::shared_ptr<Volume> read_dicom(const std::filesystem::path& path);

struct Decoded;
/// The decoder's plain volume as a VOLUME (its voxels copied into a tensor).
std::shared_ptr<Volume> volume_from(Decoded decoded);

/// Frame `frame` of a NIfTI-1 or NIfTI-2 file (.nii, .nii.gz): voxels in
/// the file's units (scl_slope and scl_inter applied), the sform (else the
/// qform) turned into DICOM's patient space (LPS, mm). Throws cozy::Error
/// naming the file and the reason.
std::shared_ptr<Volume> read_nifti(const std::filesystem::path& path, int64_t frame);

/// The volume with its axes permuted and flipped so that columns run
/// towards the patient's left, rows towards the back and slices upwards
/// (the nearest of each, as DICOM shows an axial series); its origin,
/// spacing and directions follow. An oblique volume whose axes do not pick
/// three different directions comes back as it is.
std::shared_ptr<Volume> reoriented(const Volume& volume);

/// The volume resampled to `spacing` (mm: columns, rows, slices; 0 keeps an
/// axis): the first voxel stays where it is, the new voxels every `spacing`
/// mm up to the last old one; "linear" (trilinear, separable) or "nearest".
std::shared_ptr<Volume> resampled(const Volume& volume, const std::array<double, 3>& spacing, const std::string& mode);

/// Every slice along "axial" (the slice axis), "coronal" (rows) or
/// "sagittal" (columns) as images [N, C, h, w], superior up for the last two
/// (the volume as reoriented() leaves it).
at::Tensor slices_along(const at::Tensor& voxels, const std::string& axis);

/// What SaveDICOM writes. `compression`: "none", "rle", "jpeg-lossless",
/// "jpeg-ls", "jpeg2000" (lossless each). `anonymize`: patient name, id,
/// birth date and sex, and the institution, replaced or removed.
struct SaveOptions {
  std::string compression = "none";
  bool anonymize = false;
  std::string description = "Cozy";
};
/// Writes one slice of a volume as a derived Secondary Capture image (16-bit
/// signed pixels with a rescale that keeps the values in their units, new
/// UIDs shared by the series, ImageType DERIVED\SECONDARY).
void write_dicom_slice(const Volume& volume, int64_t slice, const std::filesystem::path& file, const SaveOptions& options,
                       const std::string& study_uid, const std::string& series_uid);
/// A new DICOM UID under GDCM's root.
std::string new_uid();

/// DICOM's VOI LUT functions (PS3.3 C.11.2.1.2) to [0, 1]: "LINEAR",
/// "LINEAR_EXACT", "SIGMOID".
at::Tensor voi_lut(const at::Tensor& values, double center, double width, const std::string& function);

/// numpy's linear-interpolation percentile of `values` (NaN ignored).
double percentile(const at::Tensor& values, double q);

void register_nodes(Registrar& r);

}  // namespace cozy::medical
