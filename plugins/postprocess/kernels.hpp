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

/// out = luma(r, g, b) > t ? 1 : 0 with BT.601 weights.
void threshold_luma(const float* r, const float* g, const float* b, float* out, int64_t n, float t);

/// out[i] = row[n - 1 - i] for i < n: a row mirrored left to right.
void reverse(const float* row, float* out, int64_t n);

/// out[i] = row[index[i]] for i < n: a row of a nearest-neighbour resize.
void gather(const float* row, const int32_t* index, float* out, int64_t n);

/// One output row of a bilinear warp with a constant border (OpenCV's remap
/// with INTER_LINEAR and BORDER_CONSTANT, to the bit), on `planes` planes of
/// h x w at once: each pixel's source position, x32[i] and y32[i] in 1/32 of a
/// pixel (warpAffine's fixed point), and its weights serve every plane.
/// Results are clamped to [0, 1] (float weights may overshoot by an ulp).
void warp_row(const float* const* src, float* const* dst, int planes, int64_t h, int64_t w, const int32_t* x32,
              const int32_t* y32, int64_t n, float fill);

}  // namespace cozy::postprocess::kernels
