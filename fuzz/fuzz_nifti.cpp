// The medical pack's NIfTI reader under libFuzzer: it reads in the host's
// process, so whatever the bytes (a header that lies about its sizes, a
// broken gzip stream), it must give a volume that adds up or an error naming
// the file, never a sanitizer report.
#include "decode.hpp"

#include <cozy/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = "/tmp/cozy_fuzz_nifti_" + std::to_string(getpid()) + ".nii";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  for (int64_t frame : {0, 1}) {
    try {
      const cozy::medical::Decoded d = cozy::medical::decode_nifti(file, frame);
      if (d.voxels.size() != static_cast<size_t>(d.slices * d.channels * d.rows * d.cols)) abort();
    } catch (const cozy::Error& e) {
      if (std::string(e.what()).rfind("cannot read " + file + ": ", 0) != 0) abort();
    }
  }
  return 0;
}
