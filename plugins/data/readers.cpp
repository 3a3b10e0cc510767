#include "readers.hpp"

#include "image_io.hpp"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

namespace cozy::data {

namespace fs = std::filesystem;

TensorDataset::TensorDataset(at::Tensor images, at::Tensor labels, std::vector<std::string> classes, std::string source)
    : images_(std::move(images)), labels_(std::move(labels)), classes_(std::move(classes)), source_(std::move(source)) {}

std::int64_t TensorDataset::size() const { return images_.size(0); }

std::vector<std::int64_t> TensorDataset::image_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

std::pair<at::Tensor, at::Tensor> TensorDataset::batch(const at::Tensor& indices) const {
  at::Tensor index = indices.to(at::kCPU, at::kLong);
  if (index.numel() > 0 && (index.min().item<int64_t>() < 0 || index.max().item<int64_t>() >= size()))
    throw Error("data set index out of range [0, " + std::to_string(size()) + ")");
  return {images_.index_select(0, index).to(at::kFloat).div_(255.0), labels_.index_select(0, index)};
}

std::shared_ptr<TensorDataset> TensorDataset::select(const at::Tensor& indices, const std::string& what) const {
  return std::make_shared<TensorDataset>(images_.index_select(0, indices), labels_.index_select(0, indices), classes_,
                                         source_ + what);
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

namespace {

// The whole file, decompressed when it is gzip (zlib reads plain files too).
std::string read_file(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error("data file not found: " + file.string());
  gzFile in = gzopen(file.c_str(), "rb");
  if (!in) throw Error("cannot open " + file.string());
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    int n = gzread(in, buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      std::string message = gzerror(in, &code);
      gzclose(in);
      throw Error("corrupt compressed file " + file.string() + ": " + message);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  gzclose(in);
  return bytes;
}

std::uint32_t big_endian(const std::string& bytes, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

std::vector<std::string> numbered_classes(std::int64_t count) {
  std::vector<std::string> names;
  for (std::int64_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace

at::Tensor read_idx(const fs::path& file) {
  std::string bytes = read_file(file);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    throw Error("not an IDX file (bad magic number): " + file.string());
  if (static_cast<unsigned char>(bytes[2]) != 0x08)
    throw Error("IDX file " + file.string() + " holds a type other than unsigned bytes");
  const int dims = static_cast<unsigned char>(bytes[3]);
  if (dims < 1 || dims > 4) throw Error("IDX file " + file.string() + " has " + std::to_string(dims) + " dimensions");
  if (bytes.size() < 4 + 4u * dims) throw Error("IDX file " + file.string() + " is truncated in its header");
  std::vector<int64_t> shape;
  std::size_t count = 1;
  for (int d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes, 4 + 4 * static_cast<std::size_t>(d)));
    count *= static_cast<std::size_t>(shape.back());
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(dims);
  if (bytes.size() != header + count)
    throw Error("IDX file " + file.string() + " is truncated or too long: its header promises " +
                std::to_string(count) + " bytes of data, it has " + std::to_string(bytes.size() - header));
  at::Tensor data = at::empty(shape, at::kByte);
  std::memcpy(data.data_ptr<uint8_t>(), bytes.data() + header, count);
  return data;
}

std::shared_ptr<TensorDataset> read_idx_pair(const fs::path& images_file, const fs::path& labels_file,
                                             std::vector<std::string> classes, const std::string& source) {
  at::Tensor images = read_idx(images_file);
  at::Tensor labels = read_idx(labels_file);
  if (images.dim() == 3) images = images.unsqueeze(1);
  else if (images.dim() == 4) images = images.permute({0, 3, 1, 2}).contiguous();
  else throw Error("IDX images " + images_file.string() + " must have 3 or 4 dimensions");
  if (labels.dim() != 1) throw Error("IDX labels " + labels_file.string() + " must have 1 dimension");
  if (images.size(0) != labels.size(0))
    throw Error(images_file.string() + " has " + std::to_string(images.size(0)) + " images but " +
                labels_file.string() + " has " + std::to_string(labels.size(0)) + " labels");
  at::Tensor long_labels = labels.to(at::kLong);
  int64_t top = labels.numel() ? long_labels.max().item<int64_t>() + 1 : 0;
  if (classes.empty()) classes = numbered_classes(top);
  if (top > static_cast<int64_t>(classes.size()))
    throw Error(labels_file.string() + " has label " + std::to_string(top - 1) + " but only " +
                std::to_string(classes.size()) + " class names");
  return std::make_shared<TensorDataset>(images, long_labels, std::move(classes), source);
}

std::shared_ptr<TensorDataset> read_cifar10(const std::vector<fs::path>& files) {
  constexpr std::size_t kRecord = 1 + 3 * 32 * 32;
  std::vector<at::Tensor> images, labels;
  for (const auto& file : files) {
    std::string bytes = read_file(file);
    if (bytes.empty() || bytes.size() % kRecord != 0)
      throw Error("not a CIFAR-10 binary batch (size " + std::to_string(bytes.size()) + " is not a multiple of " +
                  std::to_string(kRecord) + "): " + file.string());
    const int64_t n = static_cast<int64_t>(bytes.size() / kRecord);
    at::Tensor raw = at::empty({n, static_cast<int64_t>(kRecord)}, at::kByte);
    std::memcpy(raw.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    at::Tensor label = raw.select(1, 0).to(at::kLong);
    if (n && label.max().item<int64_t>() > 9) throw Error("CIFAR-10 label above 9 in " + file.string());
    labels.push_back(label);
    images.push_back(raw.narrow(1, 1, kRecord - 1).reshape({n, 3, 32, 32}));
  }
  if (files.empty()) throw Error("no CIFAR-10 batch files");
  std::vector<std::string> classes = {"airplane", "automobile", "bird", "cat", "deer",
                                      "dog",      "frog",       "horse", "ship", "truck"};
  fs::path meta = files.front().parent_path() / "batches.meta.txt";
  if (std::ifstream names(meta); names) {
    std::vector<std::string> read;
    for (std::string line; std::getline(names, line);)
      if (!line.empty()) read.push_back(line);
    if (read.size() == 10) classes = read;
  }
  return std::make_shared<TensorDataset>(at::cat(images).contiguous(), at::cat(labels), classes,
                                         "CIFAR-10 " + files.front().parent_path().string());
}

std::shared_ptr<TensorDataset> read_image_folder(const fs::path& folder, int size, bool grey) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error("image folder not found: " + folder.string());
  std::vector<fs::path> class_dirs;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_directory()) class_dirs.push_back(entry.path());
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty()) throw Error("image folder " + folder.string() + " has no class subfolders");
  std::vector<std::string> classes;
  std::vector<at::Tensor> images;
  std::vector<int64_t> labels;
  for (std::size_t c = 0; c < class_dirs.size(); ++c) {
    classes.push_back(class_dirs[c].filename().string());
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(class_dirs[c])) {
      std::string ext = entry.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      at::Tensor image = image_io::read_image(file).image;  // [1, C, H, W] float
      if (grey && image.size(1) == 3) {
        image = (image.select(1, 0) * 0.299 + image.select(1, 1) * 0.587 + image.select(1, 2) * 0.114).unsqueeze(1);
      } else if (!grey && image.size(1) == 1) {
        image = image.expand({-1, 3, -1, -1});
      }
      if (size > 0 && (image.size(2) != size || image.size(3) != size))
        image = at::upsample_bilinear2d(image.contiguous(), {size, size}, false);
      if (!images.empty() && image.sizes() != images.front().sizes())
        throw Error(file.string() + " is " + std::to_string(image.size(3)) + " x " + std::to_string(image.size(2)) +
                    ", unlike the images before it; set size to resize them all");
      images.push_back(image.mul(255).round_().clamp_(0, 255).to(at::kByte));
      labels.push_back(static_cast<int64_t>(c));
    }
  }
  if (images.empty()) throw Error("image folder " + folder.string() + " has no PNG or JPEG images");
  return std::make_shared<TensorDataset>(at::cat(images).contiguous(), at::tensor(labels, at::kLong), classes,
                                         "image folder " + folder.string());
}

std::shared_ptr<TensorDataset> choose(const std::shared_ptr<TensorDataset>& all, const std::string& filter,
                                      std::int64_t seed, std::int64_t limit) {
  const auto& names = all->class_names();
  std::vector<bool> wanted(names.size(), filter.empty());
  std::string what;
  if (!filter.empty()) {
    std::stringstream items(filter);
    for (std::string item; std::getline(items, item, ',');) {
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      auto named = std::find(names.begin(), names.end(), item);
      std::size_t index = static_cast<std::size_t>(named - names.begin());
      if (named == names.end()) {
        bool number = !item.empty() && item.find_first_not_of("0123456789") == std::string::npos;
        index = number ? std::stoul(item) : names.size();
      }
      if (index >= names.size()) {
        std::string valid;
        for (std::size_t i = 0; i < names.size(); ++i) valid += (i ? ", " : "") + std::to_string(i) + " " + names[i];
        throw Error("unknown class '" + item + "'; classes: " + valid);
      }
      wanted[index] = true;
    }
    what += ", classes " + filter;
  }
  std::vector<int64_t> keep;
  at::Tensor labels = all->labels();
  const int64_t* label = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (wanted[static_cast<std::size_t>(label[i])]) keep.push_back(i);
  if (seed >= 0) {
    // Fisher-Yates with a named engine: the same order on every platform.
    std::mt19937_64 engine(static_cast<std::uint64_t>(seed));
    for (std::size_t i = keep.size(); i > 1; --i) std::swap(keep[i - 1], keep[engine() % i]);
    what += ", shuffled with seed " + std::to_string(seed);
  }
  if (limit > 0 && static_cast<std::size_t>(limit) < keep.size()) {
    keep.resize(static_cast<std::size_t>(limit));
    what += ", first " + std::to_string(limit);
  }
  if (keep.empty()) throw Error("no examples left after choosing classes " + filter);
  if (what.empty() && static_cast<int64_t>(keep.size()) == all->size()) return all;
  return all->select(at::tensor(keep, at::kLong), what);
}

}  // namespace cozy::data
