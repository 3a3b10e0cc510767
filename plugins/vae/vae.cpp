// The vae plugin: a convolutional variational auto-encoder (TrainVAE,
// LoadVAE) and its nodes (VAEEncode, VAEDecode, VAEReconstruct), and
// sampling from it (VAESample, from the prior or from a mixture fitted to
// its latents: FitLatentMixture).
//
//   encoder: Conv(C, w, 4, 2, 1) ReLU, Conv(w, 2w, 4, 2, 1) ReLU, flatten,
//            Linear -> mean [D], Linear -> log-variance [D]
//   decoder: Linear(D, 2w (S/4)^2) ReLU, ConvT(2w, w, 4, 2, 1) ReLU,
//            ConvT(w, C, 4, 2, 1) -> logits; sigmoid -> image in [0, 1]
// Loss per image: binary cross-entropy summed over pixels + beta * KL.
#include "checkpoint.hpp"
#include "data_parallel.hpp"
#include "layers.hpp"
#include "mixture.hpp"
#include "training.hpp"

#include <cozy/sdk.hpp>

#include <torch/torch.h>

#include <sstream>

namespace cozy::vae {
namespace {

namespace nn = torch::nn;
namespace fs = std::filesystem;

struct VaeOptions {
  int64_t channels = 1;
  int64_t image_size = 28;
  int64_t latent = 32;
  int64_t width = 32;
};

struct VaeNetImpl : nn::Module {
  explicit VaeNetImpl(const VaeOptions& o) : options(o) {
    if (o.image_size % 4 != 0) throw Error("the VAE needs an image size divisible by 4");
    const int64_t w = o.width, side = o.image_size / 4, flat = 2 * w * side * side;
    encoder = register_module(
        "encoder", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(o.channels, w, 4).stride(2).padding(1)), nn::ReLU(),
                                  nn::Conv2d(nn::Conv2dOptions(w, 2 * w, 4).stride(2).padding(1)), nn::ReLU(),
                                  nn::Flatten()));
    mean = register_module("mean", nn::Linear(flat, o.latent));
    logvar = register_module("logvar", nn::Linear(flat, o.latent));
    decoder = register_module(
        "decoder",
        nn::Sequential(nn::Linear(o.latent, flat), nn::ReLU(),
                       nn::Unflatten(nn::UnflattenOptions(1, {2 * w, side, side})),
                       nn::ConvTranspose2d(nn::ConvTranspose2dOptions(2 * w, w, 4).stride(2).padding(1)), nn::ReLU(),
                       nn::ConvTranspose2d(nn::ConvTranspose2dOptions(w, o.channels, 4).stride(2).padding(1))));
  }
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& images) {
    torch::Tensor h = encoder->forward(images);
    return {mean->forward(h), logvar->forward(h)};
  }
  // The transposed convolutions through cozy::layers (oneDNN on the CPU).
  torch::Tensor decode_logits(const torch::Tensor& z) { return layers::forward(*decoder, z); }

  VaeOptions options;
  nn::Sequential encoder{nullptr}, decoder{nullptr};
  nn::Linear mean{nullptr}, logvar{nullptr};
};
TORCH_MODULE(VaeNet);

class ConvVae : public Vae, public SavableModel {
 public:
  ConvVae(VaeNet net, nlohmann::json metadata) : net_(std::move(net)), metadata_(std::move(metadata)) { net_->eval(); }
  int64_t latent_size() const override { return net_->options.latent; }
  std::vector<int64_t> image_shape() const override {
    return {net_->options.channels, net_->options.image_size, net_->options.image_size};
  }
  c10::Device device() const override { return net_->parameters().front().device(); }
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& images) const override {
    const auto s = image_shape();
    if (images.dim() != 4 || images.size(1) != s[0] || images.size(2) != s[1] || images.size(3) != s[2])
      throw Error("the VAE encodes images [N, " + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
                  std::to_string(s[2]) + "], not " + c10::str(images.sizes()));
    torch::NoGradGuard no_grad;
    VaeNet net = net_;  // eval mode: only read
    return net->encode(images.to(device(), at::kFloat));
  }
  at::Tensor decode(const at::Tensor& z) const override {
    if (z.dim() != 2 || z.size(1) != latent_size())
      throw Error("the VAE decodes latents [N, " + std::to_string(latent_size()) + "], not " + c10::str(z.sizes()));
    torch::NoGradGuard no_grad;
    VaeNet net = net_;
    return torch::sigmoid(net->decode_logits(z.to(device(), at::kFloat)));
  }
  void save(const fs::path& file) const override {
    checkpoint::save(file, metadata_, [&](auto& a) { checkpoint::write_module(a, "vae", *net_); });
  }

 private:
  VaeNet net_;
  nlohmann::json metadata_;
};

