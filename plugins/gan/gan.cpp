// The gan plugin: train a DCGAN (optionally class-conditional) on a DATASET,
// save and load it as a checkpoint, and sample images from it.
#include "dcgan.hpp"

#include "image_io.hpp"

#include <cozy/sdk.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <fstream>
#include <sstream>

namespace cozy::gan {
namespace {

namespace fs = std::filesystem;
constexpr const char* kFormat = "cozy-checkpoint";

// A trained generator, as other plugins see it.
class DcganGenerator : public Generator {
 public:
  DcganGenerator(GeneratorNet net, std::vector<std::string> classes, nlohmann::json metadata)
      : net_(std::move(net)), classes_(std::move(classes)), metadata_(std::move(metadata)) {
    net_->eval();
  }
  int64_t latent_size() const override { return net_->options.latent; }
  int64_t num_classes() const override { return net_->options.classes; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::vector<int64_t> image_shape() const override {
    return {net_->options.channels, net_->options.image_size, net_->options.image_size};
  }
  c10::Device device() const override { return net_->parameters().front().device(); }
  at::Tensor generate(const at::Tensor& z, const at::Tensor& labels) const override {
    torch::NoGradGuard no_grad;
    if (z.dim() != 2 || z.size(1) != latent_size())
      throw Error("z must be [N, " + std::to_string(latent_size()) + "]");
    if (num_classes() > 0 && (!labels.defined() || labels.numel() != z.size(0)))
      throw Error("this generator is class-conditional: give one label per latent vector");
    at::Tensor l = num_classes() > 0 ? labels.to(device(), at::kLong) : at::Tensor();
    GeneratorNet net = net_;  // the holder is const here; the module, in eval mode, is only read
    return (net->forward(z.to(device()), l) + 1).mul_(0.5).clamp_(0, 1);
  }
  GeneratorNet net() const { return net_; }
  const nlohmann::json& metadata() const { return metadata_; }

 private:
  GeneratorNet net_;
  std::vector<std::string> classes_;
  nlohmann::json metadata_;
};

DcganOptions options_from(const nlohmann::json& m) {
  DcganOptions o;
  o.latent = m.at("latent");
  o.width = m.at("width");
  o.channels = m.at("channels");
  o.image_size = m.at("image_size");
  o.classes = static_cast<int64_t>(m.at("classes").size());
  return o;
}

// One file: generator (and discriminator) weights plus metadata as JSON.
void save_checkpoint(const fs::path& file, GeneratorNet g, DiscriminatorNet d, const nlohmann::json& metadata) {
  torch::serialize::OutputArchive archive, g_archive, d_archive;
  g->save(g_archive);
  archive.write("generator", g_archive);
  if (d) {
    d->save(d_archive);
    archive.write("discriminator", d_archive);
  }
  archive.write("metadata", c10::IValue(metadata.dump()));
  archive.save_to(file.string());
}

struct Loaded {
  GeneratorNet g{nullptr};
  DiscriminatorNet d{nullptr};
  nlohmann::json metadata;
};

Loaded load_checkpoint(const fs::path& file, c10::Device device) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error("checkpoint not found: " + file.string());
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string(), device);
  } catch (const std::exception&) {
    throw Error("not a checkpoint (corrupt, or not written by torch::save): " + file.string());
  }
  c10::IValue text;
  if (!archive.try_read("metadata", text) || !text.isString())
    throw Error("not a Cozy checkpoint (no metadata): " + file.string());
  Loaded loaded;
  try {
    loaded.metadata = nlohmann::json::parse(text.toStringRef());
  } catch (const std::exception&) {
    throw Error("corrupt checkpoint metadata in " + file.string());
  }
  if (loaded.metadata.value("format", "") != kFormat) throw Error("not a Cozy checkpoint: " + file.string());
  std::string kind = loaded.metadata.value("kind", "");
  if (kind != "gan") throw Error(file.string() + " holds a " + kind + " model, not a GAN generator");
  DcganOptions o = options_from(loaded.metadata);
  loaded.g = GeneratorNet(o);
  torch::serialize::InputArchive g_archive, d_archive;
  try {
    archive.read("generator", g_archive);
    loaded.g->load(g_archive);
    if (archive.try_read("discriminator", d_archive)) {
      loaded.d = DiscriminatorNet(o);
      loaded.d->load(d_archive);
    }
  } catch (const c10::Error& e) {
    throw Error("checkpoint " + file.string() + " does not match its metadata: " + e.what_without_backtrace());
  }
  loaded.g->to(device);
  if (loaded.d) loaded.d->to(device);
  return loaded;
}

