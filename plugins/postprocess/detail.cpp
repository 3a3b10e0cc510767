// Detail: blur (its own kernel on the CPU) and sharpen as tensor ops on the
// device; median, bilateral, CLAHE and Canny with OpenCV on the CPU and as
// tensor ops elsewhere (CLAHE's Lab conversions stay OpenCV's).
#include <cmath>
#include <mutex>
#include <opencv2/imgproc.hpp>

#include "common.hpp"
#include "kernels.hpp"

namespace cozy::postprocess {
namespace {

// OpenCV's kernel size for a float image and a sigma (cv::GaussianBlur with
// ksize (0, 0)): round(8 sigma + 1), made odd.
int gaussian_ksize(double sigma) { return (static_cast<int>(std::lround(sigma * 8 + 1))) | 1; }

// Separable Gaussian blur with OpenCV's kernel and its default border,
// BORDER_REFLECT_101 (torch's "reflect" padding).
at::Tensor gaussian_blur(const at::Tensor& image, double sigma, int threads) {
  if (sigma <= 0) return image;
  const int ksize = gaussian_ksize(sigma);
  const int64_t radius = ksize / 2;
  const int64_t h = image.size(2), w = image.size(3);
  if (cpu_kernels(image) && radius < h && radius < w) {
    // Its own separable filter (kernels::symmetric_filter) with OpenCV's
    // kernel, plane by plane in the cache; planes (and, for fewer planes than
    // threads, bands of rows) over the run's threads.
    const cv::Mat weights = cv::getGaussianKernel(ksize, sigma, CV_32F);
    const float* k = weights.ptr<float>() + radius;  // the centre, then one side
    const at::Tensor src = row_major(image);
    const Rows rows(src);
    const int64_t channels = src.size(1), planes = src.size(0) * channels;
    at::Tensor dst = at::empty({src.size(0), channels, h, w}, src.options());
    float* d = dst.data_ptr<float>();
    const int64_t bands = std::min<int64_t>(std::max<int64_t>(1, (2 * at::get_num_threads() + planes - 1) / planes),
                                            std::max<int64_t>(1, h / 64));
    parallel_for(0, planes * bands, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t plane = task / bands, band = task % bands;
        kernels::symmetric_filter(rows(plane / channels, plane % channels, 0), rows.row, d + plane * h * w, w, h, w, k,
                                  static_cast<int>(radius), band * h / bands, (band + 1) * h / bands);
      }
    });
    return dst;
  }
  if (cpu_kernels(image) || radius >= h || radius >= w) {
    // A reflection wider than the image: OpenCV folds it again (through host
    // memory for an image on another device).
    return per_plane(image, h, w, threads, [&](const cv::Mat& in, cv::Mat& out) {
      cv::GaussianBlur(in, out, cv::Size(ksize, ksize), sigma, sigma, cv::BORDER_REFLECT_101);
    });
  }
  at::Tensor x = at::arange(ksize, image.options()) - static_cast<double>(radius);
  at::Tensor kernel = at::exp(-(x * x) / (2 * sigma * sigma));
  kernel = kernel / kernel.sum();
  const int64_t b = image.size(0), c = image.size(1);
  at::Tensor planes = image.reshape({b * c, 1, h, w});
  planes = at::reflection_pad2d(planes, {radius, radius, radius, radius});
  planes = at::conv2d(planes, kernel.view({1, 1, 1, ksize}));
  planes = at::conv2d(planes, kernel.view({1, 1, ksize, 1}));
  return planes.reshape({b, c, h, w});
}

// OpenCV's medianBlur as tensor operations (an image on the GPU): the
// size x size windows of the replicated border (medianBlur's), unfolded and
// their medians taken, a few planes at a time so that the windows (size^2
// copies of a plane) stay within 256 MiB.
at::Tensor median_filter(const at::Tensor& image, int64_t size) {
  constexpr int64_t kWindowBytes = int64_t{256} << 20;
  const int64_t planes = image.size(0) * image.size(1), h = image.size(2), w = image.size(3), r = size / 2;
  const at::Tensor src = image.reshape({planes, 1, h, w});
  at::Tensor out = at::empty({planes, h, w}, image.options());
  const int64_t chunk = std::max<int64_t>(1, kWindowBytes / (h * w * size * size * int64_t{sizeof(float)}));
  for (int64_t p = 0; p < planes; p += chunk) {
    const int64_t n = std::min(chunk, planes - p);
    const at::Tensor windows =
        at::replication_pad2d(src.narrow(0, p, n), {r, r, r, r}).squeeze(1).unfold(1, size, 1).unfold(2, size, 1);
    out.narrow(0, p, n).copy_(std::get<0>(windows.reshape({n, h, w, size * size}).median(-1)));
  }
  return out.view(image.sizes());
}

