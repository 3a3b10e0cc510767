// ComfyUI's ImageQuantize, which hands each image to PIL: a palette from
// PIL's median cut (Image.quantize(colors), method MEDIANCUT, no k-means),
// then each pixel mapped to it by PIL's RGB-to-P conversion (its 64 x 64 x 64
// colour cache, Floyd-Steinberg when asked), or ComfyUI's ordered (Bayer)
// dither before a plain mapping. Written from PIL's Quant.c, QuantHeap.c,
// Palette.c and Convert.c; every step is integer arithmetic as there, so the
// result is PIL's to the byte.
#include "comfy.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <unordered_map>

namespace cozy::comfy {

namespace {

using Rgb = std::array<uint8_t, 3>;

uint32_t pack(int r, int g, int b) { return static_cast<uint32_t>(r) | static_cast<uint32_t>(g) << 8 | static_cast<uint32_t>(b) << 16; }

// ---------------------------------------------------------------- median cut

struct Entry {
  Rgb v;           // the colour, shifted right by the table's scale
  uint32_t count;  // pixels of that colour
};

struct Box {
  std::vector<int> entries;
  uint32_t pixels = 0;
  int left = -1, right = -1;
};

// PIL's heap of boxes (QuantHeap.c), a max-heap on the pixel count, with its
// exact order of equal counts: which box is split next decides the palette.
class BoxHeap {
 public:
  explicit BoxHeap(const std::vector<Box>& boxes) : boxes_(boxes), heap_(1) {}
  void add(int box) {
    heap_.push_back(0);
    std::size_t k = heap_.size() - 1;
    while (k != 1 && compare(box, heap_[k / 2]) > 0) {
      heap_[k] = heap_[k / 2];
      k >>= 1;
    }
    heap_[k] = box;
  }
  bool remove(int& out) {
    if (heap_.size() == 1) return false;
    out = heap_[1];
    const int last = heap_.back();
    heap_.pop_back();
    const std::size_t count = heap_.size() - 1;
    std::size_t k = 1;
    while (k * 2 <= count) {
      std::size_t l = k * 2;
      if (l < count && compare(heap_[l], heap_[l + 1]) < 0) ++l;
      if (compare(last, heap_[l]) > 0) break;
      heap_[k] = heap_[l];
      k = l;
    }
    if (count > 0) heap_[k] = last;
    return true;
  }

