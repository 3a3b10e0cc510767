// Shared by the post-process filters: argument checks, luma, and running
// OpenCV on the planes or images of a batch.
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include <functional>

namespace cozy::postprocess {

/// The IMAGE convention: float32 [B, C, H, W], C = 1 or 3.
inline at::Tensor image_input(const Inputs& in, std::string_view name) {
  const at::Tensor& image = in.tensor(name);
  if (image.dim() != 4 || (image.size(1) != 1 && image.size(1) != 3) || image.scalar_type() != at::kFloat)
    throw Error(std::string(name) + " is not an IMAGE: expected float32 [B, C, H, W] with C = 1 or 3");
  return image;
}

/// The MASK convention: float32 [B, 1, H, W].
inline at::Tensor mask_input(const Inputs& in, std::string_view name) {
  const at::Tensor& mask = in.tensor(name);
  if (mask.dim() != 4 || mask.size(1) != 1 || mask.scalar_type() != at::kFloat)
    throw Error(std::string(name) + " is not a MASK: expected float32 [B, 1, H, W]");
  return mask;
}

/// ITU-R BT.601 luma, as PIL's "L" and OpenCV's RGB2GRAY: [B, 1, H, W].
inline at::Tensor luma(const at::Tensor& image) {
  if (image.size(1) == 1) return image;
  return image.select(1, 0).unsqueeze(1) * 0.299 + image.select(1, 1).unsqueeze(1) * 0.587 +
         image.select(1, 2).unsqueeze(1) * 0.114;
}

/// A [H, W] plane of a contiguous float32 CPU tensor, as a cv::Mat sharing
/// its memory (no copy).
inline cv::Mat plane_view(at::Tensor& t, int64_t b, int64_t c) {
  return cv::Mat(static_cast<int>(t.size(2)), static_cast<int>(t.size(3)), CV_32FC1,
                 t.data_ptr<float>() + (b * t.size(1) + c) * t.size(2) * t.size(3));
}

/// Runs `fn(src_plane, dst_plane)` on every channel plane of every image,
/// writing into a new [B, C, out_h, out_w] tensor. Contiguous CPU tensors are
/// wrapped without copies; others make one trip to the CPU and back.
at::Tensor per_plane(const at::Tensor& image, int64_t out_h, int64_t out_w, int threads,
                     const std::function<void(const cv::Mat&, cv::Mat&)>& fn);

/// Runs `fn(src, dst)` on each image as an interleaved H x W x C cv::Mat
/// (RGB order), for filters that look at all channels at once.
at::Tensor per_image(const at::Tensor& image, int threads, const std::function<void(const cv::Mat&, cv::Mat&)>& fn);

/// RGB [B, 3, H, W] in [0, 1] to HSV with H in [0, 360), S, V in [0, 1]
/// (OpenCV's float convention), and back.
at::Tensor rgb_to_hsv(const at::Tensor& rgb);
at::Tensor hsv_to_rgb(const at::Tensor& hsv);

void register_tone(Registrar& r);
void register_detail(Registrar& r);
void register_geometry(Registrar& r);

/// A NodeDef with the one IMAGE input most filters start with.
NodeDef filter(const char* type, const char* display, const char* category, const char* description);

}  // namespace cozy::postprocess