nlohmann::json vae_metadata(const VaeOptions& o) {
  nlohmann::json m = checkpoint::metadata("vae");
  m.update({{"architecture", "conv-vae"}, {"channels", o.channels}, {"image_size", o.image_size},
            {"latent", o.latent}, {"width", o.width}});
  return m;
}

// Per-image reconstruction (BCE summed over pixels) and KL terms, averaged over the batch.
std::pair<torch::Tensor, torch::Tensor> vae_losses(VaeNet& net, const torch::Tensor& x, at::Generator* gen) {
  auto [mu, logvar] = net->encode(x);
  torch::Tensor eps = gen ? at::randn(mu.sizes(), *gen, at::kFloat).to(mu.device()) : torch::zeros_like(mu);
  torch::Tensor z = mu + eps * torch::exp(0.5 * logvar);
  torch::Tensor logits = net->decode_logits(z);
  const double n = double(x.size(0));
  torch::Tensor recon = torch::binary_cross_entropy_with_logits(logits, x, {}, {}, at::Reduction::Sum) / n;
  torch::Tensor kl = -0.5 * torch::sum(1 + logvar - mu.pow(2) - logvar.exp()) / n;
  return {recon, kl};
}

NodeDef node(const char* type, const char* display, const char* description) {
  return NodeDef::named(type, display, "vae", description);
}

