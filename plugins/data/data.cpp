// The data plugin: labelled image data sets (DATASET) from Fashion-MNIST,
// IDX files, CIFAR-10 binaries and image folders, and a look at them.
#include "readers.hpp"

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <sstream>

namespace {

using namespace cozy;
namespace fs = std::filesystem;

constexpr double kMaxSeed = 2147483647.0;

// The options every loader shares, in this order after its own.
void add_choice_inputs(NodeSpec& spec) {
  spec.inputs.push_back(
      InputSpec::String("classes").help("comma-separated class names or indices to keep; empty keeps all"));
  spec.inputs.push_back(InputSpec::Int("subset", 0).range(0, 1e9).help("keep the first N (after shuffling); 0: all"));
  spec.inputs.push_back(InputSpec::Int("shuffle_seed", -1).range(-1, kMaxSeed).help("-1: keep the file's order"));
}

Outputs chosen(const std::shared_ptr<data::TensorDataset>& all, const Inputs& in) {
  return {std::static_pointer_cast<Dataset>(
      data::choose(all, in.string("classes"), in.integer("shuffle_seed"), in.integer("subset")))};
}

fs::path under_input(const Context& ctx, const std::string& name) {
  fs::path path(name);
  return path.is_relative() ? ctx.input_dir() / path : path;
}

NodeDef loader(const char* type, const char* display, const char* description) {
  NodeDef d = NodeDef::named(type, display, "data", description);
  d.spec.outputs = {{"DATASET", types::DATASET}};
  return d;
}

void register_nodes(Registrar& r) {
  {
    NodeDef d = loader("LoadFashionMNIST", "Load Fashion-MNIST",
                       "Fashion-MNIST (60,000 training and 10,000 test images, 28 x 28 grey, 10 classes) from "
                       "Debian's dataset-fashion-mnist package, read directly from its gzip IDX files.");
    d.spec.inputs = {InputSpec::Choice("split", {"train", "test"}),
                     InputSpec::String("folder", "/usr/share/datasets/fashion-mnist")};
    add_choice_inputs(d.spec);
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      fs::path folder = under_input(ctx, in.string("folder"));
      std::string prefix = in.string("split") == "train" ? "train" : "t10k";
      auto all = data::read_idx_pair(folder / (prefix + "-images-idx3-ubyte.gz"),
                                     folder / (prefix + "-labels-idx1-ubyte.gz"), data::fashion_mnist_classes(),
                                     "Fashion-MNIST " + in.string("split"));
      return chosen(all, in);
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = loader("LoadIDX", "Load IDX Pair",
                       "An IDX images file ([N, H, W] or [N, H, W, C] unsigned bytes) and its labels file ([N]), "
                       "plain or gzip, as MNIST-style data sets are shipped. Relative names are under the input "
                       "folder.");
    d.spec.inputs = {InputSpec::String("images"), InputSpec::String("labels"),
                     InputSpec::String("class_names").help("comma-separated; empty: 0, 1, 2, ...")};
    add_choice_inputs(d.spec);
    d.spec.pure = false;  // user files can change
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      std::vector<std::string> names;
      std::stringstream list(in.string("class_names"));
      for (std::string name; std::getline(list, name, ',');) names.push_back(name);
      auto all = data::read_idx_pair(under_input(ctx, in.string("images")), under_input(ctx, in.string("labels")),
                                     names, "IDX " + in.string("images"));
      return chosen(all, in);
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = loader("LoadCIFAR10", "Load CIFAR-10",
                       "CIFAR-10's binary version: data_batch_1..5.bin (train) or test_batch.bin (test) in the "
                       "folder, 32 x 32 colour, 10 classes (names from batches.meta.txt when present).");
    d.spec.inputs = {InputSpec::String("folder", "cifar-10-batches-bin"), InputSpec::Choice("split", {"train", "test"})};
    add_choice_inputs(d.spec);
    d.spec.pure = false;
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      fs::path folder = under_input(ctx, in.string("folder"));
      std::vector<fs::path> files;
      if (in.string("split") == "test") {
        files.push_back(folder / "test_batch.bin");
      } else {
        for (int i = 1; i <= 5; ++i) files.push_back(folder / ("data_batch_" + std::to_string(i) + ".bin"));
      }
      return chosen(data::read_cifar10(files), in);
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = loader("LoadImageFolder", "Load Image Folder",
                       "One subfolder per class (sorted names are the classes), PNG or JPEG images in each, read "
                       "with OpenCV; resized to size x size when size > 0, else all must share one size.");
    d.spec.inputs = {InputSpec::String("folder"), InputSpec::Int("size", 0).range(0, 4096),
                     InputSpec::Boolean("grey", false)};
    add_choice_inputs(d.spec);
    d.spec.pure = false;
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      auto all = data::read_image_folder(under_input(ctx, in.string("folder")), static_cast<int>(in.integer("size")),
                                         in.boolean("grey"));
      return chosen(all, in);
    };
    r.add(std::move(d));
  }
  {
    NodeDef d;
    d.spec.class_type = "DatasetImages";
    d.spec.display_name = "Data Set Images";
    d.spec.category = "data";
    d.spec.description = "count images of a data set from index start, as an IMAGE batch on the run's device, and "
                         "their class names (comma-separated).";
    d.spec.inputs = {InputSpec::Link("dataset", types::DATASET), InputSpec::Int("start", 0).range(0, 1e9),
                     InputSpec::Int("count", 16).range(1, 1e7)};
    d.spec.outputs = {{"IMAGE", types::IMAGE}, {"labels", types::STRING}};
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      auto dataset = in.object<Dataset>("dataset");
      int64_t start = in.integer("start");
      int64_t count = std::min(in.integer("count"), dataset->size() - start);
      if (count <= 0)
        throw Error("start " + std::to_string(start) + " is past the end of the data set (" +
                    std::to_string(dataset->size()) + " examples)");
      auto [images, labels] = dataset->batch(at::arange(start, start + count, at::kLong));
      std::string names;
      const int64_t* label = labels.data_ptr<int64_t>();
      for (int64_t i = 0; i < count; ++i)
        names += (i ? "," : "") + dataset->class_names()[static_cast<std::size_t>(label[i])];
      return {images.to(ctx.device()), names};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d;
    d.spec.class_type = "DatasetInfo";
    d.spec.display_name = "Data Set Info";
    d.spec.category = "data";
    d.spec.description = "A summary of a data set: source, size, image shape, and examples per class (also logged).";
    d.spec.inputs = {InputSpec::Link("dataset", types::DATASET)};
    d.spec.outputs = {{"STRING", types::STRING}};
    d.spec.output_node = true;
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      auto dataset = in.object<Dataset>("dataset");
      auto shape = dataset->image_shape();
      std::ostringstream text;
      text << dataset->describe() << ": " << dataset->size() << " images of " << shape[0] << "x" << shape[1] << "x"
           << shape[2];
      at::Tensor counts = at::bincount(dataset->labels(), {}, static_cast<int64_t>(dataset->class_names().size()));
      for (std::size_t c = 0; c < dataset->class_names().size(); ++c)
        text << (c ? ", " : "; ") << dataset->class_names()[c] << " " << counts[static_cast<int64_t>(c)].item<int64_t>();
      ctx.log(LogLevel::info, text.str());
      return {text.str()};
    };
    r.add(std::move(d));
  }
}

}  // namespace

COZY_PLUGIN("data", "0.1.0", register_nodes)
