// The learned way from a layout to an image: a pix2pix generator (a U-Net
// reading the layout's maps) trained against a PatchGAN discriminator plus
// an L1 loss on pairs of random layouts and the scenes ComposeScene makes of
// them. Nodes: SyntheticLayouts (the pairs), TrainLayoutGAN, LoadLayoutModel,
// LayoutToImage. Why pix2pix and not SPADE: docs/interaction.md.
//
//   maps (6 + K + 1 channels): the preview (colour x texture over the
//   background), the flat colour map, and the class map one-hot (channel 0:
//   no object); all at size x size, size divisible by 16.
//   U-Net: 4 stride-2 convolutions down (w, 2w, 4w, 8w), 4 transposed
//   convolutions up with skip connections, sigmoid; GroupNorm (the same in
//   training and inference, whatever the batch).
//   PatchGAN: maps and image in, 3 stride-2 convolutions (2w, 4w, 8w), one
//   logit per patch (size / 8 squared).
//   Loss: G = BCE(D(maps, G(maps)), real) + l1_weight x |G(maps) - scene|;
//   D = (BCE(real) + BCE(fake)) / 2; Adam (2e-4, 0.5, 0.999).
#include <torch/torch.h>

#include <cmath>
#include <cozy/files.hpp>
#include <cozy/sdk.hpp>
#include <sstream>

#include "checkpoint.hpp"
#include "layers.hpp"
#include "layout_model.hpp"
#include "render.hpp"
#include "scene.hpp"
#include "training.hpp"

namespace cozy::interaction {
namespace {

namespace nn = torch::nn;
namespace fs = std::filesystem;

struct Pix2PixOptions {
  int64_t size = 64;
  int64_t width = 32;
  std::vector<std::string> classes;
  int64_t map_channels() const { return 6 + static_cast<int64_t>(classes.size()) + 1; }
};

// The maps of one layout: [1, 6 + K + 1, size, size] on `device`.
at::Tensor layout_maps(const Layout& layout, const Pix2PixOptions& o, c10::Device device) {
  Rendered r = render(layout, o.size, o.size, device, o.classes);
  at::Tensor classes = r.class_map.reshape({o.size, o.size}).round().to(at::kLong);
  at::Tensor one_hot = at::one_hot(classes, static_cast<int64_t>(o.classes.size()) + 1).permute({2, 0, 1}).unsqueeze(0);
  return at::cat(
      {r.preview.reshape({1, 3, o.size, o.size}), r.color_map.reshape({1, 3, o.size, o.size}), one_hot.to(at::kFloat)},
      1);
}

// A stride-2 convolution, GroupNorm (norm) and LeakyReLU, appended to `s`.
void append_down(nn::Sequential& s, int64_t in, int64_t out, bool norm) {
  s->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 4).stride(2).padding(1).bias(!norm)));
  if (norm) s->push_back(nn::GroupNorm(nn::GroupNormOptions(std::min<int64_t>(8, out), out)));
  s->push_back(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)));
}

nn::Sequential down(int64_t in, int64_t out, bool norm) {
  nn::Sequential s;
  append_down(s, in, out, norm);
  return s;
}

nn::Sequential up(int64_t in, int64_t out) {
  return nn::Sequential(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1).bias(false)),
                        nn::GroupNorm(nn::GroupNormOptions(std::min<int64_t>(8, out), out)), nn::ReLU());
}

