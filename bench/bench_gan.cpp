// The default DCGAN (28x28, unconditional, batch 64) in Cozy's LibTorch code
// against the same architecture in Python PyTorch, in the same run:
// training images/s (one D step and one G step per batch, Adam, BCE) and
// sampling images/s (generator forward, no gradients).
//
//   build/bench/bench_gan [--device cuda] [--repeats 5] [--threads 1,2] [--python /usr/bin/python3]
//                         [--system-malloc | --small-pages] [--options]
//
// --options: what each of TrainGAN's quality options costs a training step
// instead (Cozy alone): the plain step against the step with the hinge
// loss, and with the average of G's weights (ema) updated after it; the
// variants take turns within each repeat.
//
// Cozy's side keeps freed memory for reuse as the `cozy` command does
// (host::keep_freed_memory); --system-malloc leaves glibc's defaults,
// --small-pages keeps them but not the host's pool of 2 MiB pages.
//
// The Python side is bench/python/dcgan_peer.py speed, run with the same
// settings. The two take turns: each repeat measures Cozy, then Python, so a
// slow spell of this shared machine falls on both; figures are medians of the
// repeats; ratio = Cozy / Python.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cozy/host/executor.hpp>
#include <cozy/host/memory.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dcgan.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace cozy::gan;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Rates {
  double train = 0, sample = 0;
};

struct Variant {
  std::string loss = "bce";
  double ema = 0;
};

