// Image files <-> IMAGE tensors for the in-tree plugins (OpenCV on the CPU).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>

namespace cv {
class Mat;
}

namespace cozy::image_io {

struct LoadedImage {
  at::Tensor image;                 ///< float32 [1, C, H, W] in [0, 1], C = 1 or 3, RGB
  std::optional<at::Tensor> alpha;  ///< float32 [1, 1, H, W] when the file has alpha
  int bit_depth = 8;
};

/// Reads PNG, JPEG (and whatever else OpenCV reads): 8 or 16 bit, grey,
/// colour or colour with alpha. Throws cozy::Error naming the file.
LoadedImage read_image(const std::filesystem::path& file);

/// Writes one image [C, H, W] (C = 1, 3 or 4 (RGBA), values clamped to [0, 1]) as PNG
/// with 8 or 16 bits per channel. The tensor may live on any device.
void write_png(const at::Tensor& chw, const std::filesystem::path& file, int bit_depth = 8);

/// A cv::Mat (1, 3 or 4 channels; 8U, 16U or 32F; BGR order) as float32
/// [1, C, H, W] in [0, 1], RGB order (alpha dropped).
at::Tensor mat_to_tensor(const cv::Mat& mat);

/// One image [C, H, W] as a cv::Mat of `cv_depth` (CV_8U, CV_16U or CV_32F),
/// BGR order for C = 3, BGRA for C = 4.
cv::Mat tensor_to_mat(const at::Tensor& chw, int cv_depth);

}  // namespace cozy::image_io