NodeDef train_vae() {
  NodeDef d = node("TrainVAE", "Train VAE",
                   "Trains a convolutional VAE on a data set (Adam; loss per image = binary cross-entropy summed over "
                   "pixels + beta x KL). After every epoch it reports the test set's reconstruction and KL loss per "
                   "image (with test_dataset) and writes a grid of samples from the prior (every samples_every epochs); writes <name>_log.csv and "
                   ".png, and with checkpoint_every K a checkpoint <name>_epoch<k>.pt every K epochs (weights, "
                   "optimiser, random state: resume continues it exactly). Cancelling stops after the current step, "
                   "keeping the checkpoints written. Deterministic for a seed on the CPU. "
      "Over several ranks (cozy run --nproc, torchrun: docs/distributed.md) each rank takes `batch` images of "
      "every global batch, gradients are averaged over the ranks, rank 0 alone writes files, and a restarted run "
      "resumes from its last checkpoint.");
  d.spec.inputs = {InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Link("test_dataset", types::DATASET).optional(),
                   InputSpec::Int("epochs", 10).range(1, 10000),
                   InputSpec::Int("batch", 128).range(1, 4096),
                   InputSpec::Float("lr", 1e-3).range(1e-6, 1).with_step(1e-4),
                   InputSpec::Float("beta", 1.0).range(0, 100).with_step(0.1),
                   InputSpec::Int("latent", 32).range(1, 4096),
                   InputSpec::Int("width", 32).range(4, 512),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::String("name", "vae").help("prefix of the files written"),
                   InputSpec::Int("checkpoint_every", 0).range(0, 100000).help("epochs; 0: no checkpoints"),
                   InputSpec::String("resume", "").help("an epoch checkpoint of TrainVAE to continue"),
                   InputSpec::Int("samples_every", 1).range(1, 100000).help("epochs between grids of samples (and the last)")};
  d.spec.outputs = {{"VAE", types::VAE}, {"summary", types::STRING}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto data = in.object<Dataset>("dataset");
    std::shared_ptr<Dataset> test = in.has("test_dataset") ? in.object<Dataset>("test_dataset") : nullptr;
    const auto shape = data->image_shape();
    if (shape[1] != shape[2]) throw Error("the VAE needs square images");
    VaeOptions o{shape[0], shape[1], in.integer("latent"), in.integer("width")};
    const int64_t epochs = in.integer("epochs"), batch = std::min(in.integer("batch"), data->size());
    const double beta = in.number("beta");
    const int64_t seed = in.integer("seed");
    const std::string name = in.string("name"), stem = fs::path(name).filename().string();
    const fs::path out_dir = path_inside(ctx.output_dir(), name, "name").parent_path();
    const c10::Device device = ctx.device();

    at::Generator gen = seeded_generator(seed);
    torch::manual_seed(static_cast<uint64_t>(seed));  // weight initialisation
    training::DataParallel dp(ctx);
    const std::string resume = in.string("resume");
    const int64_t every = in.integer("checkpoint_every");
    // What to continue: the checkpoint named, or after a restart the last one
    // written; rank 0 finds it and the other ranks get a copy.
    fs::path resume_file;
    if (dp.writes()) {
      if (!resume.empty()) resume_file = checkpoint::resume_path(ctx, resume);
      else if (dp.restarts() > 0 && every > 0) resume_file = training::latest_checkpoint(out_dir, stem + "_epoch");
    }
    resume_file = dp.share_file(resume_file, ctx.temp_dir() / ("rank" + std::to_string(dp.rank())));
    std::optional<checkpoint::Reader> start;
    if (!resume_file.empty()) {
      const fs::path file = resume_file;
      if (resume.empty()) ctx.log(LogLevel::info, "restart " + std::to_string(dp.restarts()) + ": resuming from " + file.string());
      start = checkpoint::open(file, device, "vae", "a VAE");
      try {
        o = {start->metadata.at("channels"), start->metadata.at("image_size"), start->metadata.at("latent"),
             start->metadata.at("width")};
      } catch (const nlohmann::json::exception& e) {
        throw Error("incomplete checkpoint metadata in " + file.string() + ": " + e.what());
      }
      if (o.channels != shape[0] || o.image_size != shape[1]) throw Error("the checkpoint's images are not the data set's");
    }
    VaeNet net(o);
    net->to(device);
    if (!start) dp.broadcast(*net);  // every rank starts from rank 0's weights (a checkpoint is the same on each)
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(in.number("lr")));
    at::Tensor prior = at::randn({64, o.latent}, gen, at::kFloat);  // the same samples every epoch
    int64_t first = 1;
    training::LossLog log("epoch", {"train_loss", "test_recon", "test_kl"});
    if (start) {
      torch::serialize::InputArchive og, state;
      if (!start->read_module("vae", *net) || !start->read_archive("optimizer", og) ||
          !start->read_archive("training_state", state))
        throw Error("cannot resume from " + start->file.string() + ": it is not an epoch checkpoint of TrainVAE");
      opt.load(og);
      at::Tensor rng, epoch_done, rows;
      state.read("rng", rng);
      state.read("epoch", epoch_done);
      state.read("log", rows);
      gen.set_state(rng.cpu());
      first = epoch_done.item<int64_t>() + 1;
      rows = rows.cpu().to(at::kDouble);
      for (int64_t i = 0; i < rows.size(0); ++i)
        log.add(i + 1, {rows[i][0].item<double>(), rows[i][1].item<double>(), rows[i][2].item<double>()});
    }
    std::pair<at::Tensor, at::Tensor> test_set;
    if (test) test_set = test->batch(at::arange(test->size(), at::kLong));

    const int64_t per_epoch = dp.steps(data->size(), batch), total = epochs * per_epoch;
    if (per_epoch == 0)
      throw Error("the data set has " + std::to_string(data->size()) + " images, fewer than a batch of " +
                  std::to_string(batch) + " on each of " + std::to_string(dp.world()) + " ranks");
    training::Clock clock;
    std::vector<at::Tensor> log_rows;  // every epoch's row, for checkpoints
    if (start) {
      at::Tensor rows;
      torch::serialize::InputArchive state;
      start->read_archive("training_state", state);
      state.read("log", rows);
      for (int64_t i = 0; i < rows.size(0); ++i) log_rows.push_back(rows[i].cpu().to(at::kDouble));
    }
    for (int64_t epoch = first; epoch <= epochs; ++epoch) {
      net->train();
      at::Tensor order = at::randperm(data->size(), gen, at::kLong);  // the same on every rank
      // Alone, the noise comes from `gen` as it always did; each rank draws its own.
      at::Generator noise = dp.active() ? dp.noise(seed, epoch) : gen;
      double sum = 0;
      for (int64_t s = 0; s < per_epoch; ++s) {
        ctx.check_cancelled();
        at::Tensor x = data->batch(dp.shard(order, s, batch)).first.to(device);
        opt.zero_grad();
        auto [recon, kl] = vae_losses(net, x, &noise);
        at::Tensor loss = recon + beta * kl;
        loss.backward();
        dp.average_gradients(*net);
        opt.step();
        sum += loss.item<double>();
        const int64_t step = (epoch - 1) * per_epoch + s + 1;
        std::ostringstream text;
        text.precision(4);
        text << "epoch " << epoch << "/" << epochs << " loss " << loss.item<float>()
             << clock.rate(step * batch, total * batch);
        ctx.progress(step, total, text.str());
      }
      sum = dp.sum(sum) / dp.world();  // the mean over every rank's batches
      net->eval();
      double test_recon = std::nan(""), test_kl = std::nan("");
      if (test) {
        torch::NoGradGuard no_grad;
        double r = 0, k = 0;
        const int64_t n = test_set.first.size(0);
        for (int64_t i = 0; i < n; i += 1000) {
          const int64_t m = std::min<int64_t>(1000, n - i);
          auto [recon, kl] = vae_losses(net, test_set.first.narrow(0, i, m).to(device), nullptr);
          r += recon.item<double>() * double(m), k += kl.item<double>() * double(m);
        }
        test_recon = r / double(n), test_kl = k / double(n);
      }
      log.add(epoch, {sum / double(per_epoch), test_recon, test_kl});
      log_rows.push_back(at::tensor({sum / double(per_epoch), test_recon, test_kl}, at::kDouble));
      if (every > 0 && epoch % every == 0 && dp.writes()) {
        nlohmann::json meta = vae_metadata(o);
        meta.update({{"dataset", data->describe()}, {"epochs", epoch}, {"beta", beta}, {"seed", seed}});
        ctx.add_file(write_numbered_file(out_dir, stem + "_epoch" + std::to_string(epoch), ".pt", [&](const fs::path& t) {
                       checkpoint::save(t, meta, [&](torch::serialize::OutputArchive& a) {
                         checkpoint::write_module(a, "vae", *net);
                         torch::serialize::OutputArchive og, state;
                         opt.save(og);
                         a.write("optimizer", og);
                         state.write("rng", gen.get_state());
                         state.write("epoch", at::tensor(epoch, at::kLong));
                         state.write("log", at::stack(log_rows));
                         a.write("training_state", state);
                       });
                     }),
                     "output");
      }
      std::ostringstream line;
      line << "epoch " << epoch << ": train loss " << sum / double(per_epoch);
      if (test) line << ", test reconstruction " << test_recon << " + KL " << test_kl << " per image";
      ctx.log(LogLevel::info, line.str());
      if (dp.writes() && (epoch % in.integer("samples_every") == 0 || epoch == epochs)) {
        torch::NoGradGuard no_grad;
        at::Tensor samples = torch::sigmoid(net->decode_logits(prior.to(device)));
        ctx.add_file(write_numbered_file(out_dir, stem + "_epoch" + std::to_string(epoch), ".png",
                                         [&](const fs::path& temp) { training::write_grid(samples, 8, temp); }),
                     "output");
      }
    }
    if (dp.writes()) log.write(ctx, out_dir, stem + "_log");
    if (dp.active())
      ctx.log(LogLevel::info, "rank " + std::to_string(dp.rank()) + " of " + std::to_string(dp.world()) + ": " +
                                  std::to_string(dp.seconds()) + " s in collectives");
    nlohmann::json meta = vae_metadata(o);
    meta.update({{"dataset", data->describe()}, {"epochs", epochs}, {"beta", beta}, {"seed", seed},
                 {"seconds", std::round(clock.seconds())}});
    const auto& last = log.last();
    if (test) meta.update({{"test_recon", last[1]}, {"test_kl", last[2]}});
    std::ostringstream summary;
    summary << "VAE (latent " << o.latent << ") trained " << epochs << " epochs on " << data->describe()
            << "; last train loss " << last[0];
    if (test) summary << "; test reconstruction " << last[1] << " + KL " << last[2] << " per image";
    return {std::static_pointer_cast<Vae>(std::make_shared<ConvVae>(net, meta)), summary.str()};
  };
  return d;
}

