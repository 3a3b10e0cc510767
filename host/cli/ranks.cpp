#include "ranks.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <thread>

extern char** environ;

namespace cozy::cli {

namespace {

// A port the kernel says is free now (the rendezvous takes it a moment later).
int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  int port = 0;
  if (s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      getsockname(s, reinterpret_cast<sockaddr*>(&address), &length) == 0)
    port = ntohs(address.sin_port);
  if (s >= 0) close(s);
  return port;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = strsignal(signal);
    return "was killed by signal " + std::to_string(signal) + (name ? std::string(" (") + name + ")" : "");
  }
  return "stopped (status " + std::to_string(status) + ")";
}

pid_t spawn(const std::vector<std::string>& arguments, const std::map<std::string, std::string>& extra) {
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    if (!extra.count(entry.substr(0, entry.find('=')))) environment.push_back(entry);
  }
  for (const auto& [name, value] : extra) environment.push_back(name + "=" + value);
  std::vector<char*> argv, envp;
  for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  return pid;
}

}  // namespace

std::vector<std::string> rank_arguments(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc" || a == "--max-restarts") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0 || a.rfind("--max-restarts=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

int run_ranks(const std::vector<std::string>& arguments, int nproc, int max_restarts, int grace_seconds) {
  // Ctrl-C reaches every rank (one process group); this process waits for them.
  signal(SIGINT, SIG_IGN);
  for (int attempt = 0;; ++attempt) {
    const int port = free_port();
    if (port == 0) {
      std::cerr << "error: no free port on 127.0.0.1 for the ranks' rendezvous\n";
      return 1;
    }
    std::map<pid_t, int> ranks;
    for (int r = 0; r < nproc; ++r) {
      const pid_t pid = spawn(arguments, {{"RANK", std::to_string(r)}, {"LOCAL_RANK", std::to_string(r)},
                                          {"WORLD_SIZE", std::to_string(nproc)}, {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                                          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)},
                                          {"COZY_RESTART_COUNT", std::to_string(attempt)}});
      if (pid < 0) {
        std::cerr << "error: cannot start rank " << r << ": " << std::strerror(errno) << '\n';
        for (const auto& [p, rank] : ranks) kill(p, SIGKILL);
        return 1;
      }
      ranks[pid] = r;
    }
    std::string failure;
    auto deadline = std::chrono::steady_clock::time_point::max();
    while (!ranks.empty()) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid > 0 && ranks.count(pid)) {
        const int r = ranks[pid];
        ranks.erase(pid);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && failure.empty()) {
          failure = "rank " + std::to_string(r) + " of " + std::to_string(nproc) + " " + describe(status);
          std::cerr << "cozy run: " << failure << '\n';
          deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
        }
        continue;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        for (const auto& [p, r] : ranks) {
          std::cerr << "cozy run: rank " << r << " still runs " << grace_seconds << " s after " << failure
                    << ": killing it\n";
          kill(p, SIGKILL);
        }
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (failure.empty()) return 0;
    if (attempt >= max_restarts) {
      if (max_restarts > 0) std::cerr << "cozy run: no restarts left (" << max_restarts << " used)\n";
      return 1;
    }
    std::cerr << "cozy run: starting the " << nproc << " ranks again (restart " << attempt + 1 << " of " << max_restarts
              << "); trainers with checkpoints resume from their last\n";
  }
}

}  // namespace cozy::cli