std::vector<std::string> class_list(const nlohmann::json& m) { return m.at("classes").get<std::vector<std::string>>(); }

at::Generator cpu_generator(int64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed)); }

// Labels for a batch: one class, or every class in turn.
at::Tensor batch_labels(int64_t n, int64_t classes, int64_t wanted) {
  if (classes == 0) return {};
  if (wanted >= 0) return at::full({n}, wanted, at::kLong);
  return at::arange(n, at::kLong).remainder(classes);
}

// A line plot of the two losses, as a PNG next to the CSV.
void plot_losses(const std::vector<std::pair<float, float>>& losses, const fs::path& file) {
  const int w = 640, h = 320, margin = 30;
  cv::Mat canvas(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
  float top = 0.1f;
  for (auto [d, g] : losses) top = std::max(top, std::max(d, g));
  auto point = [&](std::size_t i, float v) {
    double x = margin + (w - 2 * margin) * (losses.size() > 1 ? double(i) / double(losses.size() - 1) : 0.0);
    return cv::Point(int(x), int(h - margin - (h - 2 * margin) * v / top));
  };
  cv::rectangle(canvas, {margin, margin}, {w - margin, h - margin}, cv::Scalar(200, 200, 200));
  for (std::size_t i = 1; i < losses.size(); ++i) {
    cv::line(canvas, point(i - 1, losses[i - 1].first), point(i, losses[i].first), cv::Scalar(200, 80, 0), 1);
    cv::line(canvas, point(i - 1, losses[i - 1].second), point(i, losses[i].second), cv::Scalar(0, 80, 200), 1);
  }
  cv::putText(canvas, "D loss", {margin + 5, margin + 15}, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(200, 80, 0));
  cv::putText(canvas, "G loss", {margin + 80, margin + 15}, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 80, 200));
  at::Tensor t = at::from_blob(canvas.data, {h, w, 3}, at::kByte).permute({2, 0, 1}).flip({0}).to(at::kFloat) / 255;
  image_io::write_png(t, file);
}

