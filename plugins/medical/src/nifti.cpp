// NIfTI-1 and NIfTI-2 (.nii, .nii.gz) into the decoder's plain volume, in
// this process: the format is a fixed header and raw voxels, read here with
// every size checked against the bytes there are (zlib inflates .gz).
// The voxel-to-space transform is the sform where the file has one, else the
// qform, else the voxel sizes alone (NIfTI's methods 3, 2, 1), turned from
// NIfTI's RAS+ into DICOM's LPS.
#include "decode.hpp"

#include <cozy/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

namespace cozy::medical {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxBytes = std::size_t(1) << 30;  // one file's voxels, as LoadDICOM's cap

[[noreturn]] void fail(const fs::path& path, const std::string& why) {
  throw Error("cannot read " + path.string() + ": " + why);
}

// The whole file, inflated if it is gzip'd (gzread passes plain files through).
std::string slurp(const fs::path& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) fail(path, "cannot open it");
  gzbuffer(file.get(), 1 << 17);
  std::string bytes;
  char chunk[1 << 16];
  for (;;) {
    const int n = gzread(file.get(), chunk, sizeof chunk);
    if (n < 0) {
      int code = 0;
      fail(path, std::string("the gzip stream is broken (") + gzerror(file.get(), &code) + ")");
    }
    if (n == 0) break;
    bytes.append(chunk, static_cast<std::size_t>(n));
    if (bytes.size() > kMaxBytes + 4096) fail(path, "it holds more than 1 GiB");
  }
  return bytes;
}

class Header {
 public:
  Header(const std::string& bytes, bool swap) : b_(bytes), swap_(swap) {}
  template <typename T>
  T at(std::size_t offset) const {
    T v;
    std::memcpy(&v, b_.data() + offset, sizeof v);
    if (swap_) {
      unsigned char* p = reinterpret_cast<unsigned char*>(&v);
      std::reverse(p, p + sizeof v);
    }
    return v;
  }

 private:
  const std::string& b_;
  bool swap_;
};

struct Fields {
  bool swap = false;  // the file's byte order is not this machine's
  int version = 1;
  std::array<int64_t, 8> dim{};
  std::array<double, 8> pixdim{};
  int datatype = 0;
  int64_t vox_offset = 0;
  double slope = 0, inter = 0;
  int units = 0, qform_code = 0, sform_code = 0;
  double qb = 0, qc = 0, qd = 0, qx = 0, qy = 0, qz = 0;
  std::array<std::array<double, 4>, 3> srow{};
  std::string description;
};

Fields parse_header(const fs::path& path, const std::string& bytes) {
  if (bytes.size() < 348) fail(path, "too short for a NIfTI header (" + std::to_string(bytes.size()) + " bytes)");
  int32_t size;
  std::memcpy(&size, bytes.data(), 4);
  const int32_t swapped = static_cast<int32_t>(__builtin_bswap32(static_cast<uint32_t>(size)));
  const bool swap = size != 348 && size != 540;
  if (swap && swapped != 348 && swapped != 540) fail(path, "not a NIfTI file (its header size is neither 348 nor 540)");
  const int32_t header_size = swap ? swapped : size;
  Header h(bytes, swap);
  Fields f;
  f.swap = swap;
  if (header_size == 348) {
    const std::string magic = bytes.substr(344, 4);
    if (magic == std::string("ni1\0", 4)) fail(path, "a NIfTI pair (.hdr with .img) is not read: convert it to .nii");
    if (magic != std::string("n+1\0", 4)) fail(path, "not a NIfTI-1 file (no n+1 magic)");
    for (int i = 0; i < 8; ++i) f.dim[i] = h.at<int16_t>(40 + 2 * i), f.pixdim[i] = h.at<float>(76 + 4 * i);
    f.datatype = h.at<int16_t>(70);
    const float offset = h.at<float>(108);
    if (!(offset >= 0 && offset < 1e9)) fail(path, "its voxel offset is not a size");
    f.vox_offset = static_cast<int64_t>(offset);
    f.slope = h.at<float>(112), f.inter = h.at<float>(116);
    f.units = static_cast<unsigned char>(bytes[123]);
    f.qform_code = h.at<int16_t>(252), f.sform_code = h.at<int16_t>(254);
    f.qb = h.at<float>(256), f.qc = h.at<float>(260), f.qd = h.at<float>(264);
    f.qx = h.at<float>(268), f.qy = h.at<float>(272), f.qz = h.at<float>(276);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) f.srow[r][c] = h.at<float>(280 + 16 * r + 4 * c);
    f.description = std::string(bytes.data() + 148, strnlen(bytes.data() + 148, 80));
  } else {
    if (bytes.size() < 540) fail(path, "too short for a NIfTI-2 header");
    if (bytes.compare(4, 8, std::string("n+2\0\r\n\032\n", 8)) != 0) fail(path, "not a NIfTI-2 file (no n+2 magic)");
    f.version = 2;
    f.datatype = h.at<int16_t>(12);
    for (int i = 0; i < 8; ++i) f.dim[i] = h.at<int64_t>(16 + 8 * i), f.pixdim[i] = h.at<double>(104 + 8 * i);
    f.vox_offset = h.at<int64_t>(168);
    f.slope = h.at<double>(176), f.inter = h.at<double>(184);
    f.qform_code = h.at<int32_t>(344), f.sform_code = h.at<int32_t>(348);
    f.qb = h.at<double>(352), f.qc = h.at<double>(360), f.qd = h.at<double>(368);
    f.qx = h.at<double>(376), f.qy = h.at<double>(384), f.qz = h.at<double>(392);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c) f.srow[r][c] = h.at<double>(400 + 32 * r + 8 * c);
    f.units = h.at<int32_t>(500);
    f.description = std::string(bytes.data() + 240, strnlen(bytes.data() + 240, 80));
  }
  return f;
}