// One turn: a fresh model, 3 untimed steps, then `steps` timed steps of training, then of sampling.
Rates measure(c10::Device device, int steps, const Variant& variant = {}) {
  torch::manual_seed(0);
  const int64_t batch = 64, nz = 100;
  DcganOptions o;  // the defaults: 28x28, w 64, latent 100, 1 channel, unconditional
  GeneratorNet g(o);
  DiscriminatorNet d(o);
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  init_weights(*g, gen);
  init_weights(*d, gen);
  g->to(device);
  d->to(device);
  torch::optim::Adam opt_g(g->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  torch::optim::Adam opt_d(d->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  GeneratorNet average{nullptr};
  if (variant.ema > 0) {
    average = GeneratorNet(o);
    average->to(device);
    ema_update(*average, *g, 0.0, 0);
  }
  int64_t done = 0;
  at::Tensor real = torch::rand({batch, 1, 28, 28}, torch::TensorOptions().device(device)) * 2 - 1;
  at::Tensor none;
  auto sync = [&] {
    if (!device.is_cpu()) (void)real.reshape(-1)[0].item<float>();
  };
  auto step = [&] {
    at::Tensor z = torch::randn({batch, nz}, torch::TensorOptions().device(device));
    opt_d.zero_grad();
    at::Tensor d_real = d->forward(real, none);
    at::Tensor fake = g->forward(z, none);
    at::Tensor d_fake = d->forward(fake.detach(), none);
    at::Tensor loss_d = discriminator_loss(variant.loss, d_real, d_fake, 0.9f);
    loss_d.backward();
    opt_d.step();
    opt_g.zero_grad();
    at::Tensor d_on_fake = d->forward(fake, none);
    at::Tensor loss_g = generator_loss(variant.loss, d_on_fake);
    loss_g.backward();
    opt_g.step();
    if (average) ema_update(*average, *g, variant.ema, ++done);
    // As the Python peer does (loss.item()), and as TrainGAN does for its log.
    (void)loss_d.item<float>(), (void)loss_g.item<float>();
  };
  for (int i = 0; i < 3; ++i) step();
  sync();
  auto t = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  sync();
  const double train = std::chrono::duration<double>(Clock::now() - t).count() / steps;
  g->eval();
  torch::NoGradGuard no_grad;
  at::Tensor images;
  for (int i = 0; i < 3; ++i)
    images = g->forward(torch::randn({batch, nz}, torch::TensorOptions().device(device)), none);
  sync();
  t = Clock::now();
  for (int i = 0; i < steps; ++i)
    images = (g->forward(torch::randn({batch, nz}, torch::TensorOptions().device(device)), none) + 1) * 0.5;
  (void)images.reshape(-1)[0].item<float>();
  const double sample = std::chrono::duration<double>(Clock::now() - t).count() / steps;
  return {batch / train, batch / sample};
}

// One turn of the Python peer with the same settings.
Rates python_peer(const std::string& python, const std::string& device, int threads, int steps) {
  std::ostringstream cmd;
  cmd << python << " " << COZY_SOURCE_DIR << "/bench/python/dcgan_peer.py speed --threads " << threads << " --repeats 1"
      << " --steps " << steps << " --device " << device;
  FILE* pipe = popen(cmd.str().c_str(), "r");
  if (!pipe) return {};
  std::string out;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe)) out += buffer;
  if (pclose(pipe) != 0 || out.empty()) {
    std::fprintf(stderr, "the Python peer failed: %s\n", cmd.str().c_str());
    return {};
  }
  auto j = nlohmann::json::parse(out.substr(out.rfind('{')));
  return {j.at("train_img_s").get<double>(), j.at("sample_img_s").get<double>()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cpu", python = "/usr/bin/python3";
  int repeats = 5, steps = 10;
  std::vector<int> threads = {1, 2};
  bool system_malloc = false, small_pages = false, options = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--options") {
      options = true;
      continue;
    }
    if (arg == "--system-malloc" || arg == "--small-pages") {
      (arg == "--small-pages" ? small_pages : system_malloc) = true;
      continue;
    }
    if (i + 1 >= argc) break;
    const std::string value = argv[++i];
    if (arg == "--device")
      device_name = value;
    else if (arg == "--repeats")
      repeats = std::stoi(value);
    else if (arg == "--steps")
      steps = std::stoi(value);
    else if (arg == "--python")
      python = value;
    else if (arg == "--threads") {
      threads.clear();
      std::stringstream list(value);
      for (std::string t; std::getline(list, t, ',');) threads.push_back(std::stoi(t));
    }
  }
  if (!system_malloc) cozy::host::keep_freed_memory(/*large_pages=*/!small_pages);
  const c10::Device device(device_name);
  if (options) {
    const std::vector<std::pair<std::string, Variant>> variants = {
        {"plain (bce)", {}}, {"loss hinge", {"hinge", 0}}, {"ema 0.999", {"bce", 0.999}}};
    std::printf("DCGAN 28x28 (w 64, latent 100), batch 64, %s: training images/s, median of %d turns of %d steps\n",
                device.str().c_str(), repeats, steps);
    std::printf("%-12s %3s | %10s | %s\n", "option", "thr", "images/s", "step time against plain");
    for (int t : threads) {
      at::set_num_threads(t);
      std::vector<std::vector<double>> rates(variants.size());
      for (int r = 0; r < repeats; ++r)
        for (std::size_t v = 0; v < variants.size(); ++v) rates[v].push_back(measure(device, steps, variants[v].second).train);
      const double plain = median(rates[0]);
      for (std::size_t v = 0; v < variants.size(); ++v) {
        const double rate = median(rates[v]);
        std::printf("%-12s %3d | %10.1f | %.3fx\n", variants[v].first.c_str(), t, rate, plain / rate);
      }
      std::fflush(stdout);
    }
    return 0;
  }
  std::printf("DCGAN 28x28 (w 64, latent 100), batch 64, %s; images/s, median of %d turns of %d steps each\n",
              device.str().c_str(), repeats, steps);
  std::printf("%-8s %3s | %10s %10s | %6s\n", "what", "thr", "cozy", "python", "ratio");
  for (int t : threads) {
    at::set_num_threads(t);
    std::vector<double> train_ours, train_theirs, sample_ours, sample_theirs;
    for (int r = 0; r < repeats; ++r) {
      Rates ours = measure(device, steps);
      Rates theirs = python_peer(python, device_name, t, steps);
      train_ours.push_back(ours.train), sample_ours.push_back(ours.sample);
      train_theirs.push_back(theirs.train), sample_theirs.push_back(theirs.sample);
    }
    const Rates ours{median(train_ours), median(sample_ours)}, theirs{median(train_theirs), median(sample_theirs)};
    std::printf("%-8s %3d | %10.1f %10.1f | %6.2f\n", "train", t, ours.train, theirs.train,
                theirs.train > 0 ? ours.train / theirs.train : 0.0);
    std::printf("%-8s %3d | %10.1f %10.1f | %6.2f\n", "sample", t, ours.sample, theirs.sample,
                theirs.sample > 0 ? ours.sample / theirs.sample : 0.0);
    std::fflush(stdout);
  }
  return 0;
}