NodeDef load_vae() {
  NodeDef d = node("LoadVAE", "Load VAE",
                   "A VAE from a Cozy checkpoint: a file name in the models folder, or an absolute path. Its weights "
                   "go to the run's device.");
  d.spec.inputs = {InputSpec::String("checkpoint").files_in("models", {".pt"}).help("e.g. fashion_vae_00001.pt")};
  d.spec.outputs = {{"VAE", types::VAE}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const fs::path file = checkpoint::model_path(ctx, in.string("checkpoint"));
    checkpoint::Reader r = checkpoint::open(file, ctx.device(), "vae", "a VAE");
    VaeOptions o;
    try {
      o = {r.metadata.at("channels"), r.metadata.at("image_size"), r.metadata.at("latent"), r.metadata.at("width")};
    } catch (const nlohmann::json::exception& e) {
      throw Error("incomplete checkpoint metadata in " + file.string() + ": " + e.what());
    }
    VaeNet net(o);
    if (!r.read_module("vae", *net)) throw Error("checkpoint " + file.string() + " has no VAE weights");
    net->to(ctx.device());
    return {std::static_pointer_cast<Vae>(std::make_shared<ConvVae>(net, r.metadata))};
  };
  return d;
}

NodeDef encode() {
  NodeDef d = node("VAEEncode", "VAE Encode",
                   "Images to latents: the posterior mean, or (mode sample) a draw from the posterior for a seed.");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE), InputSpec::Link("images", types::IMAGE),
                   InputSpec::Choice("mode", {"mean", "sample"}), InputSpec::Int("seed", 0).range(0, 2147483647)};
  d.spec.outputs = {{"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto vae = in.object<Vae>("vae");
    auto [mu, logvar] = vae->encode(in.image("images"));
    if (in.string("mode") == "sample") {
      at::Generator gen = seeded_generator(in.integer("seed"));
      mu = mu + at::randn(mu.sizes(), gen, at::kFloat).to(mu.device()) * (0.5 * logvar).exp();
    }
    return {mu.to(ctx.device())};
  };
  return d;
}

