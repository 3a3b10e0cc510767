// Training over several ranks on c10d's Gloo: the ranks take one step
// together (the same weights on each, bit for bit; the step one process
// takes on the doubled batch), the trainers train so, and `cozy run --nproc`
// starts ranks, names the one that died and resumes from the last
// checkpoint when started again.
#include "data_parallel.hpp"

#include <cozy/dataset.hpp>
#include <cozy/host/distributed.hpp>
#include <cozy/models.hpp>
#include <cozy/random.hpp>
#include <cozy/testing.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace cozy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// `fn(rank)` on a thread per rank, each with a Context holding its collective.
template <typename F>
void on_ranks(const std::vector<std::shared_ptr<Collective>>& group, F fn) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(group.size());
  for (std::size_t r = 0; r < group.size(); ++r)
    threads.emplace_back([&, r] {
      try {
        fn(static_cast<int>(r));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (std::size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

// A network without batch statistics or randomness: two linear layers.
struct Mlp : torch::nn::Module {
  Mlp() {
    a = register_module("a", torch::nn::Linear(8, 16));
    b = register_module("b", torch::nn::Linear(16, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) { return b->forward(torch::tanh(a->forward(x))); }
  torch::nn::Linear a{nullptr}, b{nullptr};
};

std::vector<torch::Tensor> weights(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

// Adam on a regression, `steps` steps of global batches of 2 x 8, over
// `world` ranks (each 16 / world of every batch) or alone.
std::vector<torch::Tensor> train_mlp(Context& ctx, int64_t seed_of_init, int64_t world) {
  torch::NoGradGuard guard_off;
  Mlp net;
  {
    at::Generator gen = seeded_generator(seed_of_init);  // the same start for every run (rank 0's is broadcast anyway)
    for (auto& p : net.parameters()) p.copy_(at::randn(p.sizes(), gen) * 0.3);
  }
  c10::AutoGradMode grad_on(true);
  training::DataParallel dp(ctx);
  dp.broadcast(net);
  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(1e-2));
  at::Generator data = seeded_generator(7);
  const at::Tensor x = at::randn({64, 8}, data), y = at::sin(x.sum(1, true));
  const at::Tensor order = at::arange(64, at::kLong);
  const int64_t batch = 16 / world;
  for (int64_t step = 0; step < 20; ++step) {
    const at::Tensor idx = dp.shard(order.roll(step * 16), 0, batch);
    opt.zero_grad();
    torch::Tensor loss = torch::mse_loss(net.forward(x.index_select(0, idx)), y.index_select(0, idx));
    loss.backward();
    dp.average_gradients(net);
    opt.step();
  }
  return weights(net);
}

TEST(DataParallel, TwoRanksTakeTheStepOneProcessTakesOnTheDoubledBatch) {
  testing::FakeContext alone;
  const std::vector<torch::Tensor> reference = train_mlp(alone, 1, 1);
  auto group = host::local_group(2, 30s);
  std::vector<std::vector<torch::Tensor>> result(2);
  std::vector<std::unique_ptr<testing::FakeContext>> contexts;
  for (int r = 0; r < 2; ++r) {
    contexts.push_back(std::make_unique<testing::FakeContext>());
    contexts.back()->collective_ = group[static_cast<std::size_t>(r)].get();
  }
  // Rank 1 starts from other weights: rank 0's reach it.
  on_ranks(group, [&](int r) { result[static_cast<std::size_t>(r)] = train_mlp(*contexts[static_cast<std::size_t>(r)], r == 0 ? 1 : 99, 2); });
  ASSERT_EQ(result[0].size(), reference.size());
  for (std::size_t i = 0; i < reference.size(); ++i) {
    EXPECT_TRUE(at::equal(result[0][i], result[1][i])) << "parameter " << i << " differs between the ranks";
    EXPECT_TRUE(at::allclose(result[0][i], reference[i], 1e-5, 1e-6))
        << "parameter " << i << ": largest difference " << (result[0][i] - reference[i]).abs().max().item<float>();
  }
  for (auto& c : contexts) fs::remove_all(c->root());
}

TEST(DataParallel, ShardsAndNoiseStreams) {
  auto group = host::local_group(2, 30s);
  testing::FakeContext a, b;
  a.collective_ = group[0].get(), b.collective_ = group[1].get();
  training::DataParallel p0(a), p1(b);
  const at::Tensor order = at::arange(100, at::kLong);
  EXPECT_EQ(p0.steps(100, 16), 3);  // 100 / 32
  EXPECT_TRUE(at::equal(p0.shard(order, 1, 16), at::arange(32, 48, at::kLong)));
  EXPECT_TRUE(at::equal(p1.shard(order, 1, 16), at::arange(48, 64, at::kLong)));
  at::Generator n0 = p0.noise(5, 3), n1 = p1.noise(5, 3), again = p0.noise(5, 3);
  const at::Tensor d0 = at::randn({4}, n0), d1 = at::randn({4}, n1), d2 = at::randn({4}, again);
  EXPECT_FALSE(at::equal(d0, d1)) << "each rank draws its own noise";
  EXPECT_TRUE(at::equal(d0, d2)) << "the same seed, rank and epoch draw the same";
  fs::remove_all(a.root()), fs::remove_all(b.root());
}

// Debian's dataset-fashion-mnist, which scripts/deps.sh installs.
bool have_fashion_mnist() { return fs::exists("/usr/share/datasets/fashion-mnist"); }

// Random images, deterministic for a seed: a DATASET of N x 1 x 28 x 28.
Value images(int64_t n, int64_t classes) {
  at::Generator gen = seeded_generator(3);
  at::Tensor x = at::rand({n, 1, 28, 28}, gen);
  std::vector<std::string> names;
  for (int64_t k = 0; k < classes; ++k) names.push_back("c" + std::to_string(k));
  return Value(std::make_shared<ImageDataset>(x, "noise", names, at::arange(n, at::kLong).remainder(classes)));
}

// Each trainer over 2 ranks: both end with the same model, bit for bit.
TEST(DataParallel, EveryTrainerEndsWithTheSameModelOnEveryRank) {
  testing::Plugin vae(fs::path(COZY_PLUGIN_DIR) / "libcozy_vae.so");
  testing::Plugin gan(fs::path(COZY_PLUGIN_DIR) / "libcozy_gan.so");
  testing::Plugin metrics(fs::path(COZY_PLUGIN_DIR) / "libcozy_metrics.so");
  auto group = host::local_group(2, 60s);
  std::vector<std::unique_ptr<testing::FakeContext>> ctx;
  for (int r = 0; r < 2; ++r) {
    ctx.push_back(std::make_unique<testing::FakeContext>());
    ctx.back()->collective_ = group[static_cast<std::size_t>(r)].get();
  }
  const Value data = images(64, 4);
  const at::Tensor z = at::randn({6, 8}, seeded_generator(11));
  std::vector<at::Tensor> decoded(2), generated(2), classified(2);
  on_ranks(group, [&](int r) {
    testing::FakeContext& c = *ctx[static_cast<std::size_t>(r)];
    Outputs v = testing::run_node(vae.node("TrainVAE"), {{"dataset", data}, {"epochs", 3}, {"batch", 8}, {"latent", 8},
                                                         {"width", 8}, {"name", "vae"}}, c);
    decoded[static_cast<std::size_t>(r)] = v[0].as<Vae>()->decode(z);
    Outputs g = testing::run_node(gan.node("TrainGAN"), {{"dataset", data}, {"steps", 6}, {"batch", 8}, {"latent", 8},
                                                         {"width", 8}, {"name", "gan"}}, c);
    generated[static_cast<std::size_t>(r)] = g[0].as<Generator>()->generate(z, at::arange(6, at::kLong).remainder(4));
    Outputs k = testing::run_node(metrics.node("TrainClassifier"), {{"dataset", data}, {"epochs", 2}, {"batch", 8},
                                                                     {"width", 4}, {"features", 8}, {"name", "cls"}}, c);
    classified[static_cast<std::size_t>(r)] =
        k[0].as<Classifier>()->features(data.as<Dataset>()->batch(at::arange(8, at::kLong)).first);
  });
  ASSERT_TRUE(decoded[0].defined() && decoded[1].defined());
  EXPECT_TRUE(at::equal(decoded[0], decoded[1])) << "TrainVAE";
  EXPECT_TRUE(at::equal(generated[0], generated[1])) << "TrainGAN";
  EXPECT_TRUE(at::equal(classified[0], classified[1])) << "TrainClassifier";
  // Rank 0 alone writes its logs and grids.
  const auto wrote = [](const testing::FakeContext& c) { return c.files.size(); };
  EXPECT_GT(wrote(*ctx[0]), 0u);
  EXPECT_EQ(wrote(*ctx[1]), 0u);
  for (auto& c : ctx) fs::remove_all(c->root());
}

// A data set smaller than one global batch is refused on every rank, saying why.
TEST(DataParallel, ADataSetSmallerThanAGlobalBatchIsNamed) {
  testing::Plugin vae(fs::path(COZY_PLUGIN_DIR) / "libcozy_vae.so");
  auto group = host::local_group(2, 30s);
  std::vector<std::string> messages(2);
  std::vector<std::unique_ptr<testing::FakeContext>> ctx;
  for (int r = 0; r < 2; ++r) {
    ctx.push_back(std::make_unique<testing::FakeContext>());
    ctx.back()->collective_ = group[static_cast<std::size_t>(r)].get();
  }
  on_ranks(group, [&](int r) {
    try {
      testing::run_node(vae.node("TrainVAE"), {{"dataset", images(12, 1)}, {"batch", 8}, {"name", "vae"}},
                        *ctx[static_cast<std::size_t>(r)]);
    } catch (const Error& e) {
      messages[static_cast<std::size_t>(r)] = e.what();
    }
  });
  for (const auto& m : messages)
    EXPECT_EQ(m, "the data set has 12 images, fewer than a batch of 8 on each of 2 ranks");
  for (auto& c : ctx) fs::remove_all(c->root());
}

// The DCGAN over 2 ranks of 32 against one process on batch 64: BatchNorm
// sees each rank's 32, so the runs differ, but the loss curves agree (the
// means of 20-step windows within 0.25, G's relative to its size; bench/distributed/run.sh measures
// longer runs).
TEST(DataParallel, TheDcganLossCurveOverTwoRanksTracksOneProcess) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  testing::Plugin data(fs::path(COZY_PLUGIN_DIR) / "libcozy_data.so");
  testing::Plugin gan(fs::path(COZY_PLUGIN_DIR) / "libcozy_gan.so");
  testing::FakeContext alone;
  const Value set = testing::run_node(data.node("LoadFashionMNIST"), {{"subset", 4096}, {"shuffle_seed", 0}}, alone)[0];
  const auto losses = [](const testing::FakeContext& ctx) {
    for (const auto& [file, kind] : ctx.files)
      if (file.filename().string().rfind("gan_losses", 0) == 0 && file.extension() == ".csv") {
        std::ifstream in(file);
        std::vector<std::pair<double, double>> rows;
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) {
          std::stringstream fields(line);
          std::string step, d, g;
          std::getline(fields, step, ','), std::getline(fields, d, ','), std::getline(fields, g, ',');
          rows.emplace_back(std::stod(d), std::stod(g));
        }
        return rows;
      }
    return std::vector<std::pair<double, double>>{};
  };
  const std::map<std::string, Value> common = {{"dataset", set}, {"steps", 60}, {"seed", 0}, {"conditional", false}, {"name", "gan"}};
  auto with_batch = [&](int64_t batch) {
    std::map<std::string, Value> in = common;
    in["batch"] = batch;
    return in;
  };
  testing::run_node(gan.node("TrainGAN"), with_batch(64), alone);
  auto group = host::local_group(2, 60s);
  std::vector<std::unique_ptr<testing::FakeContext>> ctx;
  for (int r = 0; r < 2; ++r) {
    ctx.push_back(std::make_unique<testing::FakeContext>());
    ctx.back()->collective_ = group[static_cast<std::size_t>(r)].get();
  }
  on_ranks(group, [&](int r) { testing::run_node(gan.node("TrainGAN"), with_batch(32), *ctx[static_cast<std::size_t>(r)]); });
  const auto one = losses(alone), two = losses(*ctx[0]);
  ASSERT_EQ(one.size(), 60u);
  ASSERT_EQ(two.size(), 60u);
  for (std::size_t start = 0; start < 60; start += 20) {
    double d1 = 0, d2 = 0, g1 = 0, g2 = 0;
    for (std::size_t i = start; i < start + 20; ++i) d1 += one[i].first, d2 += two[i].first, g1 += one[i].second, g2 += two[i].second;
    std::printf("steps %zu-%zu: D %.3f | %.3f, G %.3f | %.3f (one process | 2 ranks)\n", start + 1, start + 20, d1 / 20,
                d2 / 20, g1 / 20, g2 / 20);
    EXPECT_NEAR(d1 / 20, d2 / 20, 0.25) << "steps from " << start;
    EXPECT_NEAR(g1 / 20, g2 / 20, 0.25 * std::max(1.0, g1 / 20)) << "steps from " << start;
  }
  fs::remove_all(alone.root());
  for (auto& c : ctx) fs::remove_all(c->root());
}

// --- cozy run --nproc, end to end -------------------------------------------

struct Finished {
  int status = -1;
  std::string err;
};

// Starts `cozy ARGS` with its stderr into `log`; returns its pid.
pid_t start_cozy(const std::string& args, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = std::string(COZY_BINARY) + " " + args + " 2>" + log.string() + " >/dev/null";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

Finished wait_cozy(pid_t pid, const fs::path& log) {
  Finished f;
  int status = 0;
  waitpid(pid, &status, 0);
  f.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  f.err = text.str();
  return f;
}

// The pid of the cozy process that is rank `rank` of a run on `graph`.
pid_t rank_pid(const std::string& graph, int rank) {
  const auto split = [](const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> parts;
    for (std::string part; std::getline(in, part, '\0');) parts.push_back(part);
    return parts;
  };
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::vector<std::string> argv = split(entry.path() / "cmdline");
    if (argv.size() < 3 || argv[0] != COZY_BINARY || std::find(argv.begin(), argv.end(), graph) == argv.end()) continue;
    const std::vector<std::string> env = split(entry.path() / "environ");
    if (std::find(env.begin(), env.end(), "RANK=" + std::to_string(rank)) != env.end()) return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

class NprocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("cozy-nproc-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // TrainVAE on Fashion-MNIST's first 512 training images, a checkpoint an epoch.
  fs::path graph(int epochs) {
    const fs::path file = root_ / ("vae" + std::to_string(epochs) + ".json");
    std::ofstream(file) << R"({
  "1": {"class_type": "LoadFashionMNIST", "inputs": {"split": "train", "subset": 512, "shuffle_seed": 0}},
  "2": {"class_type": "TrainVAE", "inputs": {"dataset": ["1", 0], "epochs": )"
                        << epochs << R"(, "batch": 32, "latent": 8, "width": 8,
        "seed": 0, "name": "vae", "checkpoint_every": 1}},
  "3": {"class_type": "SaveModel", "inputs": {"model": ["2", 0], "filename_prefix": "vae_final"}}
})";
    return file;
  }
  std::string args(const fs::path& graph, const fs::path& out, const std::string& more) {
    return "run " + graph.string() + " --output-dir " + out.string() + " --progress none --threads 1 --nproc 2 --dist-timeout 20 " + more;
  }
  // Waits for `file` to appear (a checkpoint: the ranks are training).
  static bool appears(const fs::path& file, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (fs::exists(file)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  fs::path root_;
};


TEST_F(NprocTest, AKilledRankFailsTheOtherNamingIt) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  const fs::path g = graph(400), out = root_ / "out", log = root_ / "err.txt";
  const pid_t pid = start_cozy(args(g, out, ""), log);
  ASSERT_TRUE(appears(out / "vae_epoch2_00001.pt", 120s)) << "the ranks did not train";
  const pid_t one = rank_pid(g.string(), 1);
  ASSERT_GT(one, 0) << "rank 1 was not found";
  const auto killed = std::chrono::steady_clock::now();
  kill(one, SIGKILL);
  const Finished f = wait_cozy(pid, log);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_EQ(f.status, 1) << f.err;
  EXPECT_NE(f.err.find("cozy run: rank 1 of 2 was killed by signal 9"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("rank 0: error: node 2 (TrainVAE): rank 0 of 2: all-reduce failed: rank 1 stopped answering"),
            std::string::npos)
      << f.err;
  EXPECT_LT(seconds, 20.0) << "the survivor should fail within the timeout, not hang";
}

// Killed and started again, the run resumes from its last checkpoint and
// ends with the model an uninterrupted run makes, bit for bit.
TEST_F(NprocTest, ARestartResumesFromTheLastCheckpointAndEndsAsIfUninterrupted) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  const fs::path g = graph(12), whole = root_ / "whole", broken = root_ / "broken";
  const Finished plain = wait_cozy(start_cozy(args(g, whole, ""), root_ / "whole.txt"), root_ / "whole.txt");
  ASSERT_EQ(plain.status, 0) << plain.err;
  const pid_t pid = start_cozy(args(g, broken, "--max-restarts 1"), root_ / "broken.txt");
  ASSERT_TRUE(appears(broken / "vae_epoch4_00001.pt", 120s));
  const pid_t one = rank_pid(g.string(), 1);
  ASSERT_GT(one, 0);
  kill(one, SIGKILL);
  const Finished f = wait_cozy(pid, root_ / "broken.txt");
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_NE(f.err.find("starting the 2 ranks again (restart 1 of 1)"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("restart 1: resuming from "), std::string::npos) << f.err;
  testing::Plugin vae(fs::path(COZY_PLUGIN_DIR) / "libcozy_vae.so");
  testing::FakeContext ctx;
  const at::Tensor z = at::randn({16, 8}, seeded_generator(5));
  const auto decode = [&](const fs::path& file) {
    return testing::run_node(vae.node("LoadVAE"), {{"checkpoint", file.string()}}, ctx)[0].as<Vae>()->decode(z);
  };
  EXPECT_TRUE(at::equal(decode(whole / "vae_final_00001.pt"), decode(broken / "vae_final_00001.pt")));
  std::ifstream a(whole / "vae_log_00001.csv"), b(broken / "vae_log_00001.csv");
  std::stringstream la, lb;
  la << a.rdbuf(), lb << b.rdbuf();
  EXPECT_EQ(la.str(), lb.str());
  fs::remove_all(ctx.root());
}

// torchrun (Debian's python3-torch) starts cozy as it starts a script: the
// ranks join through its agent's store, and its restart resumes as ours do.
TEST_F(NprocTest, TorchrunStartsTheRanksAndRestartsThem) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "needs Debian's dataset-fashion-mnist";
  if (!fs::exists("/usr/bin/torchrun")) GTEST_SKIP() << "needs /usr/bin/torchrun (python3-torch)";
  const fs::path g = graph(12), whole = root_ / "whole", restarted = root_ / "restarted";
  const Finished plain = wait_cozy(start_cozy(args(g, whole, ""), root_ / "whole.txt"), root_ / "whole.txt");
  ASSERT_EQ(plain.status, 0) << plain.err;
  // Debian's torchrun on Python 3.11 needs its output redirected to a log folder.
  const fs::path log = root_ / "torchrun.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = "/usr/bin/torchrun --nproc_per_node 2 --max_restarts 1 --no_python --redirects 1 --tee 1 --log_dir " +
                                (root_ / "logs").string() + " " + COZY_BINARY + " run " + g.string() + " --output-dir " +
                                restarted.string() + " --progress none --threads 1 --dist-timeout 20 >" + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_TRUE(appears(restarted / "vae_epoch4_00001.pt", 120s));
  const pid_t one = rank_pid(g.string(), 1);
  ASSERT_GT(one, 0);
  kill(one, SIGKILL);
  const Finished f = wait_cozy(pid, log);
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_NE(f.err.find("restart 1: resuming from "), std::string::npos) << f.err;
  std::ifstream a(whole / "vae_log_00001.csv"), b(restarted / "vae_log_00001.csv");
  std::stringstream la, lb;
  la << a.rdbuf(), lb << b.rdbuf();
  EXPECT_EQ(la.str(), lb.str()) << "torchrun's restarted run and cozy's uninterrupted one differ";
  testing::Plugin vae(fs::path(COZY_PLUGIN_DIR) / "libcozy_vae.so");
  testing::FakeContext ctx;
  const at::Tensor z = at::randn({16, 8}, seeded_generator(5));
  const auto decode = [&](const fs::path& file) {
    return testing::run_node(vae.node("LoadVAE"), {{"checkpoint", file.string()}}, ctx)[0].as<Vae>()->decode(z);
  };
  EXPECT_TRUE(at::equal(decode(whole / "vae_final_00001.pt"), decode(restarted / "vae_final_00001.pt")));
  fs::remove_all(ctx.root());
}

TEST_F(NprocTest, AnIncompleteEnvironmentIsNamed) {
  const fs::path g = graph(1), log = root_ / "err.txt";
  const std::string command = "WORLD_SIZE=2 RANK=0 " + std::string(COZY_BINARY) + " run " + g.string() +
                              " --output-dir " + (root_ / "out").string() + " --progress none 2>" + log.string();
  const int status = std::system(command.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("error: the environment has WORLD_SIZE but no MASTER_PORT"), std::string::npos) << text.str();
}

}  // namespace
}  // namespace cozy