struct UNetImpl : nn::Module {
  explicit UNetImpl(const Pix2PixOptions& o) : options(o) {
    const int64_t w = o.width;
    d1 = register_module("d1", down(o.map_channels(), w, false));
    d2 = register_module("d2", down(w, 2 * w, true));
    d3 = register_module("d3", down(2 * w, 4 * w, true));
    d4 = register_module("d4", down(4 * w, 8 * w, true));
    u4 = register_module("u4", up(8 * w, 4 * w));
    u3 = register_module("u3", up(8 * w, 2 * w));
    u2 = register_module("u2", up(4 * w, w));
    u1 = register_module("u1", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(2 * w, 3, 4).stride(2).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& maps) {
    torch::Tensor e1 = d1->forward(maps), e2 = d2->forward(e1), e3 = d3->forward(e2), e4 = d4->forward(e3);
    // The transposed convolutions through cozy::layers (oneDNN on the CPU).
    torch::Tensor y = torch::cat({layers::forward(*u4, e4), e3}, 1);
    y = torch::cat({layers::forward(*u3, y), e2}, 1);
    y = torch::cat({layers::forward(*u2, y), e1}, 1);
    return torch::sigmoid(layers::forward(*u1, y));
  }
  Pix2PixOptions options;
  nn::Sequential d1{nullptr}, d2{nullptr}, d3{nullptr}, d4{nullptr}, u4{nullptr}, u3{nullptr}, u2{nullptr};
  nn::ConvTranspose2d u1{nullptr};
};
TORCH_MODULE(UNet);

struct PatchDImpl : nn::Module {
  explicit PatchDImpl(const Pix2PixOptions& o) {
    const int64_t w = o.width;
    nn::Sequential s;
    append_down(s, o.map_channels() + 3, 2 * w, false);
    append_down(s, 2 * w, 4 * w, true);
    append_down(s, 4 * w, 8 * w, true);
    s->push_back(nn::Conv2d(nn::Conv2dOptions(8 * w, 1, 3).padding(1)));
    net = register_module("net", s);
  }
  torch::Tensor forward(const torch::Tensor& maps, const torch::Tensor& image) {
    return net->forward(torch::cat({maps, image}, 1));
  }
  nn::Sequential net{nullptr};
};
TORCH_MODULE(PatchD);

nlohmann::json pix2pix_metadata(const Pix2PixOptions& o) {
  nlohmann::json m = checkpoint::metadata("layout-gan");
  m.update({{"architecture", "pix2pix-unet"}, {"size", o.size}, {"width", o.width}, {"classes", o.classes}});
  return m;
}

class Pix2PixModel : public LayoutModel {
 public:
  Pix2PixModel(UNet net, nlohmann::json metadata) : net_(std::move(net)), metadata_(std::move(metadata)) {
    net_->eval();
  }
  int64_t size() const override { return net_->options.size; }
  const std::vector<std::string>& class_names() const override { return net_->options.classes; }
  at::Tensor generate(const Layout& layout, c10::Device device) const override {
    torch::NoGradGuard no_grad;
    UNet net = net_;  // inference only: GroupNorm keeps no running state
    const c10::Device own = net_->parameters().front().device();
    return net->forward(layout_maps(layout, net_->options, own)).to(device);
  }
  // Weights as float16: half the file (3 MB, within the models folder's
  // budget); LoadLayoutModel computes in float32 again.
  void save(const fs::path& file) const override {
    UNet half(net_->options);
    {
      torch::NoGradGuard no_grad;
      auto from = net_->parameters(), to = half->parameters();
      for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    }
    half->to(at::kCPU, at::kHalf);
    nlohmann::json meta = metadata_;
    meta["weights_dtype"] = "float16";
    checkpoint::save(file, meta, [&](auto& a) { checkpoint::write_module(a, "generator", *half); });
  }