// OpenCV's bilateralFilter on float images as tensor operations (an image on
// the GPU): radius max(diameter / 2, 1), the neighbours within that distance
// (reflect-101 border), each weighted by exp(-r^2 / (2 sigma_space^2)) and
// by exp(-d^2 / (2 sigma_color^2)), d the colour difference summed over
// channels (OpenCV's L1 distance; it reads these weights from a table with
// 4096 steps a channel, here they are computed). Images whose border would
// fold twice (radius >= a side) return an undefined tensor.
at::Tensor bilateral_filter(const at::Tensor& image, int diameter, double sigma_color, double sigma_space) {
  const int64_t radius = std::max(diameter / 2, 1), h = image.size(2), w = image.size(3);
  if (radius >= h || radius >= w) return {};
  const double color = -0.5 / (sigma_color * sigma_color), space = -0.5 / (sigma_space * sigma_space);
  const at::Tensor padded = at::reflection_pad2d(image, {radius, radius, radius, radius});
  at::Tensor sum = at::zeros_like(image), weights = at::zeros({image.size(0), 1, h, w}, image.options());
  for (int64_t i = -radius; i <= radius; ++i) {
    for (int64_t j = -radius; j <= radius; ++j) {
      const double distance = std::sqrt(static_cast<double>(i * i + j * j));
      if (distance > static_cast<double>(radius)) continue;
      const at::Tensor neighbour = padded.slice(2, radius + i, radius + i + h).slice(3, radius + j, radius + j + w);
      at::Tensor difference = (neighbour - image).abs_();
      if (image.size(1) > 1) difference = difference.sum(1, /*keepdim=*/true);
      const at::Tensor weight = difference.square_().mul_(color).exp_().mul_(std::exp(distance * distance * space));
      sum.addcmul_(neighbour, weight);
      weights.add_(weight);
    }
  }
  return sum.div_(weights).clamp_(0, 1);
}

