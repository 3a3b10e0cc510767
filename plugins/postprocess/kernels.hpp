// The CPU kernels of the post-process filters that are not one line in a
// map_pixels loop: plain functions over restrict pointers, each built twice
// on x86-64 (for AVX2 + FMA and for the baseline) and picked when the library
// loads, as OpenCV dispatches its own loops. The build's baseline (SSE2)
// leaves half of an AVX2 core unused in compute-bound loops such as HueShift.
#pragma once

#include <cstdint>

namespace cozy::postprocess::kernels {

/// HSV hue rotation of n pixels of three planes by `shift` degrees in
/// [0, 360), in OpenCV's float HSV convention; inputs clamped to [0, 1].
void hue_shift(const float* r, const float* g, const float* b, float* r_out, float* g_out, float* b_out, int64_t n,
               float shift);

/// Unsharp mask: d = x - blurred; out = clamp(x + amount d) where |d| >= threshold, else x.
void unsharp(const float* x, const float* blurred, float* out, int64_t n, float amount, float threshold);

/// out = x > t ? 1 : 0.
void threshold(const float* x, float* out, int64_t n, float t);

/// out = 0.299 r + 0.587 g + 0.114 b: BT.601 luma, as OpenCV's RGB2GRAY.
void luma(const float* r, const float* g, const float* b, float* out, int64_t n);

/// Sepia of n pixels: s_c = clamp01(sum over k of m[3 c + k] x_k), out_c =
/// clamp01(x_c + strength (s_c - x_c)); one pass for the three outputs.
/// The plugin's own loops (map_pixels') are built for the baseline only:
/// this one, in the AVX2 build, runs at memory's speed (Sepia 0.94-0.95 of
/// OpenCV as three SSE2 loops on a Zen 5).
void sepia(const float* r, const float* g, const float* b, float* r_out, float* g_out, float* b_out, int64_t n,
           const float* m, float strength);

/// out = luma(r, g, b) > t ? 1 : 0 with BT.601 weights.
void threshold_luma(const float* r, const float* g, const float* b, float* out, int64_t n, float t);

/// out = min(1, max(0, x))^p for p > 0, within 2e-7 of std::pow (every 7th
/// float in [0, 1], p from 0.1 to 100): its own log2 and exp2, in AVX2 and
/// FMA where the CPU has them (Gamma 2.2, bench_filters, 1 thread: 0.93 of
/// OpenCV with cv::pow per plane, 1.78-2.8 with this).
void power(const float* x, float* out, int64_t n, float p);

/// Rows [y_begin, y_end) of a separable symmetric filter of an h x w plane
/// (rows src_stride and dst_stride floats apart) with weights k[0] (the
/// centre) to k[r], reflect-101 borders (r < h and r < w), clamped to [0, 1]:
/// each source row is filtered along itself into a ring of 2r + 1 rows in
/// the cache, and each output row summed down the ring. For GaussianBlur,
/// with OpenCV's kernel: its sums in another order, within 1e-6.
void symmetric_filter(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t h, int64_t w,
                      const float* k, int r, int64_t y_begin, int64_t y_end);

/// out[i] = row[i] for i < n. For the rows that geometry filters move: a
/// vector loop. glibc's memcpy takes `rep movsb` from 2 KiB on (a 512-pixel
/// row), which a Zen 3 ran a fifth slower, and which a Zen 5 (2 cores)
/// ran slower for Flip's rows (Pad's went faster: pad_plane).
void copy(const float* row, float* out, int64_t n);
/// The same copy by `rep movsb` (x86-64; the loop elsewhere).
void copy_by_string_move(const float* row, float* out, int64_t n);

/// out[i] = row[n - 1 - i] for i < n: a row mirrored left to right.
void reverse(const float* row, float* out, int64_t n);

/// reverse with non-temporal stores, past the caches: for outputs larger
/// than the last-level cache (streams()), which would leave it before
/// anything read them, they save the read of each line before its write
/// (one run each way, 1 thread, a Zen 3: Flip 1.09-1.20 of
/// OpenCV cached, 2.16-2.25 streamed; a Zen 5 (2 cores) 2.05-2.36 against
/// 1.18-1.61). Streaming the output of map_pixels' filters through a
/// buffer made them slower (Invert 1.13 -> 0.93): not done there. Call
/// stream_fence() after a thread's last streamed row.
void stream_reverse(const float* row, float* out, int64_t n);
void stream_fence();

/// out[i] = row[i] for i < n, past the caches for the 64-byte lines that
/// lie wholly inside out; the partial lines at either end (which a padded
/// row's borders, or the next row, share) take plain stores: a line written
/// both ways is slow (measured: 4.7 ms a batch of Pad against 3.6). Call
/// stream_fence() after a thread's last row.
void stream_lines(const float* row, float* out, int64_t n);

/// Pad's modes: a constant, the edge pixel, the row mirrored about its edge
/// pixel (OpenCV's BORDER_REFLECT_101; left and right narrower than w).
inline constexpr int kPadConstant = 0, kPadReplicate = 1, kPadReflect101 = 2;

/// Rows [y_begin, y_end) of a padded plane (rows of left + w + right
/// floats, contiguous, from dst): output row y is source row y - top (rows
/// src_stride floats apart, h of them) or, outside them, the row the mode
/// gives (the constant, the edge row, the row mirrored about the edge row;
/// top and bottom narrower than h), each with its borders: the constant,
/// the edge pixel, or the row mirrored about it (kPad* modes; left and right
/// narrower than w). One call a band of rows, its loops together: a call
/// for each row and for each of its three parts measured 0.80-0.91 of
/// OpenCV, bands 0.87-0.96 (1 thread). A view's rows (src_stride
/// above w) are prefetched two rows ahead, as the row loops do (common.hpp's
/// kPrefetchRows). With `stream`, the rows' copies go past the caches
/// (stream_lines; fenced before it returns), else they are copied by `rep
/// movsb` where the CPU runs that fast (see fast_string_moves in
/// kernels.cpp). On a Zen 5 (2 cores), 16 images of 512 x 512 padded by 16
/// (a 57 MB output), 1 thread: the loop 0.86-0.90 of OpenCV, streamed
/// 1.20-1.35; earlier ways of streaming Pad, its borders streamed too, had
/// lost here.
void pad_plane(const float* src, int64_t src_stride, int64_t h, int64_t w, float* dst, int64_t top, int64_t left,
               int64_t right, int mode, float value, int64_t y_begin, int64_t y_end, bool stream);

/// True when an output of `bytes` is larger than the last-level cache
/// (never with COZY_POSTPROCESS_NO_STREAMING set, to compare both ways;
/// above COZY_POSTPROCESS_STREAM_FROM bytes where that is set, read on each
/// call: the tests stream small images with it).
bool streams(int64_t bytes);

/// out[c][i] = rows[c][index[i]] for i < n and each of `planes` planes: a row
/// of a nearest-neighbour resize. Three planes go together, one index for
/// three reads (three streams from memory at once, as OpenCV's interleaved
/// pixels are read): half as fast again as a plane at a time here.
void gather(const float* const* rows, const int32_t* index, float* const* out, int planes, int64_t n);

/// One output row of a bilinear warp with a constant border (OpenCV's remap
/// with INTER_LINEAR and BORDER_CONSTANT, to the bit), on `planes` planes of
/// h x w at once, their rows `stride` floats apart (w for a contiguous
/// plane): each pixel's source position, x32[i] and y32[i] in 1/32 of a
/// pixel (warpAffine's fixed point), and its weights serve every plane.
/// Results are clamped to [0, 1] (float weights may overshoot by an ulp).
void warp_row(const float* const* src, float* const* dst, int planes, int64_t h, int64_t w, int64_t stride,
              const int32_t* x32, const int32_t* y32, int64_t n, float fill);

/// The same warp on three planes interleaved as OpenCV holds them (see
/// interleave_row), to the same bits: a pixel's four taps are four 16-byte
/// loads and one sum of four products for its three planes, where warp_row
/// makes twelve loads, three sums, and (in its AVX2 build, which emulates a
/// gather) extracts each offset from a vector register. Written to
/// dst[0..2][i]. `image` points at the bordered image's corner, `pitch`
/// floats a row; both keep each pixel 16-byte aligned (aligned loads), as
/// interleaved_pitch and a tensor's storage do. Measured with Rotate 30 (bench_filters, 1 thread): planar
/// 0.82-1.01 of OpenCV, interleaved 1.07-1.69, the planes copied to rows of
/// an odd number of cache lines (against rows 2 KiB apart sharing cache sets)
/// 0.65-0.89: the loads, not the cache, made the difference.
void warp_row_interleaved(const float* image, int64_t pitch, int64_t h, int64_t w, const int32_t* x32,
                          const int32_t* y32, int64_t n, float* const* dst, float fill);

/// Floats a row of an interleaved image of width w with its border: 4 floats
/// a pixel, w + 2 pixels, rounded up to an odd number of 64-byte lines (rows
/// near each other then fall in different cache sets).
int64_t interleaved_pitch(int64_t w);

/// A row of the interleaved image: the border pixel (fill, fill, fill, 0),
/// w pixels (r, g, b, 0) from three planes' rows, the border pixel. With
/// `planes` null, a row of the border (all fill).
void interleave_row(const float* const* planes, float* out, int64_t w, float fill);

}  // namespace cozy::postprocess::kernels