// Bytes a voxel takes and its channels, for the types read.
std::pair<int, int> voxel_type(const fs::path& path, int datatype) {
  switch (datatype) {
    case 2: case 256: return {1, 1};     // uint8, int8
    case 4: case 512: return {2, 1};     // int16, uint16
    case 8: case 768: case 16: return {4, 1};  // int32, uint32, float32
    case 1024: case 1280: case 64: return {8, 1};  // int64, uint64, float64
    case 128: return {3, 3};             // RGB24
    case 2304: return {4, 4};            // RGBA32
    case 32: case 1792: case 2048: fail(path, "complex voxels are not read (datatype " + std::to_string(datatype) + ")");
    case 1: fail(path, "1-bit voxels are not read");
    default: fail(path, "unknown NIfTI datatype " + std::to_string(datatype));
  }
}

template <typename T>
double read_as(const char* p, bool swap) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if (swap && sizeof v > 1) {
    unsigned char* b = reinterpret_cast<unsigned char*>(&v);
    std::reverse(b, b + sizeof v);
  }
  return static_cast<double>(v);
}

double sample(int datatype, const char* p, bool swap) {
  switch (datatype) {
    case 2: case 128: case 2304: return read_as<uint8_t>(p, swap);
    case 256: return read_as<int8_t>(p, swap);
    case 4: return read_as<int16_t>(p, swap);
    case 512: return read_as<uint16_t>(p, swap);
    case 8: return read_as<int32_t>(p, swap);
    case 768: return read_as<uint32_t>(p, swap);
    case 16: return read_as<float>(p, swap);
    case 1024: return read_as<int64_t>(p, swap);
    case 1280: return read_as<uint64_t>(p, swap);
    default: return read_as<double>(p, swap);
  }
}

using Matrix = std::array<std::array<double, 4>, 3>;  // voxel (i, j, k, 1) -> mm, RAS+