NodeDef decode() {
  NodeDef d = node("VAEDecode", "VAE Decode", "Latents [N, D] to images (for example from VAEEncode or LatentNoise).");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE), InputSpec::Link("latent", types::LATENT)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    return {in.object<Vae>("vae")->decode(in.tensor("latent")).to(ctx.device())};
  };
  return d;
}

NodeDef reconstruct() {
  NodeDef d = node("VAEReconstruct", "VAE Reconstruct", "Images encoded (posterior mean) and decoded again.");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE), InputSpec::Link("images", types::IMAGE)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto vae = in.object<Vae>("vae");
    const at::Tensor& images = in.image("images");
    at::Tensor out = training::batched(images, 1000, vae->device(),
                                       [&](const at::Tensor& x) { return vae->decode(vae->encode(x).first); });
    return {out.to(ctx.device())};
  };
  return d;
}

NodeDef fit_latent_mixture() {
  NodeDef d = node("FitLatentMixture", "Fit Latent Mixture",
                   "A Gaussian mixture fitted (expectation-maximisation, k-means++ start) to the posterior means of a "
                   "data set's images: where the VAE's decoder learnt to decode. VAESample draws from it instead of "
                   "the prior N(0, I), which a VAE's latents cover badly (ex-post density estimation, Ghosh et al. "
                   "2020). Its report (JSON, for SaveMetrics) gives the fit's mean log-likelihood. Deterministic for a seed.");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE),
                   InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Int("components", 10).range(1, 1000),
                   InputSpec::Choice("covariance", {"full", "diagonal"}),
                   InputSpec::Int("iterations", 300).range(1, 100000).help("at most; it stops when it converges"),
                   InputSpec::Int("limit", 0).range(0, 100000000).help("images of the data set used; 0: all"),
                   InputSpec::Int("seed", 0).range(0, 2147483647)};
  d.spec.outputs = {{"MIXTURE", "LATENT_MIXTURE"}, {"report", types::STRING}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto vae = in.object<Vae>("vae");
    auto data = in.object<Dataset>("dataset");
    const int64_t count = in.integer("limit") > 0 ? std::min(in.integer("limit"), data->size()) : data->size();
    std::vector<at::Tensor> chunks;
    for (int64_t i = 0; i < count; i += 1000) {
      ctx.check_cancelled();
      const at::Tensor images = data->batch(at::arange(i, std::min(i + 1000, count), at::kLong)).first;
      chunks.push_back(vae->encode(images.to(vae->device())).first.cpu());
    }
    at::Generator gen = seeded_generator(in.integer("seed"));
    const int iterations = static_cast<int>(in.integer("iterations"));
    auto mixture = std::make_shared<LatentMixture>(
        fit_mixture(at::cat(chunks), in.integer("components"), in.string("covariance") == "diagonal", iterations, gen,
                    1e-6, [&](int it, double ll) {
                      ctx.check_cancelled();
                      ctx.progress(it, iterations, "log-likelihood " + std::to_string(ll));
                    }));
    const nlohmann::json report = {{"metric", "latent_mixture"},     {"components", in.integer("components")},
                                   {"covariance", in.string("covariance")}, {"latents", count},
                                   {"dataset", data->describe()},          {"iterations", mixture->iterations},
                                   {"log_likelihood", std::round(mixture->log_likelihood * 1e4) / 1e4}};
    ctx.log(LogLevel::info, report.dump());
    return {std::static_pointer_cast<Object>(mixture), report.dump()};
  };
  return d;
}