 private:
  UNet net_;
  nlohmann::json metadata_;
};

/// Pairs of random layouts and their scenes, for TrainLayoutGAN.
class LayoutPairs : public Object {
 public:
  std::string type_name() const override { return "LAYOUT_PAIRS"; }
  std::vector<Layout> layouts;
  at::Tensor scenes;  // [N, 3, size, size] on the CPU
  std::vector<std::string> classes;
  int64_t size = 64;
  std::string description;
};

NodeDef node(const char* type, const char* display, const char* description) {
  return NodeDef::named(type, display, "interaction/layout to image", description);
}

NodeDef synthetic_layouts() {
  NodeDef d = node("SyntheticLayouts", "Synthetic Layouts",
                   "A paired data set for TrainLayoutGAN: count random layouts of 1 to max_shapes shapes "
                   "(RandomLayout from seed, seed + 1, ...) with the generator's classes, and the scene ComposeScene "
                   "makes of each (fit clip, texture_strength, candidates, its seed the layout's) at size x size. "
                   "With backgrounds random, each layout's background is a random colour (RandomLayout's is dark).");
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR),
                   InputSpec::Int("count", 2000).range(1, 1000000),
                   InputSpec::Int("size", 64).range(16, 1024).help("divisible by 16"),
                   InputSpec::Int("max_shapes", 3).range(1, 8),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Float("texture_strength", 0.6).range(0, 1).with_step(0.05),
                   InputSpec::Int("candidates", 1).range(1, 64).help("ComposeScene's: objects drawn per shape"),
                   InputSpec::Choice("backgrounds", {"dark", "random"})
                       .help("dark: RandomLayout's own; random: each layout's background a random colour")};
  d.spec.outputs = {{"LAYOUT_PAIRS", "LAYOUT_PAIRS"}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto g = in.object<Generator>("generator");
    if (g->num_classes() == 0)
      throw Error("SyntheticLayouts needs a class-conditional generator (one class per shape)");
    const int64_t count = in.integer("count"), size = in.integer("size"), seed = in.integer("seed");
    if (size % 16 != 0)
      throw Error("size " + std::to_string(size) + " is not divisible by 16 (the U-Net halves it 4 times)");
    const bool random_backgrounds = in.string("backgrounds") == "random";
    auto pairs = std::make_shared<LayoutPairs>();
    pairs->classes = g->class_names();
    pairs->size = size;
    pairs->scenes = at::empty({count, 3, size, size});
    training::Clock clock;
    for (int64_t i = 0; i < count; ++i) {
      ctx.check_cancelled();
      at::Generator gen = seeded_generator(seed + i);
      pairs->layouts.push_back(random_layout(gen, in.integer("max_shapes"), pairs->classes));
      if (random_backgrounds) {  // any colour, light or dark, so that the model follows the layout's own
        auto& bg = pairs->layouts.back().background;
        for (double& c : bg) c = at::rand({1}, gen).item<double>();
      }
      Scene scene =
          compose(pairs->layouts.back(), *g, size, size, seed + i, ctx.device(), in.number("texture_strength"),
                  /*clip=*/true, in.integer("candidates"));
      pairs->scenes[i] = scene.image[0].cpu();
      if ((i + 1) % 50 == 0 || i + 1 == count) ctx.progress(i + 1, count, "scenes" + clock.rate(i + 1, count));
    }
    std::ostringstream text;
    text << count << " random layouts of 1 to " << in.integer("max_shapes")
         << " shapes and their ComposeScene scenes at " << size << "x" << size << " (seed " << seed << ")";
    pairs->description = text.str();
    ctx.log(LogLevel::info, pairs->description + " in " + std::to_string(std::lround(clock.seconds())) + " s");
    return {std::static_pointer_cast<Object>(pairs)};
  };
  return d;
}