Matrix transform(const Fields& f, double unit) {
  Matrix m{};
  if (f.sform_code > 0) {
    m = f.srow;
  } else if (f.qform_code > 0) {
    double a = 1.0 - (f.qb * f.qb + f.qc * f.qc + f.qd * f.qd);
    a = a < 1e-7 ? 0.0 : std::sqrt(a);  // as nifti1_io: a tiny negative is rounding
    const double b = f.qb, c = f.qc, d = f.qd;
    const double R[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                            {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                            {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    const double qfac = f.pixdim[0] < 0 ? -1.0 : 1.0;
    const double scale[3] = {f.pixdim[1], f.pixdim[2], qfac * f.pixdim[3]};
    for (int r = 0; r < 3; ++r) {
      for (int c2 = 0; c2 < 3; ++c2) m[r][c2] = R[r][c2] * scale[c2];
    }
    m[0][3] = f.qx, m[1][3] = f.qy, m[2][3] = f.qz;
  } else {
    for (int r = 0; r < 3; ++r) m[r][r] = f.pixdim[r + 1] == 0 ? 1.0 : f.pixdim[r + 1];
  }
  for (auto& row : m)
    for (double& v : row) v *= unit;
  return m;
}

}  // namespace

Decoded decode_nifti(const fs::path& path, int64_t frame) {
  if (!fs::is_regular_file(path)) fail(path, "no such file");
  const std::string bytes = slurp(path);
  const Fields f = parse_header(path, bytes);
  const bool swap = f.swap;
  const int64_t rank = f.dim[0];
  if (rank < 1 || rank > 7) fail(path, "its dimension count is " + std::to_string(rank));
  std::array<int64_t, 8> n{};
  for (int i = 1; i <= 7; ++i) n[i] = i <= rank ? f.dim[i] : 1;
  for (int i = 1; i <= 7; ++i)
    if (n[i] < 1 || n[i] > (int64_t(1) << 31)) fail(path, "its size along axis " + std::to_string(i) + " is " + std::to_string(n[i]));
  for (int i = 5; i <= 7; ++i)
    if (n[i] != 1) fail(path, "vector or higher-dimensional voxels (dim[" + std::to_string(i) + "] = " + std::to_string(n[i]) + ") are not read");
  if (frame < 0 || frame >= n[4])
    fail(path, "it has " + std::to_string(n[4]) + " frame(s); frame " + std::to_string(frame) + " was asked for");
  const auto [bytes_per_voxel, channels] = voxel_type(path, f.datatype);
  if (static_cast<double>(n[1]) * static_cast<double>(n[2]) * static_cast<double>(n[3]) * channels * 4 >
      static_cast<double>(kMaxBytes))
    fail(path, "its " + std::to_string(n[1]) + " x " + std::to_string(n[2]) + " x " + std::to_string(n[3]) +
                   " voxels would take more than 1 GiB");
  const int64_t voxels = n[1] * n[2] * n[3];
  const int64_t frame_bytes = voxels * bytes_per_voxel;
  if (f.vox_offset < 0 || f.vox_offset > static_cast<int64_t>(bytes.size()))
    fail(path, "its voxels would start at byte " + std::to_string(f.vox_offset) + ", past its end");
  const int64_t start = std::max<int64_t>(f.vox_offset, f.version == 1 ? 352 : 544);
  if (static_cast<int64_t>(bytes.size()) < start + frame_bytes * (frame + 1))
    fail(path, "it is truncated: " + std::to_string(bytes.size()) + " bytes, its header needs " +
                   std::to_string(start + frame_bytes * n[4]));

  Decoded d;
  d.cols = n[1], d.rows = n[2], d.slices = n[3], d.channels = channels;
  d.modality = "MR";
  d.files = {path.string()};
  d.tags["0008,103e"] = f.description;
  const bool scaled = f.slope != 0 && std::isfinite(f.slope) && std::isfinite(f.inter) && channels == 1;
  const double slope = scaled ? f.slope : 1.0, inter = scaled ? f.inter : 0.0;

  // Space: mm, RAS+ -> LPS (x and y negated); the slice axis the one the
  // volume's convention wants (row x column), else the slices reversed.
  const int spatial = f.units & 7;
  const double unit = spatial == 1 ? 1000.0 : spatial == 3 ? 1e-3 : 1.0;
  Matrix m = transform(f, unit);
  for (int c = 0; c < 4; ++c) m[0][c] = -m[0][c], m[1][c] = -m[1][c];
  std::array<std::array<double, 3>, 3> axis{};
  for (int a = 0; a < 3; ++a) {
    const double length = std::sqrt(m[0][a] * m[0][a] + m[1][a] * m[1][a] + m[2][a] * m[2][a]);
    if (!(length > 0) || !std::isfinite(length)) fail(path, "its voxel-to-space transform is degenerate");
    d.spacing[a] = length;
    for (int r = 0; r < 3; ++r) axis[a][r] = m[r][a] / length;
  }
  const auto& r = axis[0];
  const auto& c = axis[1];
  const std::array<double, 3> normal = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
  const bool reversed = normal[0] * axis[2][0] + normal[1] * axis[2][1] + normal[2] * axis[2][2] < 0;
  d.orientation = {r[0], r[1], r[2], c[0], c[1], c[2]};
  const double k0 = reversed ? static_cast<double>(n[3] - 1) : 0.0;
  for (int row = 0; row < 3; ++row) d.origin[row] = m[row][3] + k0 * m[row][2];

  d.voxels.resize(static_cast<std::size_t>(voxels * channels));
  const char* base = bytes.data() + start + frame * frame_bytes;
  const int64_t plane = n[1] * n[2];
  const int64_t component = channels > 1 ? 1 : bytes_per_voxel;
  for (int64_t k = 0; k < n[3]; ++k) {
    const int64_t out_k = reversed ? n[3] - 1 - k : k;
    for (int64_t p = 0; p < plane; ++p) {
      const char* voxel = base + (k * plane + p) * bytes_per_voxel;
      for (int64_t ch = 0; ch < channels; ++ch) {
        const double v = sample(f.datatype, voxel + ch * component, swap) * slope + inter;
        d.voxels[static_cast<std::size_t>((out_k * channels + ch) * plane + p)] = static_cast<float>(v);
      }
    }
  }
  if (channels == 4) {  // RGBA: the alpha is dropped
    std::vector<float> rgb(static_cast<std::size_t>(voxels * 3));
    for (int64_t k = 0; k < n[3]; ++k)
      std::memcpy(rgb.data() + k * 3 * plane, d.voxels.data() + k * 4 * plane, static_cast<std::size_t>(3 * plane) * sizeof(float));
    d.voxels = std::move(rgb);
    d.channels = 3;
  }
  return d;
}

}  // namespace cozy::medical