NodeDef train_gan() {
  NodeDef d;
  d.spec.class_type = "TrainGAN";
  d.spec.display_name = "Train GAN (DCGAN)";
  d.spec.category = "gan";
  d.spec.description =
      "Adversarial training of a DCGAN on a data set (Adam, binary cross-entropy), unconditional or class-"
      "conditional. Shows step, losses, images/s and ETA; writes <name>_losses.csv and <name>_losses.png under the "
      "output folder, and a checkpoint every checkpoint_every steps (never replacing one). Cancelling stops after "
      "the current step with a last checkpoint. Deterministic for a seed on the CPU.";
  d.spec.inputs = {InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Int("steps", 500).range(1, 10000000),
                   InputSpec::Int("batch", 64).range(1, 4096),
                   InputSpec::Float("lr_g", 2e-4).range(1e-6, 1).with_step(1e-5),
                   InputSpec::Float("lr_d", 2e-4).range(1e-6, 1).with_step(1e-5),
                   InputSpec::Float("beta1", 0.5).range(0, 0.999),
                   InputSpec::Float("beta2", 0.999).range(0, 0.9999),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Float("label_smoothing", 0.0).range(0, 0.5).help("real target = 1 - this"),
                   InputSpec::Boolean("conditional", true),
                   InputSpec::Int("width", 64).range(4, 512).help("w: channels of the last hidden layer"),
                   InputSpec::Int("latent", 100).range(1, 4096),
                   InputSpec::Int("checkpoint_every", 0).range(0, 10000000).help("0: no checkpoints"),
                   InputSpec::String("name", "gan").help("prefix of the files written")};
  d.spec.outputs = {{"GENERATOR", types::GENERATOR}, {"summary", types::STRING}};
  d.spec.pure = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto dataset = in.object<Dataset>("dataset");
    const auto shape = dataset->image_shape();
    if (shape[1] != shape[2]) throw Error("DCGAN needs square images");
    DcganOptions o;
    o.latent = in.integer("latent");
    o.width = in.integer("width");
    o.channels = shape[0];
    o.image_size = shape[1];
    o.classes = in.boolean("conditional") ? static_cast<int64_t>(dataset->class_names().size()) : 0;
    const int64_t steps = in.integer("steps"), batch = std::min(in.integer("batch"), dataset->size());
    const int64_t seed = in.integer("seed"), every = in.integer("checkpoint_every");
    const float real_target = 1.0f - static_cast<float>(in.number("label_smoothing"));
    const std::string name = in.string("name");
    const c10::Device device = ctx.device();
    fs::path out_dir = path_inside(ctx.output_dir(), name, "name").parent_path();
    const std::string stem = fs::path(name).filename().string();

    at::Generator gen = cpu_generator(seed);
    GeneratorNet g(o);
    DiscriminatorNet dnet(o);
    init_weights(*g, gen);
    init_weights(*dnet, gen);
    g->to(device);
    dnet->to(device);
    torch::optim::Adam opt_g(g->parameters(), torch::optim::AdamOptions(in.number("lr_g"))
                                                  .betas({in.number("beta1"), in.number("beta2")}));
    torch::optim::Adam opt_d(dnet->parameters(), torch::optim::AdamOptions(in.number("lr_d"))
                                                     .betas({in.number("beta1"), in.number("beta2")}));
    nlohmann::json metadata = {{"format", kFormat},        {"version", 1},
                               {"kind", "gan"},            {"architecture", "dcgan"},
                               {"latent", o.latent},       {"width", o.width},
                               {"channels", o.channels},   {"image_size", o.image_size},
                               {"classes", o.classes ? dataset->class_names() : std::vector<std::string>{}},
                               {"dataset", dataset->describe()}, {"seed", seed}, {"steps", 0}};
    auto checkpoint = [&](int64_t step) {
      metadata["steps"] = step;
      fs::path file = write_numbered_file(out_dir, stem + "_step" + std::to_string(step), ".pt",
                                          [&](const fs::path& temp) { save_checkpoint(temp, g, dnet, metadata); });
      ctx.add_file(file, "output");
    };

    std::vector<std::pair<float, float>> losses;
    at::Tensor order = at::randperm(dataset->size(), gen, at::kLong);
    int64_t cursor = 0;
    auto start = std::chrono::steady_clock::now();
    bool cancelled = false;
    for (int64_t step = 1; step <= steps; ++step) {
      if (ctx.cancelled()) {
        cancelled = true;
        if (step > 1) checkpoint(step - 1);
        break;
      }
      if (cursor + batch > dataset->size()) {  // a new epoch, a new order
        order = at::randperm(dataset->size(), gen, at::kLong);
        cursor = 0;
      }
      auto [images, labels] = dataset->batch(order.narrow(0, cursor, batch));
      cursor += batch;
      at::Tensor real = images.to(device).mul(2).sub(1);
      at::Tensor real_labels = o.classes ? labels.to(device) : at::Tensor();
      at::Tensor z = at::randn({batch, o.latent}, gen, at::kFloat).to(device);
      at::Tensor fake_labels =
          o.classes ? at::randint(o.classes, {batch}, gen, at::TensorOptions(at::kLong)).to(device) : at::Tensor();

      opt_d.zero_grad();
      at::Tensor d_real = dnet->forward(real, real_labels);
      at::Tensor loss_real = torch::binary_cross_entropy_with_logits(d_real, at::full_like(d_real, real_target));
      at::Tensor fake = g->forward(z, fake_labels);
      at::Tensor d_fake = dnet->forward(fake.detach(), fake_labels);
      at::Tensor loss_fake = torch::binary_cross_entropy_with_logits(d_fake, at::zeros_like(d_fake));
      at::Tensor loss_d = loss_real + loss_fake;
      loss_d.backward();
      opt_d.step();

      opt_g.zero_grad();
      at::Tensor d_on_fake = dnet->forward(fake, fake_labels);
      at::Tensor loss_g = torch::binary_cross_entropy_with_logits(d_on_fake, at::ones_like(d_on_fake));
      loss_g.backward();
      opt_g.step();

      losses.emplace_back(loss_d.item<float>(), loss_g.item<float>());
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double rate = static_cast<double>(step * batch) / std::max(seconds, 1e-9);
      std::ostringstream text;
      text.precision(3);
      text << "step " << step << "/" << steps << " D " << losses.back().first << " G " << losses.back().second << " "
           << static_cast<int>(rate) << " img/s ETA " << static_cast<int>((steps - step) * batch / std::max(rate, 1e-9))
           << " s";
      ctx.progress(step, steps, text.str());
      if (every > 0 && step % every == 0) checkpoint(step);
    }
    const int64_t done = static_cast<int64_t>(losses.size());
    metadata["steps"] = done;

    // The loss log, as CSV and as a plot.
    std::ostringstream csv;
    csv << "step,loss_d,loss_g\n";
    for (std::size_t i = 0; i < losses.size(); ++i) csv << i + 1 << "," << losses[i].first << "," << losses[i].second << "\n";
    ctx.add_file(write_numbered_file(out_dir, stem + "_losses", ".csv",
                                     [&](const fs::path& temp) { std::ofstream(temp) << csv.str(); }),
                 "output");
    ctx.add_file(write_numbered_file(out_dir, stem + "_losses", ".png",
                                     [&](const fs::path& temp) { plot_losses(losses, temp); }),
                 "output");
    if (cancelled) throw Cancelled();
    std::ostringstream summary;
    summary << "DCGAN " << o.image_size << "x" << o.image_size << " trained " << done << " steps on "
            << dataset->describe();
    if (!losses.empty()) summary << "; last losses D " << losses.back().first << " G " << losses.back().second;
    auto generator = std::make_shared<DcganGenerator>(g, o.classes ? dataset->class_names() : std::vector<std::string>{},
                                                      metadata);
    return {std::static_pointer_cast<Generator>(generator), summary.str()};
  };
  return d;
}