NodeDef train_layout_gan() {
  NodeDef d = node("TrainLayoutGAN", "Train Layout GAN (pix2pix)",
                   "Trains the layout-to-image generator (a U-Net on the layout's maps, docs/interaction.md) against "
                   "a PatchGAN discriminator plus l1_weight x the L1 distance to the pair's scene, on all but the "
                   "last test_share of the pairs. Logs D loss, G's adversarial loss and L1 every 10 steps "
                   "(<name>_log.csv and .png), the held-out pairs' L1 at the end, and a grid of held-out maps' "
                   "previews, generated images and scenes (<name>_samples.png). Deterministic for a seed on the CPU.");
  d.spec.inputs = {
      InputSpec::Link("pairs", "LAYOUT_PAIRS"),
      InputSpec::Int("steps", 2000).range(1, 10000000),
      InputSpec::Int("batch", 16).range(1, 4096),
      InputSpec::Float("lr", 2e-4).range(1e-6, 1).with_step(1e-5),
      InputSpec::Float("l1_weight", 100.0).range(0, 10000).with_step(1),
      InputSpec::Int("width", 32).range(4, 512).help("channels of the first layer"),
      InputSpec::Float("test_share", 0.1).range(0, 0.9).with_step(0.05),
      InputSpec::Int("seed", 0).range(0, 2147483647),
      InputSpec::String("name", "layout_gan").help("stem of the log and sample files, in the output folder")};
  d.spec.outputs = {{"LAYOUT_MODEL", "LAYOUT_MODEL"}, {"summary", types::STRING}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto pairs = in.object<LayoutPairs>("pairs");
    Pix2PixOptions o{pairs->size, in.integer("width"), pairs->classes};
    const int64_t total = static_cast<int64_t>(pairs->layouts.size());
    const int64_t held = std::min<int64_t>(total - 1, std::llround(double(total) * in.number("test_share")));
    const int64_t train = total - held;
    const int64_t steps = in.integer("steps"), batch = std::min(in.integer("batch"), train), seed = in.integer("seed");
    const double l1_weight = in.number("l1_weight");
    const std::string name = in.string("name"), stem = fs::path(name).filename().string();
    const fs::path out_dir = path_inside(ctx.output_dir(), name, "name").parent_path();
    const c10::Device device = ctx.device();

    // Every pair's maps, once (the layouts are fixed).
    at::Tensor maps = at::empty({total, o.map_channels(), o.size, o.size});
    for (int64_t i = 0; i < total; ++i)
      maps[i] = layout_maps(pairs->layouts[static_cast<std::size_t>(i)], o, at::kCPU)[0];

    torch::manual_seed(static_cast<uint64_t>(seed));
    UNet g(o);
    PatchD dis(o);
    g->to(device);
    dis->to(device);
    const auto adam = torch::optim::AdamOptions(in.number("lr")).betas({0.5, 0.999});
    torch::optim::Adam opt_g(g->parameters(), adam), opt_d(dis->parameters(), adam);
    at::Generator gen = seeded_generator(seed);
    training::LossLog log("step", {"d_loss", "g_adversarial", "l1"});
    training::Clock clock;
    at::Tensor order = at::randperm(train, gen, at::kLong);
    int64_t cursor = 0;
    double sums[3] = {0, 0, 0};
    for (int64_t step = 1; step <= steps; ++step) {
      ctx.check_cancelled();
      if (cursor + batch > train) order = at::randperm(train, gen, at::kLong), cursor = 0;
      at::Tensor idx = order.narrow(0, cursor, batch);
      cursor += batch;
      torch::Tensor m = maps.index_select(0, idx).to(device), real = pairs->scenes.index_select(0, idx).to(device);
      torch::Tensor fake = g->forward(m);
      opt_d.zero_grad();
      torch::Tensor d_real = dis->forward(m, real), d_fake = dis->forward(m, fake.detach());
      torch::Tensor d_loss = 0.5 * (torch::binary_cross_entropy_with_logits(d_real, torch::ones_like(d_real)) +
                                    torch::binary_cross_entropy_with_logits(d_fake, torch::zeros_like(d_fake)));
      d_loss.backward();
      opt_d.step();
      opt_g.zero_grad();
      torch::Tensor judged = dis->forward(m, fake);
      torch::Tensor adversarial = torch::binary_cross_entropy_with_logits(judged, torch::ones_like(judged));
      torch::Tensor l1 = (fake - real).abs().mean();
      (adversarial + l1_weight * l1).backward();
      opt_g.step();
      sums[0] += d_loss.item<double>(), sums[1] += adversarial.item<double>(), sums[2] += l1.item<double>();
      if (step % 10 == 0 || step == steps) {
        const double n = double(step % 10 == 0 ? 10 : step % 10);
        log.add(step, {sums[0] / n, sums[1] / n, sums[2] / n});
        sums[0] = sums[1] = sums[2] = 0;
        std::ostringstream text;
        text << "step " << step << "/" << steps << " L1 " << log.last()[2] << clock.rate(step * batch, steps * batch);
        ctx.progress(step, steps, text.str());
      }
    }
    g->eval();
    log.write(ctx, out_dir, stem + "_log");
    // The held-out pairs: mean L1, and a grid of maps' previews, generated images and scenes.
    double test_l1 = std::nan("");
    if (held > 0) {
      torch::NoGradGuard no_grad;
      at::Tensor made = training::batched(maps.narrow(0, train, held), 64, device,
                                          [&](const at::Tensor& x) { return g->forward(x); });
      test_l1 = (made - pairs->scenes.narrow(0, train, held)).abs().mean().item<double>();
      const int64_t shown = std::min<int64_t>(8, held);
      at::Tensor grid = at::cat({maps.narrow(0, train, shown).narrow(1, 0, 3), made.narrow(0, 0, shown),
                                 pairs->scenes.narrow(0, train, shown)},
                                0);
      ctx.add_file(write_numbered_file(out_dir, stem + "_samples", ".png",
                                       [&](const fs::path& temp) { training::write_grid(grid, shown, temp); }),
                   "output");
    }
    const auto& rows = log.last();
    nlohmann::json meta = pix2pix_metadata(o);
    meta.update({{"dataset", pairs->description},
                 {"steps", steps},
                 {"batch", batch},
                 {"l1_weight", l1_weight},
                 {"seed", seed},
                 {"train_pairs", train},
                 {"test_pairs", held},
                 {"seconds", std::round(clock.seconds())}});
    if (held > 0) meta["test_l1"] = test_l1;
    nlohmann::json summary = {{"metric", "train_layout_gan"}, {"steps", steps},     {"train_pairs", train},
                              {"test_pairs", held},           {"last_l1", rows[2]}, {"last_d_loss", rows[0]},
                              {"last_g_adversarial", rows[1]}};
    if (held > 0) summary["test_l1"] = test_l1;
    ctx.log(LogLevel::info, "TrainLayoutGAN: " + summary.dump());
    return {std::static_pointer_cast<Object>(std::make_shared<Pix2PixModel>(g, meta)), summary.dump()};
  };
  return d;
}

