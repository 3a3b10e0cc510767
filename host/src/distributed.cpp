// Ranks on c10d's Gloo process group. Each rank beats a heartbeat into the
// rendezvous store, so that when a collective fails the survivors can say
// which rank stopped answering, not only that a socket closed.
#include <cozy/error.hpp>
#include <cozy/host/distributed.hpp>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace cozy::host {

namespace {

using namespace std::chrono_literals;
constexpr auto kBeat = 500ms;

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string key(int rank) { return "cozy/alive/" + std::to_string(rank); }
std::vector<uint8_t> bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

class GlooCollective final : public Collective {
 public:
  GlooCollective(c10::intrusive_ptr<c10d::Store> store, int rank, int world, int restarts, const std::string& address,
                 std::chrono::milliseconds timeout)
      : store_(std::move(store)), rank_(rank), world_(world), restarts_(restarts), timeout_(timeout) {
    store_->set(key(rank_), bytes("0"));
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* name = std::getenv("GLOO_SOCKET_IFNAME"); name && *name)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    else if (address.empty() || address == "localhost" || address.rfind("127.", 0) == 0)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    try {
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank_, world_, options);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(rank_) + " of " + std::to_string(world_) +
                  ": the ranks did not connect: " + first_line(e.what()));
    }
    heart_ = std::thread([this] { beat(); });
  }
  ~GlooCollective() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    heart_.join();
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int restart_count() const override { return restarts_; }

  // One collective a tensor, all in flight at once (Gloo takes a list as
  // one tensor per device, not as many tensors).
  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    run("all-reduce", [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& t : tensors) {
        std::vector<at::Tensor> one = {t};
        works.push_back(group_->allreduce(one));
      }
      for (auto& w : works) w->wait();
    });
  }
  void broadcast(std::vector<at::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    run("broadcast", [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& t : tensors) {
        std::vector<at::Tensor> one = {t};
        works.push_back(group_->broadcast(one, options));
      }
      for (auto& w : works) w->wait();
    });
  }
  void barrier() override {
    run("barrier", [&] { group_->barrier()->wait(); });
  }

 private:
  template <typename F>
  void run(const char* what, F&& f) {
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(explain(what, first_line(e.what())));
    }
  }

  void beat() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (long count = 1; !stopping_; ++count) {
      lock.unlock();
      try {
        store_->set(key(rank_), bytes(std::to_string(count)));
      } catch (const std::exception&) {
        // The store is gone (its rank died): a collective will say so.
      }
      lock.lock();
      wake_.wait_for(lock, kBeat, [this] { return stopping_; });
    }
  }

  // Which ranks' heartbeats stopped, after a collective failed.
  std::string explain(const char* what, const std::string& reason) {
    const std::string failed = "rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": " + what + " failed";
    std::vector<std::string> before(static_cast<std::size_t>(world_));
    try {
      const auto read = [&](std::vector<std::string>& beats) {
        for (int r = 0; r < world_; ++r) {
          const std::vector<uint8_t> value = store_->get(key(r));
          beats[static_cast<std::size_t>(r)] = std::string(value.begin(), value.end());
        }
      };
      store_->setTimeout(5s);
      read(before);
      std::this_thread::sleep_for(4 * kBeat);
      std::vector<std::string> after(before.size());
      read(after);
      std::string silent;
      for (int r = 0; r < world_; ++r)
        if (r != rank_ && before[static_cast<std::size_t>(r)] == after[static_cast<std::size_t>(r)])
          silent += (silent.empty() ? "" : ", ") + std::to_string(r);
      if (!silent.empty())
        return failed + ": rank " + silent + " stopped answering (it died or hangs): " + reason;
      return failed + " (every rank is alive; timeout " + std::to_string(timeout_.count() / 1000) + " s): " + reason;
    } catch (const std::exception&) {
      return failed + ": the rendezvous store is gone, so rank 0 (which serves it) or torchrun's agent died: " + reason;
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int rank_, world_, restarts_;
  std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread heart_;
};

int integer_from(const char* name, bool required, int fallback) {
  const char* text = std::getenv(name);
  if (!text || !*text) {
    if (required) throw Error(std::string("the environment has WORLD_SIZE but no ") + name);
    return fallback;
  }
  try {
    std::size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used != std::string(text).size() || value < 0) throw std::invalid_argument(name);
    return value;
  } catch (const std::exception&) {
    throw Error(std::string(name) + " is not a number: '" + text + "'");
  }
}

}  // namespace

std::shared_ptr<Collective> join_from_environment(std::chrono::milliseconds timeout) {
  if (!std::getenv("WORLD_SIZE")) return nullptr;
  const int world = integer_from("WORLD_SIZE", true, 1), rank = integer_from("RANK", true, 0);
  if (world < 1 || rank >= world)
    throw Error("RANK " + std::to_string(rank) + " is not a rank of WORLD_SIZE " + std::to_string(world));
  const char* address = std::getenv("MASTER_ADDR");
  const int port = integer_from("MASTER_PORT", true, 0);
  if (!address || !*address) throw Error("the environment has WORLD_SIZE but no MASTER_ADDR");
  if (port > 65535) throw Error("MASTER_PORT " + std::to_string(port) + " is not a port");
  const int restarts = std::getenv("TORCHELASTIC_RESTART_COUNT") ? integer_from("TORCHELASTIC_RESTART_COUNT", false, 0)
                                                                 : integer_from("COZY_RESTART_COUNT", false, 0);
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool agent_store = agent && std::string(agent) == "True";
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = rank == 0 && !agent_store;
  options.numWorkers = agent_store ? c10::nullopt : c10::optional<std::size_t>(world);
  options.waitWorkers = !agent_store;
  options.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(address, options);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank) + " of " + std::to_string(world) + ": no rendezvous at " + address + ":" +
                std::to_string(port) + ": " + first_line(e.what()));
  }
  // torchrun's agent serves one store for every attempt: each its own keys.
  if (agent_store)
    store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(restarts), store);
  return std::make_shared<GlooCollective>(store, rank, world, restarts, address, timeout);
}

std::vector<std::shared_ptr<Collective>> local_group(int world_size, std::chrono::milliseconds timeout) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::shared_ptr<Collective>> group(static_cast<std::size_t>(world_size));
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::string error;
  for (int r = 0; r < world_size; ++r)
    threads.emplace_back([&, r] {
      try {
        group[static_cast<std::size_t>(r)] = std::make_shared<GlooCollective>(store, r, world_size, 0, "127.0.0.1", timeout);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        error = e.what();
      }
    });
  for (auto& t : threads) t.join();
  if (!error.empty()) throw Error(error);
  return group;
}

}  // namespace cozy::host
