// The gan plugin: train a DCGAN (optionally class-conditional) on a DATASET,
// with resuming, transfer learning (FreezeD) and adversarial examples for the
// discriminator; save and load it as a checkpoint (or load a TorchScript
// generator); sample images from it.
#include "dcgan.hpp"

#include "checkpoint.hpp"
#include "data_parallel.hpp"
#include "training.hpp"

#include <cozy/sdk.hpp>

#include <torch/script.h>

#include <sstream>

namespace cozy::gan {
namespace {

namespace fs = std::filesystem;

// A DCGAN generator (with the discriminator it was trained against, when
// known), as other plugins see it.
class DcganGenerator : public Generator, public SavableModel, public FeedbackTunable {
 public:
  DcganGenerator(GeneratorNet g, DiscriminatorNet d, std::vector<std::string> classes, nlohmann::json metadata)
      : g_(std::move(g)), d_(std::move(d)), classes_(std::move(classes)), metadata_(std::move(metadata)) {
    g_->eval();
  }
  int64_t latent_size() const override { return g_->options.latent; }
  int64_t num_classes() const override { return g_->options.classes; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::vector<int64_t> image_shape() const override {
    return {g_->options.channels, g_->options.image_size, g_->options.image_size};
  }
  c10::Device device() const override { return g_->parameters().front().device(); }
  at::Tensor generate(const at::Tensor& z, const at::Tensor& labels) const override {
    torch::NoGradGuard no_grad;
    if (z.dim() != 2 || z.size(1) != latent_size())
      throw Error("z must be [N, " + std::to_string(latent_size()) + "], not " + c10::str(z.sizes()));
    const bool weights = labels.defined() && labels.is_floating_point() && labels.dim() == 2;
    if (num_classes() > 0 && (!labels.defined() || labels.size(0) != z.size(0) ||
                              (weights ? labels.size(1) != num_classes() : labels.dim() != 1)))
      throw Error("this generator is class-conditional: give one label (or row of class weights) per latent vector");
    at::Tensor l = num_classes() == 0 ? at::Tensor() : labels.to(device(), weights ? at::kFloat : at::kLong);
    GeneratorNet net = g_;  // the holder is const here; the module, in eval mode, is only read
    return (net->forward(z.to(device(), at::kFloat), l) + 1).mul_(0.5).clamp_(0, 1);
  }
  void save(const fs::path& file) const override {
    checkpoint::save(file, metadata_, [&](auto& a) {
      checkpoint::write_module(a, "generator", *g_);
      if (d_) checkpoint::write_module(a, "discriminator", *d_);
    });
  }
  std::shared_ptr<Generator> tune_on_feedback(const Request& request, Context& ctx) const override;

 private:
  GeneratorNet g_;
  DiscriminatorNet d_;
  std::vector<std::string> classes_;
  nlohmann::json metadata_;
};

// A DCGAN discriminator, as other plugins see it (eval mode: batch norm uses
// its running statistics).
class DcganDiscriminator : public Discriminator {
 public:
  DcganDiscriminator(DiscriminatorNet d, std::vector<std::string> classes) : d_(std::move(d)), classes_(std::move(classes)) {
    d_->eval();
  }
  int64_t num_classes() const override { return d_->options.classes; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::vector<int64_t> image_shape() const override {
    return {d_->options.channels, d_->options.image_size, d_->options.image_size};
  }
  c10::Device device() const override { return d_->parameters().front().device(); }
  at::Tensor logits(const at::Tensor& images, const at::Tensor& labels) const override {
    const auto shape = image_shape();
    if (images.dim() != 4 || images.size(1) != shape[0] || images.size(2) != shape[1] || images.size(3) != shape[2])
      throw Error("the discriminator judges images [N, " + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) +
                  ", " + std::to_string(shape[2]) + "], not " + c10::str(images.sizes()));
    if (num_classes() > 0 && (!labels.defined() || labels.size(0) != images.size(0)))
      throw Error("this discriminator is class-conditional: give one label per image");
    torch::NoGradGuard no_grad;
    DiscriminatorNet net = d_;  // eval mode: only read
    at::Tensor l = num_classes() == 0 ? at::Tensor()
                                      : labels.to(device(), labels.is_floating_point() ? at::kFloat : at::kLong);
    return net->forward(images.to(device(), at::kFloat) * 2 - 1, l);
  }

