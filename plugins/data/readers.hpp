// Readers for the data set formats, and the in-memory data set they make.
#pragma once

#include <cozy/dataset.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace cozy::data {

/// Images kept as uint8 [N, C, H, W] (a quarter of the memory of floats),
/// converted to float per batch.
class TensorDataset : public Dataset {
 public:
  TensorDataset(at::Tensor images, at::Tensor labels, std::vector<std::string> classes, std::string source);

  std::int64_t size() const override;
  std::vector<std::int64_t> image_shape() const override;
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::pair<at::Tensor, at::Tensor> batch(const at::Tensor& indices) const override;
  at::Tensor labels() const override { return labels_; }
  std::string describe() const override { return source_; }

  /// A new data set of the examples at `indices`, in that order.
  std::shared_ptr<TensorDataset> select(const at::Tensor& indices, const std::string& what) const;

 private:
  at::Tensor images_;  // uint8 [N, C, H, W]
  at::Tensor labels_;  // int64 [N]
  std::vector<std::string> classes_;
  std::string source_;
};

/// The ten Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_classes();

/// Reads an IDX file (raw or gzip-compressed): the unsigned byte tensor of
/// its dimensions. Throws cozy::Error naming the file on any problem.
at::Tensor read_idx(const std::filesystem::path& file);

/// An IDX pair: images [N, H, W] (or [N, H, W, C]) and labels [N].
std::shared_ptr<TensorDataset> read_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels,
                                             std::vector<std::string> classes, const std::string& source);

/// CIFAR-10's binary batches: records of 1 label byte and 3 x 32 x 32 bytes.
/// `files` are read in order; class names from batches.meta.txt beside them
/// when it exists.
std::shared_ptr<TensorDataset> read_cifar10(const std::vector<std::filesystem::path>& files);

/// One subfolder per class (sorted by name), PNG or JPEG images in each,
/// resized to size x size when size > 0 (else all must share one size).
std::shared_ptr<TensorDataset> read_image_folder(const std::filesystem::path& folder, int size, bool grey);

/// Keeps the examples whose class is in `filter` (comma-separated names or
/// indices; empty keeps all), shuffles them with `seed` (-1: keep order),
/// and keeps the first `limit` (0: all).
std::shared_ptr<TensorDataset> choose(const std::shared_ptr<TensorDataset>& all, const std::string& filter,
                                      std::int64_t seed, std::int64_t limit);

}  // namespace cozy::data