 private:
  int compare(int a, int b) const {
    return static_cast<int>(boxes_[a].pixels) - static_cast<int>(boxes_[b].pixels);
  }
  const std::vector<Box>& boxes_;
  std::vector<int> heap_;  // 1-based
};

struct Extent {
  std::array<int, 3> lo, hi;
};

Extent extent(const Box& box, const std::vector<Entry>& entries) {
  Extent e{{255, 255, 255}, {0, 0, 0}};
  for (int i : box.entries)
    for (int a = 0; a < 3; ++a) {
      e.lo[a] = std::min<int>(e.lo[a], entries[i].v[a]);
      e.hi[a] = std::max<int>(e.hi[a], entries[i].v[a]);
    }
  return e;
}

int volume(const Box& box, const std::vector<Entry>& entries) {
  if (box.entries.empty()) return 0;
  Extent e = extent(box, entries);
  return (e.hi[0] - e.lo[0] + 1) * (e.hi[1] - e.lo[1] + 1) * (e.hi[2] - e.lo[2] + 1);
}

// Splits a box along its axis of largest luminance-weighted range, at the
// colour value where half its pixels are reached (that value's colours go
// to the upper half).
void split(std::vector<Box>& boxes, int index, const std::vector<Entry>& entries) {
  const Extent e = extent(boxes[index], entries);
  const int weight[3] = {77, 150, 29};
  int axis = 0, best = (e.hi[0] - e.lo[0]) * weight[0];
  for (int a = 1; a < 3; ++a)
    if (best < (e.hi[a] - e.lo[a]) * weight[a]) best = (e.hi[a] - e.lo[a]) * weight[a], axis = a;
  std::vector<int> sorted = boxes[index].entries;
  std::stable_sort(sorted.begin(), sorted.end(), [&](int a, int b) { return entries[a].v[axis] > entries[b].v[axis]; });
  const std::size_t n = sorted.size();
  const uint64_t total = boxes[index].pixels;
  uint64_t upper = 0;
  std::size_t cut = 0;
  while (cut < n) {
    upper += entries[sorted[cut]].count;
    ++cut;
    if (upper * 2 > total) break;
  }
  if (cut < n) {
    const int value = entries[sorted[cut - 1]].v[axis];
    while (cut < n && entries[sorted[cut]].v[axis] == value) ++cut;
  }
  if (cut == n) {  // nothing below: the lowest value's colours go down
    const int value = entries[sorted[n - 1]].v[axis];
    while (cut > 0 && entries[sorted[cut - 1]].v[axis] == value) --cut;
  }
  Box left, right;
  left.entries.assign(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(cut));
  right.entries.assign(sorted.begin() + static_cast<std::ptrdiff_t>(cut), sorted.end());
  for (int i : left.entries) left.pixels += entries[i].count;
  for (int i : right.entries) right.pixels += entries[i].count;
  boxes.push_back(std::move(left));
  boxes.push_back(std::move(right));
  boxes[index].left = static_cast<int>(boxes.size()) - 2;
  boxes[index].right = static_cast<int>(boxes.size()) - 1;
}

// Image.quantize(colors)'s palette for 8-bit RGB pixels.
std::vector<Rgb> median_cut_palette(const uint8_t* rgb, std::size_t pixels, int colors) {
  // Colours counted; above 65536 of them, every channel loses a bit until
  // there are no more (PIL's hash table does this as it fills).
  std::unordered_map<uint32_t, uint32_t> exact;
  for (std::size_t i = 0; i < pixels; ++i) ++exact[pack(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2])];
  int scale = 0;
  std::unordered_map<uint32_t, uint32_t> counted = exact;
  while (counted.size() > 65536) {
    ++scale;
    counted.clear();
    for (const auto& [key, count] : exact)
      counted[pack((key & 255) >> scale, (key >> 8 & 255) >> scale, (key >> 16) >> scale)] += count;
  }
  std::vector<Entry> entries;
  entries.reserve(counted.size());
  std::unordered_map<uint32_t, int> entry_of;
  for (const auto& [key, count] : counted) {
    entry_of[key] = static_cast<int>(entries.size());
    entries.push_back({{static_cast<uint8_t>(key & 255), static_cast<uint8_t>(key >> 8 & 255), static_cast<uint8_t>(key >> 16)},
                       count});
  }

  std::vector<Box> boxes(1);
  boxes.reserve(2 * static_cast<std::size_t>(colors) + 1);
  for (int i = 0; i < static_cast<int>(entries.size()); ++i) boxes[0].entries.push_back(i);
  boxes[0].pixels = static_cast<uint32_t>(pixels);
  {
    BoxHeap heap(boxes);
    heap.add(0);
    for (int splits = colors - 1; splits > 0; --splits) {
      int box = -1;
      bool found = false;
      while (heap.remove(box))
        if (volume(boxes[box], entries) != 1) {
          found = true;
          break;
        }
      if (!found) break;
      split(boxes, box, entries);
      heap.add(boxes[box].left);
      heap.add(boxes[box].right);
    }
  }