 private:
  DiscriminatorNet d_;
  std::vector<std::string> classes_;
};

// A generator saved as TorchScript (torch.jit.save in Python, or
// torch::jit::Module::save). It must have an int attribute latent_size; it
// may have num_classes (int), class_names (list of str) and output_range
// ("tanh" for [-1, 1], the default, or "unit" for [0, 1]). forward(z) or, when
// conditional, forward(z, labels) returns images [N, C, H, W].
class ScriptGenerator : public Generator {
 public:
  ScriptGenerator(torch::jit::Module module, const fs::path& file, c10::Device device)
      : module_(std::move(module)), device_(device) {
    module_.eval();
    auto int_attr = [&](const char* name, bool required) -> int64_t {
      if (!module_.hasattr(name)) {
        if (required) throw Error("TorchScript generator " + file.string() + " has no int attribute " + name);
        return 0;
      }
      c10::IValue v = module_.attr(name);
      if (!v.isInt()) throw Error("TorchScript generator " + file.string() + ": " + name + " is not an int");
      return v.toInt();
    };
    latent_ = int_attr("latent_size", true);
    classes_ = int_attr("num_classes", false);
    if (latent_ < 1 || classes_ < 0) throw Error("TorchScript generator " + file.string() + ": bad latent_size or num_classes");
    if (module_.hasattr("class_names")) {
      for (const auto& v : module_.attr("class_names").toListRef()) names_.push_back(v.toStringRef());
    }
    for (int64_t k = static_cast<int64_t>(names_.size()); k < classes_; ++k) names_.push_back(std::to_string(k));
    names_.resize(static_cast<std::size_t>(classes_));
    if (module_.hasattr("output_range")) unit_range_ = module_.attr("output_range").toStringRef() == "unit";
    at::Tensor probe;
    try {
      probe = generate(at::zeros({1, latent_}), classes_ ? at::zeros({1}, at::kLong) : at::Tensor());
    } catch (const std::exception& e) {
      // c10 errors without their C++ backtrace; the interpreter's carry both
      // tracebacks first and the cause on the last line.
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      std::string cause = c10_error ? c10_error->what_without_backtrace() : e.what();
      if (!c10_error) {
        while (!cause.empty() && cause.back() == '\n') cause.pop_back();
        cause = cause.substr(cause.find_last_of('\n') + 1);
      }
      throw Error("TorchScript generator " + file.string() + " failed on a test latent: " + cause);
    }
    if (probe.dim() != 4) throw Error("TorchScript generator " + file.string() + " does not return images [N, C, H, W]");
    shape_ = {probe.size(1), probe.size(2), probe.size(3)};
  }
  int64_t latent_size() const override { return latent_; }
  int64_t num_classes() const override { return classes_; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::vector<int64_t> image_shape() const override { return shape_; }
  c10::Device device() const override { return device_; }
  at::Tensor generate(const at::Tensor& z, const at::Tensor& labels) const override {
    torch::NoGradGuard no_grad;
    if (z.dim() != 2 || z.size(1) != latent_) throw Error("z must be [N, " + std::to_string(latent_) + "]");
    std::vector<c10::IValue> args{z.to(device_, at::kFloat)};
    if (classes_ > 0) {
      if (!labels.defined() || labels.numel() != z.size(0))
        throw Error("this generator is class-conditional: give one label per latent vector");
      args.emplace_back(labels.to(device_, at::kLong));
    }
    torch::jit::Module m = module_;  // shares the module; forward only reads it
    at::Tensor out = m.forward(args).toTensor().to(at::kFloat);
    return unit_range_ ? out.clamp(0, 1) : (out + 1).mul_(0.5).clamp_(0, 1);
  }

 private:
  torch::jit::Module module_;
  c10::Device device_;
  int64_t latent_ = 0, classes_ = 0;
  std::vector<std::string> names_;
  std::vector<int64_t> shape_;
  bool unit_range_ = false;
};

DcganOptions options_from(const nlohmann::json& m, const fs::path& file) {
  try {
    DcganOptions o;
    o.latent = m.at("latent");
    o.width = m.at("width");
    o.channels = m.at("channels");
    o.image_size = m.at("image_size");
    o.classes = static_cast<int64_t>(m.at("classes").size());
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error("incomplete checkpoint metadata in " + file.string() + ": " + e.what());
  }
}

// A GAN checkpoint: generator, discriminator when saved, and the reader for
// the training state of a step checkpoint.
struct Loaded {
  GeneratorNet g{nullptr};
  DiscriminatorNet d{nullptr};
  checkpoint::Reader reader;
};

Loaded load_gan(checkpoint::Reader reader, c10::Device device) {
  const fs::path file = reader.file;
  Loaded l{nullptr, nullptr, std::move(reader)};
  DcganOptions o = options_from(l.reader.metadata, file);
  l.g = GeneratorNet(o);
  if (!l.reader.read_module("generator", *l.g)) throw Error("checkpoint " + file.string() + " has no generator");
  DiscriminatorNet d(o);
  if (l.reader.read_module("discriminator", *d)) l.d = d;
  l.g->to(device);
  if (l.d) l.d->to(device);
  return l;
}

std::vector<std::string> class_list(const nlohmann::json& m) { return m.at("classes").get<std::vector<std::string>>(); }

// Labels for a batch: one class, or every class in turn.
at::Tensor batch_labels(int64_t n, int64_t classes, int64_t wanted) {
  if (classes == 0) return {};
  if (wanted >= 0) return at::full({n}, wanted, at::kLong);
  return at::arange(n, at::kLong).remainder(classes);
}

// Freezes the first k convolutions of the discriminator and the batch norms
// after them (FreezeD); returns the parameters left to train.
std::vector<at::Tensor> freeze_first(DiscriminatorNet& d, int64_t k) {
  std::vector<at::Tensor> trainable;
  int64_t convs = 0;
  for (const auto& m : d->net->children()) {
    if (m->name().find("Conv") != std::string::npos) ++convs;
    const bool frozen = convs <= k;
    for (auto& p : m->parameters()) {
      p.set_requires_grad(!frozen);
      if (!frozen) trainable.push_back(p);
    }
  }
  if (k > convs) throw Error("freeze_d " + std::to_string(k) + " is more than the discriminator's " +
                             std::to_string(convs) + " convolutions");
  return trainable;
}

// Real images perturbed to raise the discriminator's loss on them (Rob-GAN):
// one signed-gradient step of eps (FGSM), or `steps` steps of 2.5 eps / steps
// kept within eps of the original (PGD). Images and eps are on [-1, 1].
at::Tensor adversarial(DiscriminatorNet& d, const at::Tensor& real, const at::Tensor& labels, float target,
                       const std::string& method, double eps, int64_t steps) {
  const bool pgd = method == "pgd";
  const int64_t n = pgd ? steps : 1;
  const double alpha = pgd ? 2.5 * eps / double(steps) : eps;
  at::Tensor x = real.detach();
  at::Tensor adv = x.clone();
  for (int64_t i = 0; i < n; ++i) {
    adv.requires_grad_(true);
    at::Tensor logits = d->forward(adv, labels);
    at::Tensor loss = torch::binary_cross_entropy_with_logits(logits, at::full_like(logits, target));
    at::Tensor grad = torch::autograd::grad({loss}, {adv})[0];
    adv = (adv.detach() + alpha * grad.sign());
    adv = at::min(at::max(adv, x - eps), x + eps).clamp(-1, 1);
  }
  return adv.detach();
}

NodeDef train_gan() {
  NodeDef d;
  d.spec.class_type = "TrainGAN";
  d.spec.display_name = "Train GAN (DCGAN)";
  d.spec.category = "gan";
  d.spec.description =
      "Adversarial training of a DCGAN on a data set (Adam; loss: the DCGAN's binary cross-entropy, or hinge), unconditional or class-"
      "conditional (fake labels drawn from the data set's labels). Shows step, losses, images/s and ETA; writes "
      "<name>_losses.csv and .png, a grid of samples after every epoch and at the end, and a checkpoint every "
      "checkpoint_every steps (never replacing one) under the output folder. resume continues a step checkpoint "
      "(weights, optimiser state, random state, data order: the same result as an uninterrupted run). init_from "
      "starts from a trained GAN (transfer learning) and freeze_d freezes its first K discriminator convolutions "
      "(FreezeD). ema keeps an exponential moving average of G's weights (its decay, warmed up over the first "
      "steps): the sample grids show it and the node returns it, G's own weights staying in the checkpoints beside it. "
      "adversarial perturbs the real images the discriminator sees by FGSM or PGD within epsilon "
      "(Rob-GAN). Cancelling stops after the current step with a last checkpoint. Deterministic for a seed on the CPU. "
      "Over several ranks (cozy run --nproc, torchrun: docs/distributed.md) each rank takes `batch` images of "
      "every global batch, gradients are averaged over the ranks, rank 0 alone writes files, and a restarted run "
      "resumes from its last checkpoint.";
  d.spec.inputs = {InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Int("steps", 500).range(1, 10000000),
                   InputSpec::Int("epochs", 0).range(0, 100000).help("> 0: train this many epochs instead of steps"),
                   InputSpec::Int("batch", 64).range(1, 4096),
                   InputSpec::Float("lr_g", 2e-4).range(1e-6, 1).with_step(1e-5),
                   InputSpec::Float("lr_d", 2e-4).range(1e-6, 1).with_step(1e-5),
                   InputSpec::Float("beta1", 0.5).range(0, 0.999),
                   InputSpec::Float("beta2", 0.999).range(0, 0.9999),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Float("label_smoothing", 0.0).range(0, 0.5).help("real target = 1 - this"),
                   InputSpec::Choice("loss", {"bce", "hinge"}).help("the adversarial loss: the DCGAN's, or hinge"),
                   InputSpec::Float("ema", 0.0).range(0, 0.99999).with_step(0.0001)
                       .help("decay of an average of G's weights, which it returns and samples; 0: none"),
                   InputSpec::Boolean("conditional", true),
                   InputSpec::Int("width", 64).range(4, 512).help("w: channels of the last hidden layer"),
                   InputSpec::Int("latent", 100).range(1, 4096),
                   InputSpec::Int("checkpoint_every", 0).range(0, 10000000).help("0: no checkpoints"),
                   InputSpec::String("name", "gan").help("prefix of the files written"),
                   InputSpec::String("resume", "").help("step checkpoint to continue (output or models folder)"),
                   InputSpec::String("init_from", "").help("GAN checkpoint to start from (transfer learning)"),
                   InputSpec::Int("freeze_d", 0).range(0, 8).help("with init_from: discriminator convolutions to freeze"),
                   InputSpec::Choice("adversarial", {"none", "fgsm", "pgd"}),
                   InputSpec::Float("epsilon", 0.03).range(0, 0.5).with_step(0.005).help("on the [0, 1] pixel scale"),
                   InputSpec::Int("pgd_steps", 5).range(1, 100)};
  d.spec.outputs = {{"GENERATOR", types::GENERATOR}, {"summary", types::STRING},
                    {"DISCRIMINATOR", types::DISCRIMINATOR}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto dataset = in.object<Dataset>("dataset");
    const auto shape = dataset->image_shape();
    if (shape[1] != shape[2]) throw Error("DCGAN needs square images");
    const int64_t batch = std::min(in.integer("batch"), dataset->size());
    const int64_t seed = in.integer("seed"), every = in.integer("checkpoint_every");
    training::DataParallel dp(ctx);
    if (dp.steps(dataset->size(), batch) == 0)
      throw Error("the data set has " + std::to_string(dataset->size()) + " images, fewer than a batch of " +
                  std::to_string(batch) + " on each of " + std::to_string(dp.world()) + " ranks");
    const int64_t steps = in.integer("epochs") > 0 ? in.integer("epochs") * dp.steps(dataset->size(), batch) : in.integer("steps");
    const float real_target = 1.0f - static_cast<float>(in.number("label_smoothing"));
    const std::string loss_kind = in.string("loss");
    const double ema = in.number("ema");
    if (loss_kind == "hinge" && in.number("label_smoothing") > 0)
      throw Error("label_smoothing applies to the bce loss, not hinge");
    const std::string name = in.string("name"), resume = in.string("resume"), init = in.string("init_from");
    const std::string attack = in.string("adversarial");
    const double eps = 2 * in.number("epsilon");  // images are on [-1, 1] inside
    const int64_t freeze = in.integer("freeze_d");
    const c10::Device device = ctx.device();
    const fs::path out_dir = path_inside(ctx.output_dir(), name, "name").parent_path();
    const std::string stem = fs::path(name).filename().string();
    if (!resume.empty() && !init.empty()) throw Error("give resume or init_from, not both");
    // The checkpoint to start from: the one named, or after a restart the last
    // one written; rank 0 finds it and the other ranks get a copy.
    fs::path source;
    if (dp.writes()) {
      if (!resume.empty() || !init.empty()) source = checkpoint::resume_path(ctx, resume.empty() ? init : resume);
      else if (dp.restarts() > 0 && every > 0) source = training::latest_checkpoint(out_dir, stem + "_step");
    }
    source = dp.share_file(source, ctx.temp_dir() / ("rank" + std::to_string(dp.rank())));
    const bool resuming = !source.empty() && init.empty();
    if (resuming && resume.empty())
      ctx.log(LogLevel::info, "restart " + std::to_string(dp.restarts()) + ": resuming from " + source.string());
    if (freeze > 0 && init.empty() && resume.empty()) throw Error("freeze_d needs init_from (a trained discriminator)");

    DcganOptions o;
    o.latent = in.integer("latent");
    o.width = in.integer("width");
    o.channels = shape[0];
    o.image_size = shape[1];
    o.classes = in.boolean("conditional") ? static_cast<int64_t>(dataset->class_names().size()) : 0;
    at::Generator gen = seeded_generator(seed);
    GeneratorNet g{nullptr};
    DiscriminatorNet dnet{nullptr};
    std::optional<Loaded> start;
    if (!source.empty()) {
      start = load_gan(checkpoint::open(source, device, "gan", "a GAN generator"), device);
      o = start->g->options;  // the architecture is the checkpoint's
      if (o.channels != shape[0] || o.image_size != shape[1])
        throw Error("the checkpoint makes " + std::to_string(o.channels) + "x" + std::to_string(o.image_size) + "x" +
                    std::to_string(o.image_size) + " images; the data set's are " + c10::str(c10::IntArrayRef(shape)));
      if (o.classes > 0 && o.classes != static_cast<int64_t>(dataset->class_names().size()))
        throw Error("the checkpoint has " + std::to_string(o.classes) + " classes; the data set " +
                    std::to_string(dataset->class_names().size()));
      g = start->g;
      dnet = start->d;
      if (resuming && !dnet) throw Error("cannot resume: the checkpoint has no discriminator");
      if (freeze > 0 && !dnet) throw Error("freeze_d needs a checkpoint with a discriminator");
    }
    if (!g) {
      g = GeneratorNet(o);
      init_weights(*g, gen);
    }
    if (!dnet) {
      dnet = DiscriminatorNet(o);
      init_weights(*dnet, gen);
    }
    g->to(device);
    dnet->to(device);
    if (!start) dp.broadcast(*g), dp.broadcast(*dnet);  // every rank starts from rank 0's weights
    std::vector<at::Tensor> d_params = freeze > 0 ? freeze_first(dnet, freeze) : dnet->parameters();
    const auto betas = std::make_tuple(in.number("beta1"), in.number("beta2"));
    torch::optim::Adam opt_g(g->parameters(), torch::optim::AdamOptions(in.number("lr_g")).betas(betas));
    torch::optim::Adam opt_d(d_params, torch::optim::AdamOptions(in.number("lr_d")).betas(betas));
    // The average of G's weights: from the checkpoint resumed, else G's own.
    GeneratorNet average{nullptr};
    if (ema > 0) {
      average = GeneratorNet(o);
      average->to(device);
      if (!(resuming && start->reader.read_module("generator_ema", *average))) ema_update(*average, *g, 0.0, 0);
      average->eval();
    }

    const std::vector<std::string> classes = o.classes ? dataset->class_names() : std::vector<std::string>{};
    nlohmann::json metadata = checkpoint::metadata("gan");
    metadata.update({{"architecture", "dcgan"}, {"latent", o.latent}, {"width", o.width}, {"channels", o.channels},
                     {"image_size", o.image_size}, {"classes", classes}, {"dataset", dataset->describe()},
                     {"seed", seed}, {"steps", 0}, {"adversarial", attack}, {"loss", loss_kind}, {"ema", ema}});
    if (!init.empty()) metadata.update({{"init_from", init}, {"freeze_d", freeze}});

    // Training state: the data order and where we are in it, the losses so far.
    at::Tensor order = at::randperm(dataset->size(), gen, at::kLong);
    int64_t cursor = 0, first = 1, epoch = 0;
    std::vector<at::Tensor> loss_rows;
    if (resuming) {
      checkpoint::Reader& r = start->reader;
      torch::serialize::InputArchive state, og, od;
      if (!r.read_archive("training_state", state) || !r.read_archive("optimizer_g", og) ||
          !r.read_archive("optimizer_d", od))
        throw Error("cannot resume from " + r.file.string() + ": it is not a step checkpoint of TrainGAN");
      opt_g.load(og);
      opt_d.load(od);
      at::Tensor rng, losses, position;
      state.read("rng", rng);
      state.read("order", order);
      state.read("position", position);  // {cursor, step, epoch}
      state.read("losses", losses);
      gen.set_state(rng.cpu());
      order = order.cpu();
      cursor = position[0].item<int64_t>();
      first = position[1].item<int64_t>() + 1;
      epoch = position[2].item<int64_t>();
      if (order.numel() != dataset->size()) throw Error("cannot resume: the data set is not the one it was trained on");
      for (int64_t i = 0; i < losses.size(0); ++i) loss_rows.push_back(losses[i].cpu());
      metadata["seed"] = r.metadata.value("seed", seed);
    }
    auto checkpoint_at = [&](int64_t step) {
      if (!dp.writes()) return;
      metadata["steps"] = step;
      fs::path file = write_numbered_file(out_dir, stem + "_step" + std::to_string(step), ".pt", [&](const fs::path& t) {
        checkpoint::save(t, metadata, [&](torch::serialize::OutputArchive& a) {
          checkpoint::write_module(a, "generator", *g);
          checkpoint::write_module(a, "discriminator", *dnet);
          if (average) checkpoint::write_module(a, "generator_ema", *average);
          torch::serialize::OutputArchive og, od, state;
          opt_g.save(og);
          opt_d.save(od);
          a.write("optimizer_g", og);
          a.write("optimizer_d", od);
          state.write("rng", gen.get_state());
          state.write("order", order);
          state.write("position", at::tensor({cursor, step, epoch}, at::kLong));
          state.write("losses", loss_rows.empty() ? at::zeros({0, 2}) : at::stack(loss_rows));
          a.write("training_state", state);
        });
      });
      ctx.add_file(file, "output");
    };
    // A grid of fixed samples: every class in turn for a conditional model.
    at::Tensor grid_z = at::randn({64, o.latent}, seeded_generator(seed + 1), at::kFloat).to(device);
    at::Tensor grid_labels = o.classes ? batch_labels(64, o.classes, -1).to(device) : at::Tensor();
    auto sample_grid = [&](const std::string& suffix) {
      if (!dp.writes()) return;
      torch::NoGradGuard no_grad;
      GeneratorNet shown = average ? average : g;
      shown->eval();
      at::Tensor images = (shown->forward(grid_z, grid_labels) + 1) / 2;
      if (!average) g->train();
      ctx.add_file(write_numbered_file(out_dir, stem + suffix, ".png",
                                       [&](const fs::path& t) { training::write_grid(images, o.classes ? o.classes : 8, t); }),
                   "output");
    };
    const at::Tensor all_labels = dataset->labels();

    g->train();
    dnet->train();
    training::Clock clock;
    bool cancelled = false;
    int64_t done = first - 1;
    for (int64_t step = first; step <= steps; ++step) {
      if (ctx.cancelled()) {
        cancelled = true;
        if (step > first) checkpoint_at(step - 1);
        break;
      }
      const int64_t global = batch * dp.world();  // images a step takes over every rank
      if (cursor + global > dataset->size()) {  // a new epoch, a new order (the same on every rank)
        ++epoch;
        sample_grid("_epoch" + std::to_string(epoch));
        order = at::randperm(dataset->size(), gen, at::kLong);
        cursor = 0;
      }
      auto [images, labels] = dataset->batch(order.narrow(0, cursor + dp.rank() * batch, batch));
      cursor += global;
      at::Tensor real = images.to(device).mul(2).sub(1);
      at::Tensor real_labels = o.classes ? labels.to(device) : at::Tensor();
      // Alone, latents come from `gen` as they always did; each rank draws its own.
      at::Generator noise = dp.active() ? dp.noise(seed, step) : gen;
      at::Tensor z = at::randn({batch, o.latent}, noise, at::kFloat).to(device);
      at::Tensor fake_labels;
      if (o.classes) {
        at::Tensor pick = at::randint(dataset->size(), {batch}, noise, at::TensorOptions(at::kLong));
        fake_labels = all_labels.index_select(0, pick).to(device);
      }
      if (attack != "none") real = adversarial(dnet, real, real_labels, real_target, attack, eps, in.integer("pgd_steps"));

      opt_d.zero_grad();
      at::Tensor d_real = dnet->forward(real, real_labels);
      at::Tensor fake = g->forward(z, fake_labels);
      at::Tensor d_fake = dnet->forward(fake.detach(), fake_labels);
      at::Tensor loss_d = discriminator_loss(loss_kind, d_real, d_fake, real_target);
      loss_d.backward();
      dp.average_gradients(*dnet);
      opt_d.step();

      opt_g.zero_grad();
      at::Tensor d_on_fake = dnet->forward(fake, fake_labels);
      at::Tensor loss_g = generator_loss(loss_kind, d_on_fake);
      loss_g.backward();
      dp.average_gradients(*g);
      opt_g.step();
      // BatchNorm normalises by each rank's own batch; its running statistics
      // (used when generating) are rank 0's everywhere.
      dp.broadcast_buffers(*g), dp.broadcast_buffers(*dnet);
      if (average) ema_update(*average, *g, ema, step);  // the same on every rank, as G's weights are

      loss_rows.push_back(dp.average(at::stack({loss_d.detach(), loss_g.detach()}).cpu().to(at::kFloat)));
      done = step;
      std::ostringstream text;
      text.precision(3);
      text << "step " << step << "/" << steps << " D " << loss_rows.back()[0].item<float>() << " G "
           << loss_rows.back()[1].item<float>() << clock.rate((step - first + 1) * batch, (steps - first + 1) * batch);
      ctx.progress(step, steps, text.str());
      if (every > 0 && step % every == 0) checkpoint_at(step);
    }
    metadata["steps"] = done;
    metadata["seconds"] = std::round(clock.seconds());

    training::LossLog log("step", {"loss_d", "loss_g"});
    for (std::size_t i = 0; i < loss_rows.size(); ++i)
      log.add(static_cast<int64_t>(i + 1), {loss_rows[i][0].item<double>(), loss_rows[i][1].item<double>()});
    if (dp.writes()) log.write(ctx, out_dir, stem + "_losses");
    sample_grid("_final");
    if (dp.active())
      ctx.log(LogLevel::info, "rank " + std::to_string(dp.rank()) + " of " + std::to_string(dp.world()) + ": " +
                                  std::to_string(dp.seconds()) + " s in collectives");
    if (cancelled) throw Cancelled();
    for (auto& p : dnet->parameters()) p.set_requires_grad(true);
    g->eval();
    dnet->eval();
    std::ostringstream summary;
    summary << "DCGAN " << o.image_size << "x" << o.image_size << " trained to step " << done << " on "
            << dataset->describe();
    if (!log.empty()) summary << "; last losses D " << log.last()[0] << " G " << log.last()[1];
    auto generator = std::make_shared<DcganGenerator>(average ? average : g, dnet, classes, metadata);
    return {std::static_pointer_cast<Generator>(generator), summary.str(),
            std::static_pointer_cast<Discriminator>(std::make_shared<DcganDiscriminator>(dnet, classes))};
  };
  return d;
}

NodeDef gan_sample() {
  NodeDef d;
  d.spec.class_type = "GANSample";
  d.spec.display_name = "GAN Sample";
  d.spec.category = "gan";
  d.spec.description =
      "batch images from a generator, from a seed (the same seed gives the same images), or from the latent input "
      "(then seed, batch and truncation are not used). class_index picks the class of a conditional generator "
      "(-1: every class in turn, or the class weights the latent carries). For a conditional generator the LATENT "
      "output is z followed by the class weights [N, D + K]. truncation > 0 redraws latent entries beyond that magnitude (the truncation "
      "trick: less variety, more typical images).";
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR), InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Int("batch", 16).range(1, 100000), InputSpec::Int("class_index", -1).range(-1, 100000),
                   InputSpec::Float("truncation", 0.0).range(0, 10).with_step(0.1),
                   InputSpec::Link("latent", types::LATENT).optional()};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto generator = in.object<Generator>("generator");
    const int64_t wanted = in.integer("class_index");
    if (wanted >= generator->num_classes() && generator->num_classes() > 0)
      throw Error("class_index " + std::to_string(wanted) + " is out of range: the generator has " +
                  std::to_string(generator->num_classes()) + " classes");
    if (wanted >= 0 && generator->num_classes() == 0)
      throw Error("this generator is unconditional: class_index must be -1");
    at::Tensor z, weights;
    const int64_t d = generator->latent_size(), k = generator->num_classes();
    if (in.has("latent")) {
      z = in.tensor("latent").to(at::kCPU, at::kFloat);
      if (z.dim() != 2 || (z.size(1) != d && (k == 0 || z.size(1) != d + k)))
        throw Error("the latent is " + c10::str(z.sizes()) + "; this generator takes [N, " + std::to_string(d) + "]" +
                    (k ? " or [N, " + std::to_string(d + k) + "] (z and class weights)" : std::string()));
      if (z.size(1) == d + k && k > 0) {
        weights = z.narrow(1, d, k).clamp_min(0);
        weights = weights / weights.sum(1, true).clamp_min(1e-6);
        z = z.narrow(1, 0, d);
      }
    } else {
      at::Generator gen = seeded_generator(in.integer("seed"));
      z = training::latent_noise(in.integer("batch"), generator->latent_size(), gen, in.number("truncation"));
    }
    const int64_t n = z.size(0);
    at::Tensor labels = batch_labels(n, k, wanted);
    if (weights.defined() && wanted < 0) labels = weights;  // the classes travel with the latent
    if (k > 0 && !weights.defined()) weights = at::one_hot(labels, k).to(at::kFloat);
    if (k > 0 && wanted >= 0) weights = at::one_hot(labels, k).to(at::kFloat);
    std::vector<at::Tensor> parts;  // in pieces: a large batch needs no more memory than 1,000 images
    for (int64_t i = 0; i < n; i += 1000) {
      const int64_t m = std::min<int64_t>(1000, n - i);
      parts.push_back(generator->generate(z.narrow(0, i, m), labels.defined() ? labels.narrow(0, i, m) : labels)
                          .to(ctx.device()));
    }
    // A conditional generator's LATENT carries the class weights after z, so that
    // interpolation and evolution move between classes too.
    at::Tensor latent = k > 0 ? at::cat({z, weights}, 1) : z;
    return {parts.size() == 1 ? parts[0] : at::cat(parts), latent.to(ctx.device())};
  };
  return d;
}

NodeDef save_model() {
  NodeDef d;
  d.spec.class_type = "SaveModel";
  d.spec.display_name = "Save Model";
  d.spec.category = "gan";
  d.spec.description = "Writes a generator, VAE or classifier as <prefix>_<counter>.pt in the user's folder (--models-dir "
                       "when given, else the output folder; never the shipped models): weights and metadata in one "
                       "file, never replacing an earlier one.";
  d.spec.inputs = {InputSpec::Link("model", types::ANY).help("a GENERATOR, VAE or CLASSIFIER"),
                   InputSpec::String("filename_prefix", "model")};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const Value& v = in["model"];
    auto model = v.is_object() ? std::dynamic_pointer_cast<SavableModel>(v.as_object()) : nullptr;
    if (!model)
      throw Error("SaveModel saves models whose plugin implements cozy::SavableModel (Cozy's generators, VAEs, "
                  "classifiers and layout models do); got " +
                  (v.is_object() ? "an object of type " + v.as_object()->type_name() : "a value of type " + v.kind()));
    fs::path target = path_inside(ctx.model_save_dir(), in.string("filename_prefix"), "filename_prefix");
    fs::path file = write_numbered_file(target.parent_path(), target.filename().string(), ".pt",
                                        [&](const fs::path& temp) { model->save(temp); });
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
  d.spec.description = "A generator from a Cozy checkpoint or a TorchScript module (torch.jit.save; see docs/gan.md "
                       "for what it must provide): a file name in the models folder, or an absolute path. Its "
                       "weights go to the run's device.";
  d.spec.inputs = {InputSpec::String("checkpoint").files_in("models", {".pt"}).help("e.g. fashion_cdcgan_00001.pt")};
  d.spec.outputs = {{"GENERATOR", types::GENERATOR}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const fs::path file = checkpoint::model_path(ctx, in.string("checkpoint"));
    std::optional<checkpoint::Reader> reader = checkpoint::open_if_cozy(file, ctx.device(), "gan", "a GAN generator");
    if (!reader) {  // an archive without Cozy metadata: a TorchScript module?
      torch::jit::Module module;
      try {
        module = torch::jit::load(file.string(), ctx.device());
      } catch (const c10::Error&) {
        throw Error("not a Cozy checkpoint nor a TorchScript module: " + file.string());
      }
      if (!module.find_method("forward")) throw Error("not a Cozy checkpoint (no metadata): " + file.string());
      return {std::static_pointer_cast<Generator>(std::make_shared<ScriptGenerator>(module, file, ctx.device()))};
    }
    Loaded l = load_gan(std::move(*reader), ctx.device());
    return {std::static_pointer_cast<Generator>(
        std::make_shared<DcganGenerator>(l.g, l.d, class_list(l.reader.metadata), l.reader.metadata))};
  };
  return d;
}

NodeDef load_discriminator() {
  NodeDef d;
  d.spec.class_type = "LoadDiscriminator";
  d.spec.display_name = "Load Discriminator";
  d.spec.category = "gan";
  d.spec.description = "The discriminator saved in a Cozy GAN checkpoint (SaveModel and TrainGAN's checkpoints keep it).";
  d.spec.inputs = {InputSpec::String("checkpoint").files_in("models", {".pt"}).help("e.g. fashion_cdcgan_00001.pt")};
  d.spec.outputs = {{"DISCRIMINATOR", types::DISCRIMINATOR}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const fs::path file = checkpoint::model_path(ctx, in.string("checkpoint"));
    Loaded l = load_gan(checkpoint::open(file, ctx.device(), "gan", "a GAN generator"), ctx.device());
    if (!l.d) throw Error("checkpoint " + file.string() + " holds no discriminator");
    return {std::static_pointer_cast<Discriminator>(
        std::make_shared<DcganDiscriminator>(l.d, class_list(l.reader.metadata)))};
  };
  return d;
}

NodeDef discriminator_score() {
  NodeDef d;
  d.spec.class_type = "DiscriminatorScore";
  d.spec.display_name = "Discriminator Score";
  d.spec.category = "gan";
  d.spec.description =
      "How real each image looks to a discriminator: sigmoid of its logit, in [0, 1]. For a conditional one, the "
      "classes come from latent (GANSample's LATENT, with class weights) or class_index. Outputs the mean, each "
      "image's score as comma-separated text, and the indices of the best `keep` images (for rejection sampling).";
  d.spec.inputs = {InputSpec::Link("discriminator", types::DISCRIMINATOR), InputSpec::Link("images", types::IMAGE),
                   InputSpec::Link("latent", types::LATENT).optional(),
                   InputSpec::Int("class_index", -1).range(-1, 100000), InputSpec::Int("keep", 8).range(1, 100000)};
  d.spec.outputs = {{"mean", types::FLOAT}, {"scores", types::STRING}, {"best", types::STRING}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto disc = in.object<Discriminator>("discriminator");
    const at::Tensor& images = in.image("images");
    const int64_t n = images.size(0), k = disc->num_classes(), wanted = in.integer("class_index");
    at::Tensor labels;
    if (k > 0) {
      if (in.has("latent") && wanted < 0) {
        const at::Tensor& latent = in.tensor("latent");
        if (latent.size(0) != n || latent.size(1) <= k) throw Error("the latent does not carry one row of class weights per image");
        labels = latent.narrow(1, latent.size(1) - k, k).to(at::kFloat);
      } else {
        if (wanted < 0 || wanted >= k) throw Error("a conditional discriminator needs class_index (0 to " + std::to_string(k - 1) + ") or latent");
        labels = at::full({n}, wanted, at::kLong);
      }
    }
    at::Tensor scores = at::sigmoid(disc->logits(images, labels)).cpu();
    std::string text, best;
    for (int64_t i = 0; i < n; ++i) text += (i ? "," : "") + std::to_string(scores[i].item<float>());
    at::Tensor order = std::get<1>(scores.sort(0, /*descending=*/true));
    for (int64_t i = 0; i < std::min(n, in.integer("keep")); ++i) best += (i ? "," : "") + std::to_string(order[i].item<int64_t>());
    return {scores.mean().item<double>(), text, best};
  };
  return d;
}

// A deep copy of a module, through an in-memory archive.
template <class Net>
Net copy_net(const Net& net, const DcganOptions& o, c10::Device device) {
  std::stringstream buffer;
  torch::serialize::OutputArchive out;
  net->save(out);
  out.save_to(buffer);
  Net copy(o);
  torch::serialize::InputArchive in;
  in.load_from(buffer, device);
  copy->load(in);
  copy->to(device);
  return copy;
}

std::shared_ptr<Generator> DcganGenerator::tune_on_feedback(const Request& request, Context& ctx) const {
  if (!d_) throw Error("this DCGAN has no discriminator to tune against (load it from TrainGAN or a Cozy checkpoint)");
  const c10::Device device = ctx.device();
  const DcganOptions o = g_->options;
  const int64_t n = std::max<int64_t>(1, request.fresh_samples), m = request.liked.size(0);
  at::Tensor real = request.liked.to(device).mul(2).sub(1);
  at::Tensor real_w = o.classes ? request.liked_classes.to(device, at::kFloat) : at::Tensor();
  at::Tensor bad = request.disliked.defined() ? request.disliked.to(device).mul(2).sub(1) : at::Tensor();
  at::Tensor bad_w = (o.classes && bad.defined()) ? request.disliked_classes.to(device, at::kFloat) : at::Tensor();

  GeneratorNet g = copy_net(g_, o, device);
  DiscriminatorNet dnet = copy_net(d_, o, device);
  g->train();
  dnet->train();
  torch::optim::Adam opt_g(g->parameters(), torch::optim::AdamOptions(request.learning_rate).betas({0.5, 0.999}));
  torch::optim::Adam opt_d(dnet->parameters(), torch::optim::AdamOptions(request.learning_rate).betas({0.5, 0.999}));
  at::Generator gen = seeded_generator(request.seed);
  const int64_t steps = request.steps;
  auto bce = [](const at::Tensor& logits, double target) {
    return torch::binary_cross_entropy_with_logits(logits, at::full_like(logits, target));
  };
  // DiffAugment (Zhao et al. 2020): every image the discriminator sees,
  // liked, disliked or generated, is moved by up to 1/8 of its side and
  // has a square of half its side cut out, differentiably, so that a few
  // liked images are not simply memorised (measured: docs/benchmarks.md#feedback).
  const bool augment_all = request.augment;
  auto augment = [&](const at::Tensor& x) {
    if (!augment_all) return x;
    const int64_t b = x.size(0), h = x.size(2), wd = x.size(3);
    const at::TensorOptions f = at::TensorOptions(at::kFloat);
    at::Tensor theta = at::zeros({b, 2, 3}, f);
    theta.select(1, 0).select(1, 0).fill_(1);
    theta.select(1, 1).select(1, 1).fill_(1);
    theta.select(2, 2).copy_(at::randint(-h / 8, h / 8 + 1, {b, 2}, gen, f) * (2.0 / double(h)));
    at::Tensor grid = at::affine_grid_generator(theta.to(x.device()), {b, x.size(1), h, wd}, false);
    at::Tensor moved = at::grid_sampler(x + 1, grid, /*nearest*/ 1, /*zeros*/ 0, false);  // 0 = black after -1
    at::Tensor cy = at::randint(0, h, {b, 1, 1, 1}, gen, f).to(x.device());
    at::Tensor cx = at::randint(0, wd, {b, 1, 1, 1}, gen, f).to(x.device());
    at::Tensor ys = at::arange(h, x.options()).view({1, 1, h, 1}),
               xs = at::arange(wd, x.options()).view({1, 1, 1, wd});
    at::Tensor keep = (((ys - cy).abs() >= double(h / 4)) | ((xs - cx).abs() >= double(wd / 4))).to(x.dtype());
    return moved * keep - 1;
  };
  for (int64_t step = 1; step <= steps; ++step) {
    ctx.check_cancelled();
    // As many fresh samples as the batch judged: the discriminator learns
    // what the generator makes now, not only the few liked images.
    at::Tensor z = at::randn({n, o.latent}, gen, at::kFloat).to(device);
    at::Tensor w = o.classes
                       ? real_w.index_select(0, at::randint(m, {n}, gen, at::TensorOptions(at::kLong)).to(device))
                       : at::Tensor();
    opt_d.zero_grad();
    at::Tensor fake = g->forward(z, w);
    at::Tensor loss_d = bce(dnet->forward(augment(real), real_w), 0.9);
    loss_d = loss_d + bce(dnet->forward(augment(fake.detach()), w), 0.0);
    if (bad.defined()) loss_d = loss_d + bce(dnet->forward(augment(bad), bad_w), 0.0);
    loss_d.backward();
    opt_d.step();
    opt_g.zero_grad();
    at::Tensor loss_g = bce(dnet->forward(augment(fake), w), 1.0);
    loss_g.backward();
    opt_g.step();
    ctx.progress(step, steps, "step " + std::to_string(step) + " D " + std::to_string(loss_d.item<float>()) + " G " +
                                  std::to_string(loss_g.item<float>()));
  }
  nlohmann::json meta = metadata_;
  meta["fine_tuned_on_feedback"] = {{"liked", m},
                                    {"disliked", bad.defined() ? bad.size(0) : 0},
                                    {"steps", steps},
                                    {"augment", augment_all}};
  return std::make_shared<DcganGenerator>(g, dnet, classes_, meta);
}

NodeDef fine_tune_on_feedback() {
  NodeDef d;
  d.spec.class_type = "FineTuneOnFeedback";
  d.spec.display_name = "Fine-Tune on Feedback";
  d.spec.category = "gan";
  d.spec.description =
      "A few adversarial steps that move a DCGAN towards what the user liked: the discriminator learns the liked "
      "images as real and the disliked ones and fresh samples (as many as the batch judged) as fake, all seen "
      "through DiffAugment's random shifts and cutouts so that a few liked images are not memorised; the generator "
      "learns to please it, with classes drawn from the liked images' class weights. images, latent and feedback are "
      "one judged batch "
      "(GANSample's outputs and a Feedback). Writes the result as a new checkpoint <prefix>_<counter>.pt in the "
      "user's folder (--models-dir when given, else the output folder); the generator given is left as it was. Any generator whose plugin implements "
      "cozy::FeedbackTunable can be tuned.";
  d.spec.inputs = {
      InputSpec::Link("generator", types::GENERATOR),
      InputSpec::Link("images", types::IMAGE),
      InputSpec::Link("latent", types::LATENT),
      InputSpec::Link("feedback", types::FEEDBACK),
      InputSpec::Int("steps", 100).range(1, 100000),
      InputSpec::Float("lr", 1e-4).range(1e-7, 1),
      InputSpec::Int("seed", 0).range(0, 2147483647),
      InputSpec::Boolean("augment", true).help("DiffAugment: random shifts and cutouts of what the discriminator sees"),
      InputSpec::String("filename_prefix", "feedback_gan")};
  d.spec.outputs = {{"GENERATOR", types::GENERATOR}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto generator = in.object<Generator>("generator");
    auto tunable = std::dynamic_pointer_cast<FeedbackTunable>(generator);
    if (!tunable)
      throw Error("FineTuneOnFeedback needs a generator that can be tuned (cozy::FeedbackTunable), such as a DCGAN "
                  "with its discriminator from TrainGAN or a Cozy checkpoint");
    const auto& scores = in.object<Feedback>("feedback")->scores;
    const at::Tensor& images = in.image("images");
    const at::Tensor& latent = in.tensor("latent");
    const int64_t n = static_cast<int64_t>(scores.size());
    if (images.size(0) != n || latent.size(0) != n)
      throw Error("the feedback judges " + std::to_string(n) + " images; got " + std::to_string(images.size(0)) +
                  " images and " + std::to_string(latent.size(0)) + " latents");
    const int64_t latent_size = generator->latent_size(), classes = generator->num_classes();
    if (classes > 0 && latent.size(1) != latent_size + classes)
      throw Error("a conditional generator's feedback needs the latent with class weights (GANSample's LATENT)");
    std::vector<int64_t> liked, disliked;
    for (int64_t i = 0; i < n; ++i) {
      if (scores[i] > 0) liked.push_back(i);
      else if (scores[i] < 0) disliked.push_back(i);
    }
    if (liked.empty()) throw Error("no image was liked: nothing to move towards");
    const c10::Device device = ctx.device();
    auto pick = [&](const at::Tensor& t, const std::vector<int64_t>& rows) {
      return t.index_select(0, at::tensor(rows, at::kLong).to(t.device())).to(device);
    };
    FeedbackTunable::Request request;
    request.liked = pick(images, liked);
    if (classes) request.liked_classes = pick(latent, liked).narrow(1, latent_size, classes);
    if (!disliked.empty()) {
      request.disliked = pick(images, disliked);
      if (classes) request.disliked_classes = pick(latent, disliked).narrow(1, latent_size, classes);
    }
    request.fresh_samples = n;
    request.steps = in.integer("steps");
    request.learning_rate = in.number("lr");
    request.seed = in.integer("seed");
    request.augment = in.boolean("augment");
    std::shared_ptr<Generator> tuned = tunable->tune_on_feedback(request, ctx);
    auto savable = std::dynamic_pointer_cast<SavableModel>(tuned);
    if (!savable) throw Error("the tuned generator cannot be saved (it implements no cozy::SavableModel)");
    fs::path target = path_inside(ctx.model_save_dir(), in.string("filename_prefix"), "filename_prefix");
    ctx.add_file(write_numbered_file(target.parent_path(), target.filename().string(), ".pt",
                                     [&](const fs::path& temp) { savable->save(temp); }),
                 "output");
    return {tuned};
  };
  return d;
}

}  // namespace

void register_latent_nodes(Registrar& r);

void register_nodes(Registrar& r) {
  r.add(train_gan());
  r.add(gan_sample());
  r.add(save_model());
  r.add(load_generator());
  r.add(fine_tune_on_feedback());
  r.add(load_discriminator());
  r.add(discriminator_score());
  register_latent_nodes(r);
}

}  // namespace cozy::gan

COZY_PLUGIN("gan", "0.2.0", cozy::gan::register_nodes)