NodeDef gan_sample() {
  NodeDef d;
  d.spec.class_type = "GANSample";
  d.spec.display_name = "GAN Sample";
  d.spec.category = "gan";
  d.spec.description =
      "batch images from a generator, from a seed (the same seed gives the same images). class_index picks the "
      "class of a conditional generator (-1: every class in turn). truncation > 0 redraws latent entries beyond "
      "that magnitude (the truncation trick: less variety, more typical images).";
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR), InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Int("batch", 16).range(1, 4096), InputSpec::Int("class_index", -1).range(-1, 100000),
                   InputSpec::Float("truncation", 0.0).range(0, 10).with_step(0.1)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto generator = in.object<Generator>("generator");
    const int64_t n = in.integer("batch"), wanted = in.integer("class_index");
    if (wanted >= generator->num_classes() && generator->num_classes() > 0)
      throw Error("class_index " + std::to_string(wanted) + " is out of range: the generator has " +
                  std::to_string(generator->num_classes()) + " classes");
    if (wanted >= 0 && generator->num_classes() == 0)
      throw Error("this generator is unconditional: class_index must be -1");
    at::Generator gen = cpu_generator(in.integer("seed"));
    at::Tensor z = at::randn({n, generator->latent_size()}, gen, at::kFloat);
    const double t = in.number("truncation");
    for (int round = 0; t > 0 && round < 100; ++round) {
      at::Tensor outside = z.abs() > t;
      if (!outside.any().item<bool>()) break;
      z = at::where(outside, at::randn(z.sizes(), gen, at::kFloat), z);
    }
    if (t > 0) z = z.clamp(-t, t);
    at::Tensor images = generator->generate(z, batch_labels(n, generator->num_classes(), wanted));
    return {images.to(ctx.device()), z.to(ctx.device())};
  };
  return d;
}

NodeDef save_model() {
  NodeDef d;
  d.spec.class_type = "SaveModel";
  d.spec.display_name = "Save Model";
  d.spec.category = "gan";
  d.spec.description = "Writes a generator as <prefix>_<counter>.pt under the models folder (--models-dir): "
                       "weights and metadata in one file, never replacing an earlier one.";
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR), InputSpec::String("filename_prefix", "gan")};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto generator = std::dynamic_pointer_cast<DcganGenerator>(in.object<Generator>("generator"));
    if (!generator) throw Error("SaveModel saves generators made by the gan plugin");
    fs::path target = path_inside(ctx.model_dir(), in.string("filename_prefix"), "filename_prefix");
    fs::path file = write_numbered_file(target.parent_path(), target.filename().string(), ".pt",
                                        [&](const fs::path& temp) {
                                          save_checkpoint(temp, generator->net(), nullptr, generator->metadata());
                                        });
    ctx.add_file(file, "output");
    return {};
  };
  return d;
}

NodeDef load_generator() {
  NodeDef d;
  d.spec.class_type = "LoadGenerator";
  d.spec.display_name = "Load Generator";
  d.spec.category = "gan";
  d.spec.description = "A generator from a Cozy checkpoint: a file name in the models folder, or an absolute path. "
                       "Its weights go to the run's device.";
  d.spec.inputs = {InputSpec::String("checkpoint").help("e.g. fashion_cdcgan.pt")};
  d.spec.outputs = {{"GENERATOR", types::GENERATOR}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    fs::path file(in.string("checkpoint"));
    if (file.is_relative()) file = ctx.model_dir() / file;
    Loaded loaded = load_checkpoint(file, ctx.device());
    auto classes = class_list(loaded.metadata);
    return {std::static_pointer_cast<Generator>(std::make_shared<DcganGenerator>(loaded.g, classes, loaded.metadata))};
  };
  return d;
}

void register_nodes(Registrar& r) {
  r.add(train_gan());
  r.add(gan_sample());
  r.add(save_model());
  r.add(load_generator());
}

}  // namespace
}  // namespace cozy::gan

COZY_PLUGIN("gan", "0.1.0", cozy::gan::register_nodes)