  // The leaves, left first, are the palette's entries: each the rounded
  // mean of the pixels whose (scaled) colour it holds.
  std::vector<int> palette_of(entries.size(), -1);
  int leaves = 0;
  std::function<void(int)> number = [&](int b) {
    if (boxes[b].left >= 0) {
      number(boxes[b].left);
      number(boxes[b].right);
      return;
    }
    if (boxes[b].entries.empty()) return;
    for (int i : boxes[b].entries) palette_of[i] = leaves;
    ++leaves;
  };
  number(0);
  std::vector<std::array<uint32_t, 3>> sum(leaves, {0, 0, 0});  // 32 bits, wrapping, as PIL sums
  std::vector<uint32_t> count(leaves, 0);
  for (std::size_t i = 0; i < pixels; ++i) {
    const uint8_t* p = rgb + 3 * i;
    const int entry = palette_of[entry_of.at(pack(p[0] >> scale, p[1] >> scale, p[2] >> scale))];
    for (int c = 0; c < 3; ++c) sum[entry][c] += p[c];
    ++count[entry];
  }
  std::vector<Rgb> palette(leaves);
  for (int i = 0; i < leaves; ++i)
    for (int c = 0; c < 3; ++c)
      palette[i][c] = static_cast<uint8_t>(static_cast<int>(.5 + static_cast<double>(sum[i][c]) / static_cast<double>(count[i])));
  return palette;
}

// ---------------------------------------------------------------- mapping

// PIL's palette cache: a colour maps to the entry nearest to the corner of
// its 4 x 4 x 4 cell (the first such entry), computed once per cell.
class PaletteCache {
 public:
  explicit PaletteCache(const std::vector<Rgb>& palette) : palette_(palette), cache_(64 * 64 * 64, -1) {}
  int operator()(int r, int g, int b) {
    int& slot = cache_[(r >> 2) + (g >> 2) * 64 + (b >> 2) * 64 * 64];
    if (slot < 0) {
      const int cr = r & ~3, cg = g & ~3, cb = b & ~3;
      unsigned best = ~0u;
      for (std::size_t i = 0; i < palette_.size(); ++i) {
        const int dr = cr - palette_[i][0], dg = cg - palette_[i][1], db = cb - palette_[i][2];
        const unsigned d = static_cast<unsigned>(dr * dr + dg * dg + db * db);
        if (d < best) best = d, slot = static_cast<int>(i);
      }
    }
    return slot;
  }

 private:
  const std::vector<Rgb>& palette_;
  std::vector<int> cache_;
};

int clip8(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

// Convert.c's topalette: plain nearest entries, or Floyd-Steinberg with its
// exact error arithmetic (C's truncating division by 16; the error row is
// kept across rows, and its last slot takes the row's final blue terms).
void map_to_palette(const uint8_t* rgb, int64_t width, int64_t height, const std::vector<Rgb>& palette, bool dither,
                    uint8_t* out) {
  PaletteCache nearest(palette);
  if (!dither) {
    for (int64_t i = 0; i < width * height; ++i) {
      const Rgb& c = palette[nearest(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2])];
      std::copy(c.begin(), c.end(), out + 3 * i);
    }
    return;
  }
  std::vector<int> errors(3 * static_cast<std::size_t>(width + 1), 0);
  for (int64_t y = 0; y < height; ++y) {
    int r = 0, r0 = 0, r1 = 0, g = 0, g0 = 0, g1 = 0, b = 0, b0 = 0, b1 = 0, b2 = 0;
    int* e = errors.data();
    const uint8_t* in = rgb + 3 * y * width;
    uint8_t* o = out + 3 * y * width;
    for (int64_t x = 0; x < width; ++x, in += 3, o += 3, e += 3) {
      r = clip8(in[0] + (r + e[3]) / 16);
      g = clip8(in[1] + (g + e[4]) / 16);
      b = clip8(in[2] + (b + e[5]) / 16);
      const Rgb& c = palette[nearest(r, g, b)];
      std::copy(c.begin(), c.end(), o);
      r -= c[0];
      g -= c[1];
      b -= c[2];
      // Error diffusion as PIL writes it: 3/16 down-left, 5/16 down,
      // 1/16 down-right, 7/16 right (the running value carries it).
      auto spread = [](int& v, int& v0, int& v1, int* slot) {
        const int v2 = v, d2 = v + v;
        v += d2;
        *slot = v + v0;
        v += d2;
        v0 = v + v1;
        v1 = v2;
        v += d2;
      };
      spread(r, r0, r1, &e[0]);
      spread(g, g0, g1, &e[1]);
      const int b_before = b;
      spread(b, b0, b1, &e[2]);
      b2 = b_before;
    }
    e[0] = b0;
    e[1] = b1;
    e[2] = b2;
  }
}

// ComfyUI's normalized_bayer_matrix(n) * spread + 0.5, in float32 as numpy
// computes it.
std::vector<float> bayer_offsets(int order, float spread) {
  std::vector<float> m = {0.0f};
  int size = 1;
  for (int n = 1; (1 << n) <= order; ++n) {
    const float q = static_cast<float>(1 << (2 * n));
    std::vector<float> next(4 * static_cast<std::size_t>(size * size));
    const int s2 = 2 * size;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const float v = q * m[y * size + x];
        next[y * s2 + x] = (v - 1.5f) / q;
        next[y * s2 + x + size] = (v + 0.5f) / q;
        next[(y + size) * s2 + x] = (v + 1.5f) / q;
        next[(y + size) * s2 + x + size] = (v - 0.5f) / q;
      }
    m = std::move(next);
    size = s2;
  }
  for (float& v : m) {
    const float scaled = spread * v;
    v = scaled + 0.5f;
  }
  return m;
}