NodeDef load_layout_model() {
  NodeDef d = node("LoadLayoutModel", "Load Layout Model",
                   "A layout-to-image generator trained by TrainLayoutGAN, from a Cozy checkpoint in the models "
                   "folder (or an absolute path); its weights go to the run's device.");
  d.spec.inputs = {InputSpec::String("checkpoint").files_in("models", {".pt"}).help("e.g. layout_pix2pix_00001.pt")};
  d.spec.outputs = {{"LAYOUT_MODEL", "LAYOUT_MODEL"}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const fs::path file = checkpoint::model_path(ctx, in.string("checkpoint"));
    checkpoint::Reader r = checkpoint::open(file, ctx.device(), "layout-gan", "a layout-to-image model");
    Pix2PixOptions o;
    try {
      o.size = r.metadata.at("size");
      o.width = r.metadata.at("width");
      o.classes = r.metadata.at("classes").get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      throw Error("incomplete checkpoint metadata in " + file.string() + ": " + e.what());
    }
    UNet net(o);
    // The archive's tensors replace the module's storage as they are: read
    // float16 weights into a float16 module, then compute in float32.
    if (r.metadata.value("weights_dtype", "float32") == "float16") net->to(at::kHalf);
    if (!r.read_module("generator", *net)) throw Error("checkpoint " + file.string() + " has no generator weights");
    net->to(ctx.device(), at::kFloat);  // float16 weights in the file (or float32) compute in float32
    return {std::static_pointer_cast<Object>(std::make_shared<Pix2PixModel>(net, r.metadata))};
  };
  return d;
}

NodeDef layout_to_image() {
  NodeDef d = node("LayoutToImage", "Layout to Image (learned)",
                   "A picture of a layout made in one pass by a learned generator (TrainLayoutGAN): the layout's "
                   "maps (preview, colours, classes) at the model's size go in, an IMAGE [1, 3, size, size] comes "
                   "out, on the run's device. Resize or Upscale it for other sizes. Shapes whose class the model "
                   "does not know are drawn as plain shapes.");
  d.spec.inputs = {InputSpec::Link("model", "LAYOUT_MODEL"), InputSpec::Link("layout", types::LAYOUT)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    return {in.object<LayoutModel>("model")->generate(*in.object<Layout>("layout"), ctx.device())};
  };
  return d;
}

}  // namespace

void register_layout_gan_nodes(Registrar& r) {
  r.add(synthetic_layouts());
  r.add(train_layout_gan());
  r.add(load_layout_model());
  r.add(layout_to_image());
}

}  // namespace cozy::interaction
