#include "image_io.hpp"

#include <cozy/error.hpp>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cozy::image_io {

namespace {
double scale_of(int depth) {
  switch (depth) {
    case CV_8U: return 1.0 / 255.0;
    case CV_16U: return 1.0 / 65535.0;
    case CV_32F: return 1.0;
    default: throw Error("unsupported pixel depth (expected 8 or 16 bit integers, or 32 bit floats)");
  }
}
}  // namespace

at::Tensor mat_to_tensor(const cv::Mat& mat_in) {
  cv::Mat mat = mat_in;
  if (mat.channels() == 4) cv::cvtColor(mat, mat, cv::COLOR_BGRA2BGR);
  if (mat.channels() == 3) cv::cvtColor(mat, mat, cv::COLOR_BGR2RGB);
  if (mat.channels() != 1 && mat.channels() != 3)
    throw Error("unsupported channel count " + std::to_string(mat.channels()));
  cv::Mat floats;
  mat.convertTo(floats, CV_32F, scale_of(mat.depth()));
  if (!floats.isContinuous()) floats = floats.clone();
  const int64_t h = floats.rows, w = floats.cols, c = floats.channels();
  at::Tensor hwc = at::from_blob(floats.data, {h, w, c}, at::kFloat).clone();
  return hwc.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

cv::Mat tensor_to_mat(const at::Tensor& chw_in, int cv_depth) {
  if (chw_in.dim() != 3 || (chw_in.size(0) != 1 && chw_in.size(0) != 3 && chw_in.size(0) != 4))
    throw Error("expected an image [C, H, W] with C = 1, 3 or 4");
  at::Tensor hwc = chw_in.detach().to(at::kCPU, at::kFloat).clamp(0, 1).permute({1, 2, 0}).contiguous();
  const int h = static_cast<int>(hwc.size(0)), w = static_cast<int>(hwc.size(1)), c = static_cast<int>(hwc.size(2));
  cv::Mat floats(h, w, CV_MAKETYPE(CV_32F, c), hwc.data_ptr<float>());
  cv::Mat out;
  double scale = cv_depth == CV_8U ? 255.0 : cv_depth == CV_16U ? 65535.0 : 1.0;
  floats.convertTo(out, cv_depth, scale);  // rounds to nearest and saturates
  if (c == 3) cv::cvtColor(out, out, cv::COLOR_RGB2BGR);
  if (c == 4) cv::cvtColor(out, out, cv::COLOR_RGBA2BGRA);
  return out;
}

LoadedImage read_image(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw Error("image file not found: " + file.string());
  cv::Mat mat = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
  if (mat.empty()) throw Error("cannot read image (not a PNG, JPEG or other format OpenCV knows, or corrupt): " + file.string());
  LoadedImage loaded;
  loaded.bit_depth = mat.depth() == CV_16U ? 16 : 8;
  if (mat.channels() == 4) {
    cv::Mat alpha;
    cv::extractChannel(mat, alpha, 3);
    loaded.alpha = mat_to_tensor(alpha);
  }
  loaded.image = mat_to_tensor(mat);
  return loaded;
}

void write_png(const at::Tensor& chw, const std::filesystem::path& file, int bit_depth) {
  cv::Mat mat = tensor_to_mat(chw, bit_depth == 16 ? CV_16U : CV_8U);
  if (!cv::imwrite(file.string(), mat, {cv::IMWRITE_PNG_COMPRESSION, 3}))
    throw Error("cannot write PNG " + file.string());
}

}  // namespace cozy::image_io
