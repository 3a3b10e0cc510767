// Volumes as tensors: made from what a decoder read, turned to the patient's
// axes, resampled, cut into slices.
#include "decode.hpp"
#include "volume.hpp"

#include <cmath>
#include <cstring>

namespace cozy::medical {

namespace fs = std::filesystem;

std::shared_ptr<Volume> volume_from(Decoded d) {
  auto v = std::make_shared<Volume>();
  v->voxels = at::empty({d.slices, d.channels, d.rows, d.cols}, at::kFloat);
  if (!d.voxels.empty()) std::memcpy(v->voxels.data_ptr<float>(), d.voxels.data(), d.voxels.size() * sizeof(float));
  v->modality = d.modality;
  v->units = d.modality == "CT" ? "HU" : "";
  v->monochrome1 = d.monochrome1;
  v->spacing = d.spacing;
  v->origin = d.origin;
  v->orientation = d.orientation;
  v->windows = d.windows;
  v->tags = std::move(d.tags);
  v->files = std::move(d.files);
  return v;
}

std::shared_ptr<Volume> read_nifti(const fs::path& path, int64_t frame) { return volume_from(decode_nifti(path, frame)); }

namespace {

using Vec = std::array<double, 3>;

// The directions of the column, row and slice axes (i, j, k) in LPS.
std::array<Vec, 3> directions(const Volume& v) {
  const auto& o = v.orientation;
  const Vec r = {o[0], o[1], o[2]}, c = {o[3], o[4], o[5]};
  return {r, c, Vec{r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]}};
}

// The tensor dimension of axis i, j, k in [D, C, H, W].
constexpr int64_t kDim[3] = {3, 2, 0};

}  // namespace

std::shared_ptr<Volume> reoriented(const Volume& volume) {
  const auto dir = directions(volume);
  int source[3] = {-1, -1, -1};  // the old axis that becomes x (columns), y (rows), z (slices)
  double sign[3] = {1, 1, 1};    // of old axis a along its direction
  for (int a = 0; a < 3; ++a) {
    int best = 0;
    for (int x = 1; x < 3; ++x)
      if (std::abs(dir[a][x]) > std::abs(dir[a][best])) best = x;
    if (source[best] >= 0) return std::make_shared<Volume>(volume);  // oblique: two axes chose one direction
    source[best] = a;
    sign[a] = dir[a][best] < 0 ? -1 : 1;
  }
  auto out = std::make_shared<Volume>(volume);
  at::Tensor v = volume.voxels.permute({kDim[source[2]], 1, kDim[source[1]], kDim[source[0]]});
  std::vector<int64_t> flips;
  for (int b = 0; b < 3; ++b)
    if (sign[source[b]] < 0) flips.push_back(kDim[b]);
  if (!flips.empty()) v = v.flip(flips);
  out->voxels = v.contiguous();
  // The new first voxel is the old one at the far end of each flipped axis.
  const int64_t size[3] = {volume.voxels.size(3), volume.voxels.size(2), volume.voxels.size(0)};
  for (int a = 0; a < 3; ++a) {
    if (sign[a] > 0) continue;
    for (int x = 0; x < 3; ++x) out->origin[x] += static_cast<double>(size[a] - 1) * volume.spacing[a] * dir[a][x];
  }
  for (int b = 0; b < 3; ++b) out->spacing[b] = volume.spacing[source[b]];
  for (int x = 0; x < 3; ++x) {
    out->orientation[x] = sign[source[0]] * dir[source[0]][x];
    out->orientation[3 + x] = sign[source[1]] * dir[source[1]][x];
  }
  return out;
}

std::shared_ptr<Volume> resampled(const Volume& volume, const std::array<double, 3>& spacing, const std::string& mode) {
  if (mode != "linear" && mode != "nearest") throw Error("unknown resampling mode " + mode);
  auto out = std::make_shared<Volume>(volume);
  at::Tensor v = volume.voxels;
  for (int a = 0; a < 3; ++a) {
    const double from = volume.spacing[a], to = spacing[a] > 0 ? spacing[a] : from;
    if (!(to > 0) || !std::isfinite(to)) throw Error("a spacing must be above 0");
    const int64_t dim = kDim[a], n = v.size(dim);
    const int64_t m = static_cast<int64_t>(std::floor(static_cast<double>(n - 1) * from / to + 1e-9)) + 1;
    if (m > 16384) throw Error("resampling to " + std::to_string(to) + " mm would make " + std::to_string(m) + " voxels along an axis");
    out->spacing[a] = to;
    if (to == from) continue;
    std::vector<int64_t> lower(static_cast<std::size_t>(m)), upper(static_cast<std::size_t>(m));
    std::vector<float> weight(static_cast<std::size_t>(m));
    for (int64_t p = 0; p < m; ++p) {
      const double position = std::min(static_cast<double>(p) * to / from, static_cast<double>(n - 1));
      int64_t i = static_cast<int64_t>(std::floor(position));
      double w = position - static_cast<double>(i);
      if (mode == "nearest") i = std::min<int64_t>(static_cast<int64_t>(std::floor(position + 0.5)), n - 1), w = 0;
      lower[p] = i;
      upper[p] = std::min(i + 1, n - 1);
      weight[p] = static_cast<float>(w);
    }
    const auto as_tensor = [](std::vector<int64_t>& x) { return at::from_blob(x.data(), {static_cast<int64_t>(x.size())}, at::kLong).clone(); };
    at::Tensor low = v.index_select(dim, as_tensor(lower));
    if (mode == "nearest") {
      v = low;
      continue;
    }
    std::vector<int64_t> shape(static_cast<std::size_t>(v.dim()), 1);
    shape[static_cast<std::size_t>(dim)] = m;
    const at::Tensor w = at::from_blob(weight.data(), {m}, at::kFloat).clone().view(shape);
    // (1 - w) x low + w x high: where w is 0 the old voxel comes through bit for bit.
    v = at::where(w == 0, low, low * (1 - w) + v.index_select(dim, as_tensor(upper)) * w);
  }
  out->voxels = v.contiguous();
  return out;
}

at::Tensor slices_along(const at::Tensor& voxels, const std::string& axis) {
  if (axis == "axial") return voxels;
  if (axis == "coronal") return voxels.permute({2, 1, 0, 3}).flip({2});
  if (axis == "sagittal") return voxels.permute({3, 1, 0, 2}).flip({2});
  throw Error("unknown axis " + axis + " (axial, coronal, sagittal)");
}

}  // namespace cozy::medical