// OpenCV's CLAHE on 16-bit levels (cv::CLAHE::apply on CV_16UC1, 65536
// bins) as tensor operations, to the same levels: int32 [B, H, W] in
// [0, 65535] in and out. OpenCV's rules, kept: an image whose sides are not
// both multiples of `tiles` is extended down and right by tiles - (side %
// tiles) (reflect-101) before its tiles are cut, so a side that divides
// gets `tiles` more; clip limit int(clip_limit x tile area / 65536), at
// least 1; what is clipped is spread evenly over the bins and its residual
// one bin in every max(65536 / residual, 1) from 0; the LUT is the rounded
// float product of the running count and 65535 / area; each pixel is the
// rounded bilinear mix of its four nearest tiles' LUTs, in OpenCV's float
// order (one operation a tensor op, so no fused multiply-add reorders it).
// Histograms are not built bin by bin (65536 a tile): each tile's levels
// are sorted and each pixel looks up the running count below its level
// (searchsorted), so memory follows the pixels, not tiles x 65536.
at::Tensor clahe_levels(const at::Tensor& levels, double clip_limit, int tiles) {
  constexpr int64_t kBins = 65536;
  const int64_t batch = levels.size(0), h = levels.size(1), w = levels.size(2), count = int64_t{tiles} * tiles;
  const bool divides = h % tiles == 0 && w % tiles == 0;
  const int64_t padded_h = divides ? h : h + tiles - h % tiles, padded_w = divides ? w : w + tiles - w % tiles;
  const int64_t tile_h = padded_h / tiles, tile_w = padded_w / tiles, area = tile_h * tile_w;
  const auto longs = levels.options().dtype(at::kLong);
  auto host_indices = [&](int64_t n, int64_t len) {
    std::vector<int64_t> index(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      index[static_cast<std::size_t>(i)] =
          cv::borderInterpolate(static_cast<int>(i), static_cast<int>(len), cv::BORDER_REFLECT_101);
    return at::tensor(index, at::kLong).to(levels.device());
  };
  const at::Tensor value = levels.to(at::kLong);
  at::Tensor extended = value;
  if (!divides) extended = value.index_select(1, host_indices(padded_h, h)).index_select(2, host_indices(padded_w, w));
  // Each padded pixel's key: (image, tile) x 65536 + its level.
  const at::Tensor tile_of = at::arange(padded_h, longs).div(tile_h, "floor").view({padded_h, 1}) * tiles +
                             at::arange(padded_w, longs).div(tile_w, "floor").view({1, padded_w});
  const at::Tensor owner = at::arange(batch, longs).view({batch, 1, 1}) * count + tile_of;
  const at::Tensor keys = std::get<0>(at::sort((owner * kBins + extended).flatten()));
  const auto [distinct, unused, counts] = at::unique_consecutive(keys, false, true);
  const at::Tensor tile = distinct.div(kBins, "floor");
  const int64_t clip = clip_limit > 0 ? std::max<int64_t>(static_cast<int>(clip_limit * area / kBins), 1) : INT64_MAX;
  const at::Tensor kept = counts.clamp_max(clip);
  // Sums over each tile's keys as differences of running sums at the tiles'
  // first keys (every tile has one): no atomic adds, which a thousand tiles
  // of a batch would queue on.
  const at::Tensor first = at::searchsorted(distinct, at::arange(batch * count, longs) * kBins);
  const at::Tensor last = at::cat({first.narrow(0, 1, batch * count - 1), at::full({1}, distinct.numel(), longs)});
  auto running_sum = [&](const at::Tensor& x) { return at::cat({at::zeros({1}, longs), x.cumsum(0)}); };
  const at::Tensor kept_sum = running_sum(kept), clipped_sum = running_sum(counts - kept);
  const at::Tensor excess = clipped_sum.index_select(0, last) - clipped_sum.index_select(0, first);
  const at::Tensor spread = excess.div(kBins, "floor"), residual = excess - spread * kBins;
  const at::Tensor step = at::full_like(residual, kBins).div(residual.clamp_min(1), "floor").clamp_min(1);
  // The kept counts up to each distinct level, within its tile.
  const at::Tensor running =
      kept_sum.narrow(0, 1, distinct.numel()) - kept_sum.index_select(0, first.index_select(0, tile));
  const float lut_scale = static_cast<float>(kBins - 1) / static_cast<float>(area);
  // OpenCV's LUT of tile `owners` (one per pixel) at each pixel's level.
  auto lut = [&](const at::Tensor& owners) {
    const at::Tensor query = owners * kBins + value;
    const at::Tensor at_or_below = at::searchsorted(distinct, query, false, /*right=*/true) - 1;
    const at::Tensor safe = at_or_below.clamp_min(0).flatten();
    const at::Tensor hit = at_or_below.ge(0) & tile.index_select(0, safe).view_as(query).eq(owners);
    const at::Tensor below = at::where(hit, running.index_select(0, safe).view_as(query), 0);
    const at::Tensor flat = owners.flatten();
    const at::Tensor r = residual.index_select(0, flat).view_as(query);
    const at::Tensor extra =
        at::where(r.gt(0), at::minimum(r, value.div(step.index_select(0, flat).view_as(query), "floor") + 1), 0);
    const at::Tensor sum = below + (value + 1) * spread.index_select(0, flat).view_as(query) + extra;
    return (sum.to(at::kFloat) * lut_scale).round_().clamp_(0, kBins - 1);
  };
  // OpenCV's interpolation weights and tiles, computed as it does in float.
  struct Axis {
    at::Tensor first, second, weight, rest;  // tiles t1, t2; weights of t2 and t1
  };
  auto axis = [&](int64_t n, int64_t size) {
    std::vector<int64_t> t1(static_cast<std::size_t>(n)), t2(static_cast<std::size_t>(n));
    std::vector<float> a(static_cast<std::size_t>(n)), a1(static_cast<std::size_t>(n));
    const float inv = 1.0f / static_cast<float>(size);
    for (int64_t i = 0; i < n; ++i) {
      const float f = static_cast<float>(i) * inv - 0.5f;
      const int first = static_cast<int>(std::floor(f));
      const auto k = static_cast<std::size_t>(i);
      a[k] = f - static_cast<float>(first);
      a1[k] = 1.0f - a[k];
      t1[k] = std::max(first, 0);
      t2[k] = std::min(first + 1, tiles - 1);
    }
    const auto device = levels.device();
    return Axis{at::tensor(t1, at::kLong).to(device), at::tensor(t2, at::kLong).to(device),
                at::tensor(a, at::kFloat).to(device), at::tensor(a1, at::kFloat).to(device)};
  };
  const Axis across = axis(w, tile_w), down = axis(h, tile_h);
  const at::Tensor image = at::arange(batch, longs).view({batch, 1, 1}) * count;
  const at::Tensor row1 = image + down.first.view({1, h, 1}) * tiles,
                   row2 = image + down.second.view({1, h, 1}) * tiles;
  const at::Tensor col1 = across.first.view({1, 1, w}), col2 = across.second.view({1, 1, w});
  const at::Tensor xa = across.weight.view({1, 1, w}), xa1 = across.rest.view({1, 1, w});
  const at::Tensor ya = down.weight.view({1, h, 1}), ya1 = down.rest.view({1, h, 1});
  // (lut11 xa1 + lut12 xa) ya1 + (lut21 xa1 + lut22 xa) ya, left to right.
  const at::Tensor top = at::mul(at::add(at::mul(lut(row1 + col1), xa1), at::mul(lut(row1 + col2), xa)), ya1);
  const at::Tensor bottom = at::mul(at::add(at::mul(lut(row2 + col1), xa1), at::mul(lut(row2 + col2), xa)), ya);
  return at::add(top, bottom).round_().clamp_(0, kBins - 1).to(at::kInt);
}

// OpenCV builds its Lab tables on its first Lab conversion without a lock
// (initLabTabs, 0.1 s): two threads converting at once for the first time
// both build them, and one may read tables while the other refills them.
// LeakSanitizer caught the second set of tables leaking when the bands of
// rows below made the process's first conversions in parallel. Built once
// here, on one thread, before any of the plugin's conversions (CLAHE nodes
// on parallel jobs wait for the first).
void lab_tables_ready() {
  static std::once_flag once;
  std::call_once(once, [] {
    cv::Mat lab;
    cv::cvtColor(cv::Mat(1, 1, CV_32FC3, cv::Scalar::all(0.5)), lab, cv::COLOR_RGB2Lab);
  });
}

// CLAHE off the CPU: the 16-bit equalisation (where OpenCV spends three
// quarters of its time, 65536-bin histograms a tile) as clahe_levels on the
// device, with OpenCV's conversions to levels and back (convertTo: the
// float product, rounded half to even). A colour image's Lab conversions
// stay OpenCV's, on the host (its float Lab comes from interpolated tables,
// not reproduced here): the image goes down, its L comes up, the
// equalised L goes down and the RGB made from it comes up. The same result
// as the CPU path, to the bit.
at::Tensor clahe_on_device(const at::Tensor& image, double clip_limit, int tiles, int threads) {
  const int64_t batch = image.size(0), h = image.size(2), w = image.size(3);
  auto equalise = [&](const at::Tensor& values, double up, double down) {  // values x up as levels, back x down
    const at::Tensor levels = (values * up).round_().clamp_(0, 65535).to(at::kInt);
    return clahe_levels(levels, clip_limit, tiles).to(at::kFloat) * static_cast<double>(static_cast<float>(down));
  };
  if (image.size(1) == 1) return equalise(image.squeeze(1), 65535.0, 1.0 / 65535.0).unsqueeze(1);
  // Each image's conversions in bands of rows on the pool: cvtColor splits
  // a 512 x 512 image into only 4 stripes (one per 65536 pixels), so on 16
  // cores it left 12 idle.
  use_threads(threads);  // for what cvtColor spreads itself (one band when the run has one thread)
  auto in_bands = [&](int64_t rows, const std::function<void(const cv::Range&)>& fn) {
    parallel_for(0, rows, 8,
                 [&](int64_t begin, int64_t end) { fn(cv::Range(static_cast<int>(begin), static_cast<int>(end))); });
  };
  // The host keeps each image's Lab between the two trips: a GiB of them at
  // a time, the batch in parts above that.
  const int64_t part = std::max<int64_t>(1, (int64_t{1} << 30) / (h * w * 3 * int64_t{sizeof(float)}));
  auto colour = [&](const at::Tensor& images) {
    std::vector<cv::Mat> lab(static_cast<std::size_t>(images.size(0)));
    std::size_t next = 0;
    const at::Tensor interleaved = images.clamp(0, 1).permute({0, 2, 3, 1}).contiguous();  // clipped, as on the CPU
    const at::Tensor lightness = on_host(interleaved, 1, h, w, [&](const at::Tensor& src, at::Tensor& dst) {
      for (int64_t b = 0; b < src.size(0); ++b, ++next) {
        const cv::Mat rgb(static_cast<int>(h), static_cast<int>(w), CV_32FC3, src[b].data_ptr<float>());
        const cv::Mat l = plane_view(dst, b, 0);
        cv::Mat& lab_image = lab[next];
        lab_image.create(rgb.size(), CV_32FC3);
        in_bands(h, [&](const cv::Range& rows) {
          cv::Mat lab_rows = lab_image.rowRange(rows), l_rows = l.rowRange(rows);
          cv::cvtColor(rgb.rowRange(rows), lab_rows, cv::COLOR_RGB2Lab);
          cv::extractChannel(lab_rows, l_rows, 0);
        });
      }
    });
    const at::Tensor equalised = equalise(lightness.squeeze(1), 65535.0 / 100.0, 100.0 / 65535.0).unsqueeze(1);
    next = 0;
    const at::Tensor out = on_host(equalised, h, w, 3, [&](const at::Tensor& src, at::Tensor& dst) {
      for (int64_t b = 0; b < src.size(0); ++b, ++next) {
        const cv::Mat l = plane_view(src, b, 0),
                      rgb(static_cast<int>(h), static_cast<int>(w), CV_32FC3, dst[b].data_ptr<float>());
        in_bands(h, [&](const cv::Range& rows) {
          cv::Mat lab_rows = lab[next].rowRange(rows), rgb_rows = rgb.rowRange(rows);
          cv::insertChannel(l.rowRange(rows), lab_rows, 0);
          cv::cvtColor(lab_rows, rgb_rows, cv::COLOR_Lab2RGB);
        });
      }
    });
    return out.permute({0, 3, 1, 2}).clamp(0, 1);
  };
  if (batch <= part) return colour(image);
  at::Tensor result = at::empty_like(image, at::MemoryFormat::Contiguous);
  for (int64_t b = 0; b < batch; b += part) {
    const int64_t n = std::min(part, batch - b);
    result.narrow(0, b, n).copy_(colour(image.narrow(0, b, n)));
  }
  return result;
}

// OpenCV's Canny (3x3 aperture, L1 gradient) as tensor operations on a grey
// batch [B, 1, H, W]: the 8-bit luma (convertTo's rounding); Sobel with a
// replicated border; non-maximum suppression with OpenCV's fixed-point
// direction tests (tan 22.5 degrees as 13573 / 2^15) and its comparisons
// (strict on one side, not on the other), magnitudes outside the image 0;
// candidates above floor(low), strong above floor(high). Hysteresis keeps
// the candidates 8-connected to a strong one (OpenCV follows them from each
// strong pixel with a stack): components found by hooking each tree's root
// to the smallest root next to any of its pixels, then pointer jumping
// (each parent replaced by its parent's) until every pixel points at its
// root, a few rounds whatever the components' shapes (five or six on a
// batch of noise, where spreading labels one pixel a round took 90); a
// component keeps its pixels when any of them is strong. Edges 1.
at::Tensor canny_edges(const at::Tensor& grey, double low_threshold, double high_threshold) {
  if (low_threshold > high_threshold) std::swap(low_threshold, high_threshold);
  const auto low = static_cast<int>(std::floor(low_threshold)), high = static_cast<int>(std::floor(high_threshold));
  const int64_t h = grey.size(2), w = grey.size(3);
  const at::Tensor bytes = (grey * 255.0).round_().clamp_(0, 255);
  const at::Tensor p = at::replication_pad2d(bytes, {1, 1, 1, 1});
  auto near = [&](const at::Tensor& t, int64_t dy, int64_t dx) {
    return t.slice(2, 1 + dy, 1 + dy + h).slice(3, 1 + dx, 1 + dx + w);
  };
  // Integers below 2^24: exact in float.
  const at::Tensor dx =
      ((near(p, -1, 1) - near(p, -1, -1)) + (near(p, 0, 1) - near(p, 0, -1)) * 2 + (near(p, 1, 1) - near(p, 1, -1)))
          .to(at::kInt);
  const at::Tensor dy =
      ((near(p, 1, -1) - near(p, -1, -1)) + (near(p, 1, 0) - near(p, -1, 0)) * 2 + (near(p, 1, 1) - near(p, -1, 1)))
          .to(at::kInt);
  const at::Tensor ax = dx.abs(), magnitude = ax + dy.abs();
  const at::Tensor m = at::constant_pad_nd(magnitude, {1, 1, 1, 1}, 0);
  const at::Tensor ay = dy.abs() * 32768, tg22 = ax * 13573, tg67 = tg22 + ax * 65536;  // (<< 15, << 16)
  const at::Tensor horizontal = ay.lt(tg22), vertical = ay.gt(tg67);
  const at::Tensor along = magnitude.gt(near(m, 0, -1)) & magnitude.ge(near(m, 0, 1));
  const at::Tensor across = magnitude.gt(near(m, -1, 0)) & magnitude.ge(near(m, 1, 0));
  const at::Tensor opposite = dx.lt(0).ne(dy.lt(0));  // OpenCV's (dx ^ dy) < 0
  const at::Tensor diagonal = at::where(opposite, magnitude.gt(near(m, -1, 1)) & magnitude.gt(near(m, 1, -1)),
                                        magnitude.gt(near(m, -1, -1)) & magnitude.gt(near(m, 1, 1)));
  const at::Tensor candidate = magnitude.gt(low) & at::where(horizontal, along, at::where(vertical, across, diagonal));
  const at::Tensor strong = candidate & magnitude.gt(high);
  // Hysteresis: candidates' components (8-connected), each a tree of
  // pixel indices whose root is its smallest (parent[i] <= i; n: no pixel).
  const int64_t n = candidate.numel();
  const auto longs = grey.options().dtype(at::kLong);
  const at::Tensor self = at::arange(n, longs).view_as(candidate);
  at::Tensor parent = at::cat({at::where(candidate, self, n).flatten(), at::full({1}, n, longs)});
  while (true) {
    // Each pixel's root, then the smallest root among its neighbours (and
    // itself); every root takes the smallest that any of its pixels saw.
    const at::Tensor label = parent.narrow(0, 0, n).view_as(candidate);
    const at::Tensor l = at::constant_pad_nd(label, {1, 1, 1, 1}, n);
    at::Tensor lowest = label;
    for (int64_t y = -1; y <= 1; ++y)
      for (int64_t x = -1; x <= 1; ++x)
        if (y != 0 || x != 0) lowest = at::minimum(lowest, near(l, y, x));
    // Pixels with nothing smaller next to them write their own entry back
    // (where every pixel of a component sent its root's, a million atomic
    // operations would queue on one address).
    const at::Tensor hooks = candidate & lowest.lt(label);
    const at::Tensor target = at::where(hooks, label, self), value = at::where(hooks, lowest, label);
    at::Tensor hooked = parent.clone().scatter_reduce_(0, target.flatten(), value.flatten(), "amin");
    if (at::equal(hooked, parent)) break;  // neighbours share their root: done
    // Pointer jumping until every pixel points at its root.
    for (at::Tensor up = hooked.index_select(0, hooked); !at::equal(up, hooked); up = hooked.index_select(0, hooked))
      hooked = up;
    parent = hooked;
  }
  const at::Tensor label = parent.narrow(0, 0, n).view_as(candidate);
  const at::Tensor kept =
      at::zeros({n + 1}, grey.options().dtype(at::kBool)).index_fill_(0, label.masked_select(strong), true);
  return (candidate & kept.index_select(0, label.flatten()).view_as(label)).to(at::kFloat);
}

}  // namespace