NodeDef image_quantize() {
  NodeDef d = NodeDef::named("ImageQuantize", "Quantize Image", "image/postprocessing",
                             "Each image reduced to at most `colors` colours, PIL's median-cut palette of it, with "
                             "no dither, Floyd-Steinberg, or an ordered Bayer dither of order 2 to 16: what ComfyUI "
                             "computes, to the byte.");
  d.spec.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Int("colors", 256).range(1, 256).with_step(1),
                   InputSpec::Choice("dither", {"none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"})};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const at::Tensor& image = in.image("image");
    const int colors = static_cast<int>(in.integer("colors"));
    const std::string& dither = in.string("dither");
    // ComfyUI's (image * 255).to(uint8) of each [H, W, 3] image.
    at::Tensor bytes = (as_rgb(image).to(at::kCPU) * 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
    const int64_t batch = bytes.size(0), height = bytes.size(1), width = bytes.size(2);
    at::Tensor result = at::empty_like(bytes);
    for (int64_t i = 0; i < batch; ++i) {
      ctx.check_cancelled();
      const uint8_t* pixels = bytes[i].data_ptr<uint8_t>();
      uint8_t* out = result[i].data_ptr<uint8_t>();
      const std::vector<Rgb> palette = median_cut_palette(pixels, static_cast<std::size_t>(height * width), colors);
      if (dither.rfind("bayer-", 0) == 0) {
        const int order = std::stoi(dither.substr(6));
        const std::vector<float> offsets = bayer_offsets(order, static_cast<float>(2.0 * 256 / static_cast<double>(palette.size())));
        std::vector<uint8_t> shifted(static_cast<std::size_t>(3 * height * width));
        for (int64_t y = 0; y < height; ++y)
          for (int64_t x = 0; x < width; ++x)
            for (int c = 0; c < 3; ++c) {
              const std::size_t k = static_cast<std::size_t>(3 * (y * width + x) + c);
              const float v = static_cast<float>(pixels[k]) + offsets[(y % order) * order + x % order];
              shifted[k] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
            }
        map_to_palette(shifted.data(), width, height, palette, false, out);
      } else {
        map_to_palette(pixels, width, height, palette, dither == "floyd-steinberg", out);
      }
    }
    return {(result.to(at::kFloat) / 255).permute({0, 3, 1, 2}).contiguous().to(image.device())};
  };
  return d;
}

}  // namespace

void register_quantize_node(Registrar& r) { r.add(image_quantize()); }

}  // namespace cozy::comfy
