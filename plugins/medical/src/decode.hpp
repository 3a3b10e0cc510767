// The DICOM decoder, apart from ATen and the host: GDCM reads a file or a
// series folder into plain memory, in a child process (see decode.cpp).
// The fuzzer (fuzz/fuzz_dicom.cpp) builds it alone.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cozy::medical {

/// A volume as the decoder makes it: plain memory, in the file's units.
struct Decoded {
  int64_t slices = 0, channels = 1, rows = 0, cols = 0;
  std::vector<float> voxels;  // [slices, channels, rows, cols]
  std::string modality;
  bool monochrome1 = false;
  std::array<double, 3> spacing{1, 1, 1}, origin{0, 0, 0};
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  std::vector<std::pair<double, double>> windows;
  std::map<std::string, std::string> tags;
  std::vector<std::string> files;
  std::string series;  // SeriesInstanceUID, to group a folder's files
  int instance = 0;    // InstanceNumber
};

/// Decodes a DICOM file or a folder of one series in a child process, giving
/// it `seconds`; throws cozy::Error naming the path and the reason (a crash
/// or an abort of the decoder included).
Decoded decode_isolated(const std::filesystem::path& path, int seconds);

/// Reads frame `frame` of a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz) in
/// this process (see nifti.cpp); throws cozy::Error naming the file and the
/// reason.
Decoded decode_nifti(const std::filesystem::path& path, int64_t frame);

/// GDCM's warnings and errors off (they go to stderr otherwise).
void quiet_gdcm();

}  // namespace cozy::medical
