// The medical pack's DICOM reader under libFuzzer: whatever the bytes, the
// host gets a volume or an error naming the file. GDCM decodes in a child
// process, so its own aborts and crashes are errors by design; what this
// target fails on is the reader's code: a sanitizer report in the child
// (which exits with status 1), or an answer that does not add up.
#include "decode.hpp"

#include <cozy/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cozy::medical::quiet_gdcm();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = "/tmp/cozy_fuzz_dicom_" + std::to_string(getpid()) + ".dcm";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const cozy::medical::Decoded d = cozy::medical::decode_isolated(file, 20);
    if (d.voxels.size() != static_cast<size_t>(d.slices * d.channels * d.rows * d.cols)) abort();
  } catch (const cozy::Error& e) {
    if (std::string(e.what()).find("(exit status 1)") != std::string::npos) abort();  // a sanitizer's report
  }
  return 0;
}