NodeDef vae_sample() {
  NodeDef d = node("VAESample", "VAE Sample",
                   "Images the VAE generates: latents drawn from the prior N(0, I), or from a mixture fitted to its "
                   "latents (FitLatentMixture), decoded. Also the latents. Deterministic for a seed.");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE), InputSpec::Int("batch", 64).range(1, 1000000),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Link("mixture", "LATENT_MIXTURE").optional()};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto vae = in.object<Vae>("vae");
    at::Generator gen = seeded_generator(in.integer("seed"));
    const int64_t n = in.integer("batch");
    at::Tensor z;
    if (in.has("mixture")) {
      auto mixture = in.object<LatentMixture>("mixture");
      if (mixture->means.size(1) != vae->latent_size())
        throw Error("the mixture's latents have " + std::to_string(mixture->means.size(1)) + " dimensions, the VAE's " +
                    std::to_string(vae->latent_size()));
      z = mixture->sample(n, gen);
    } else {
      z = at::randn({n, vae->latent_size()}, gen, at::kFloat);
    }
    at::Tensor images = training::batched(z, 1000, vae->device(), [&](const at::Tensor& x) { return vae->decode(x); });
    return {images.to(ctx.device()), z.to(ctx.device())};
  };
  return d;
}

void register_nodes(Registrar& r) {
  r.add(train_vae());
  r.add(load_vae());
  r.add(encode());
  r.add(decode());
  r.add(reconstruct());
  r.add(fit_latent_mixture());
  r.add(vae_sample());
}

}  // namespace
}  // namespace cozy::vae

COZY_PLUGIN("vae", "0.1.0", cozy::vae::register_nodes)