// Also used by Sharpen's reference test through the node.
void register_detail(Registrar& r) {
  {
    NodeDef d = filter("GaussianBlur", "Gaussian Blur", "detail",
                       "Separable Gaussian blur with OpenCV's kernel (size round(8 sigma + 1), odd) and border "
                       "(reflect-101): on the CPU its own separable filter, rows in the cache; on other devices tensor "
                       "operations. sigma 0 returns the input.");
    d.spec.inputs.push_back(InputSpec::Float("sigma", 1.0).range(0, 64).with_step(0.1));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      return {gaussian_blur(in.image("image"), in.number("sigma"), ctx.threads())};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Sharpen", "Sharpen (Unsharp Mask)", "detail",
                       "Unsharp mask: d = image - GaussianBlur(image, radius); out = image + amount d where |d| >= "
                       "threshold, clamped. amount 0 returns the input.");
    d.spec.inputs.push_back(InputSpec::Float("amount", 1.0).range(0, 10).with_step(0.05));
    d.spec.inputs.push_back(InputSpec::Float("radius", 1.0).range(0.1, 32).with_step(0.1).help("sigma of the blur"));
    d.spec.inputs.push_back(InputSpec::Float("threshold", 0.0).range(0, 1).with_step(0.005));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = in.image("image");
      double amount = in.number("amount");
      if (amount == 0) return {image};
      double threshold = in.number("threshold");
      if (cpu_kernels(image)) {
        const double radius = in.number("radius");
        const float a = static_cast<float>(amount), t = static_cast<float>(threshold);
        return {per_plane(image, image.size(2), image.size(3), ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
          thread_local cv::Mat blurred;  // one plane, reused
          cv::GaussianBlur(src, blurred, cv::Size(gaussian_ksize(radius), gaussian_ksize(radius)), radius, radius,
                           cv::BORDER_REFLECT_101);
          if (src.isContinuous()) {
            kernels::unsharp(src.ptr<float>(), blurred.ptr<float>(), dst.ptr<float>(),
                             static_cast<int64_t>(src.total()), a, t);
            return;
          }
          for (int y = 0; y < src.rows; ++y)  // a view's plane: its rows lie apart
            kernels::unsharp(src.ptr<float>(y), blurred.ptr<float>(y), dst.ptr<float>(y), src.cols, a, t);
        })};
      }
      at::Tensor detail = image - gaussian_blur(image, in.number("radius"), ctx.threads());
      if (threshold > 0) detail = detail * detail.abs().ge(threshold);
      return {(image + amount * detail).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("MedianDenoise", "Median Denoise", "detail",
                       "OpenCV's medianBlur on each channel (replicated border): on the CPU OpenCV itself (planes "
                       "of a CPU tensor are used in place, without copies), on other devices the same medians as "
                       "tensor operations. Float images allow sizes 3 and 5.");
    d.spec.inputs.push_back(InputSpec::Choice("size", {"3", "5"}));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = in.image("image");
      int size = std::stoi(in.string("size"));
      if (!cpu_kernels(image)) return {median_filter(image, size)};
      return {per_plane(image, image.size(2), image.size(3), ctx.threads(),
                        [&](const cv::Mat& src, cv::Mat& dst) { cv::medianBlur(src, dst, size); })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("BilateralDenoise", "Bilateral Denoise", "detail",
                       "OpenCV's bilateralFilter (edge-preserving smoothing: neighbours within diameter / 2, "
                       "reflect-101 border, colour distance summed over channels): on the CPU OpenCV itself, on other "
                       "devices the same sums as tensor operations. sigma_color is in units of the [0, 1] value "
                       "range.");
    d.spec.inputs.push_back(InputSpec::Int("diameter", 5).range(1, 25));
    d.spec.inputs.push_back(InputSpec::Float("sigma_color", 0.1).range(0.001, 1).with_step(0.005));
    d.spec.inputs.push_back(InputSpec::Float("sigma_space", 3.0).range(0.1, 50).with_step(0.1));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      int diameter = static_cast<int>(in.integer("diameter"));
      double sc = in.number("sigma_color"), ss = in.number("sigma_space");
      const at::Tensor image = in.image("image");
      if (!cpu_kernels(image))
        if (at::Tensor out = bilateral_filter(image, diameter, sc, ss); out.defined()) return {out};
      return {per_image(image, ctx.threads(),
                        [&](const cv::Mat& src, cv::Mat& dst) { cv::bilateralFilter(src, dst, diameter, sc, ss); })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("CLAHE", "CLAHE", "detail",
                       "Contrast-limited adaptive histogram equalisation, OpenCV's (cv::CLAHE at 16 bits): on the L "
                       "channel of CIE Lab for colour images, on the image itself for grey ones. On the CPU OpenCV "
                       "itself; on other devices the equalisation runs there as tensor operations, to the same "
                       "levels, and a colour image's Lab conversions stay OpenCV's on the host.");
    d.spec.inputs.push_back(InputSpec::Float("clip_limit", 2.0).range(0.1, 40).with_step(0.1));
    d.spec.inputs.push_back(InputSpec::Int("tiles", 8).range(1, 64).help("tiles per side"));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      const at::Tensor& image = in.image("image");
      const double clip_limit = in.number("clip_limit");
      const int tiles = static_cast<int>(in.integer("tiles"));
      if (image.size(1) == 3) lab_tables_ready();
      if (!cpu_kernels(image)) return {clahe_on_device(image, clip_limit, tiles, ctx.threads())};
      auto clahe = cv::createCLAHE(clip_limit, cv::Size(tiles, tiles));
      return {per_image(image, ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
        if (src.channels() == 1) {
          cv::Mat deep, equalised;
          src.convertTo(deep, CV_16U, 65535.0);
          clahe->apply(deep, equalised);
          equalised.convertTo(dst, CV_32F, 1.0 / 65535.0);
          return;
        }
        cv::Mat lab, lightness, deep, equalised, clipped;
        cv::min(cv::max(src, 0.0), 1.0, clipped);
        cv::cvtColor(clipped, lab, cv::COLOR_RGB2Lab);
        cv::extractChannel(lab, lightness, 0);  // L only: a and b stay where they are
        lightness.convertTo(deep, CV_16U, 65535.0 / 100.0);
        clahe->apply(deep, equalised);
        equalised.convertTo(lightness, CV_32F, 100.0 / 65535.0);
        cv::insertChannel(lightness, lab, 0);
        cv::Mat rgb;
        cv::cvtColor(lab, rgb, cv::COLOR_Lab2RGB);
        cv::min(cv::max(rgb, 0.0), 1.0, dst);
      })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("EdgeDetect", "Edge Detect", "detail",
                       "Edges of the luma, one channel out. sobel: |(Sobel x, Sobel y)| / 4 (a unit step gives 1), "
                       "3x3, reflect-101 border, as tensor operations on the device. canny: OpenCV's Canny (3x3, L1 "
                       "gradient) on the 8-bit luma, thresholds in [0, 1], edges 1: on the CPU OpenCV itself, on "
                       "other devices the same edges as tensor operations.");
    d.spec.inputs.push_back(InputSpec::Choice("method", {"sobel", "canny"}));
    d.spec.inputs.push_back(InputSpec::Float("low", 0.1).range(0, 1).with_step(0.01).help("canny only"));
    d.spec.inputs.push_back(InputSpec::Float("high", 0.3).range(0, 1).with_step(0.01).help("canny only"));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = in.image("image");
      const double low = in.number("low") * 255, high = in.number("high") * 255;
      auto canny = [&](const cv::Mat& grey, cv::Mat& dst) {
        cv::Mat bytes, edges;
        grey.convertTo(bytes, CV_8U, 255.0);
        cv::Canny(bytes, edges, low, high, 3, false);
        edges.convertTo(dst, CV_32F, 1.0 / 255.0);
      };
      if (in.string("method") == "canny" && cpu_kernels(image) && image.size(1) == 3) {
        // Image by image, the luma made in the cache just before Canny reads
        // it (a batch of luma first went through memory: 0.87 of OpenCV at
        // 2 threads), its rows on OpenCV's threads, as Canny's.
        use_threads(ctx.threads());
        return {on_host(image, 1, image.size(2), image.size(3), [&](const at::Tensor& src, at::Tensor& dst) {
          const int h = static_cast<int>(src.size(2)), w = static_cast<int>(src.size(3));
          cv::Mat grey(h, w, CV_32F);
          for (int64_t b = 0; b < src.size(0); ++b) {
            const cv::Mat r = plane_view(src, b, 0), g = plane_view(src, b, 1), bl = plane_view(src, b, 2);
            cv::parallel_for_(cv::Range(0, h), [&](const cv::Range& rows) {
              for (int y = rows.start; y < rows.end; ++y)
                kernels::luma(r.ptr<float>(y), g.ptr<float>(y), bl.ptr<float>(y), grey.ptr<float>(y), w);
            });
            cv::Mat edges = plane_view(dst, b, 0);
            canny(grey, edges);
          }
        })};
      }
      at::Tensor grey = luma(image);
      if (in.string("method") == "canny" && !cpu_kernels(grey)) return {canny_edges(grey, low, high)};
      if (in.string("method") == "canny") {
        return {per_plane(grey, grey.size(2), grey.size(3), ctx.threads(), canny)};
      }
      if (grey.size(2) < 2 || grey.size(3) < 2) throw Error("EdgeDetect needs an image of at least 2 x 2 pixels");
      if (cpu_kernels(grey)) {
        return {per_plane(grey, grey.size(2), grey.size(3), ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
          cv::Mat dx, dy;
          cv::Sobel(src, dx, CV_32F, 1, 0, 3);
          cv::Sobel(src, dy, CV_32F, 0, 1, 3);
          cv::magnitude(dx, dy, dst);
          dst *= 0.25;
          cv::min(dst, 1.0, dst);
        })};
      }
      at::Tensor kx = at::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}, grey.options()).view({1, 1, 3, 3});
      at::Tensor ky = kx.transpose(2, 3).contiguous();
      at::Tensor padded = at::reflection_pad2d(grey, {1, 1, 1, 1});
      // conv2d is a correlation, as cv::Sobel's filter is.
      at::Tensor dx = at::conv2d(padded, kx), dy = at::conv2d(padded, ky);
      return {(at::sqrt(dx * dx + dy * dy) / 4.0).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
