// cozy/server/server.hpp — `cozy serve`: ComfyUI's HTTP and WebSocket
// protocol over the host, so clients written for ComfyUI drive Cozy.
//
// One process, one Executor with its cache on, one prompt running at a time
// (as ComfyUI). The HTTP side (Boost.Beast, one I/O thread) never runs a
// node; the executor thread never touches a socket: events go from the
// executor to the sessions through the I/O thread's queue, so a slow client
// cannot stall a run. The queue and the history live in SQLite in the user
// folder and are written before a prompt is acknowledged.
//
// Beyond ComfyUI: a bearer token (every route and the WebSocket), every file
// a request or a graph names confined to its folder, a queue that survives a
// crash. A ComfyUI client notices none of it. See docs/server.md.
#pragma once

#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>

namespace cozy::server {

struct ServerOptions {
  std::string listen = "127.0.0.1";
  unsigned short port = 8188;  ///< 0: any free port (Server::start returns it)
  std::filesystem::path input_dir = "input";
  std::filesystem::path output_dir = "output";
  std::filesystem::path models_dir = "models";
  std::filesystem::path model_save_dir;  ///< where graphs save models; empty: output_dir
  std::filesystem::path user_dir = "user";  ///< the database, settings and workflows
  std::filesystem::path temp_dir;           ///< empty: <output_dir>/../temp
  std::filesystem::path front_end_root;     ///< static files served at /; empty: none
  /// Frontend extensions: name -> folder of JS modules, served under
  /// /extensions/<name>/ and listed by GET /extensions; its templates/
  /// subfolder holds workflow templates (GET /workflow_templates).
  std::map<std::string, std::filesystem::path> web_extensions;
  std::string token;                        ///< non-empty: required on every request
  std::size_t max_upload_bytes = std::size_t{100} << 20;  ///< an upload's body
  std::size_t max_body_bytes = std::size_t{32} << 20;     ///< any other request's body
  std::chrono::milliseconds header_timeout{10000};  ///< to send a request's headers and body
  std::chrono::milliseconds idle_timeout{60000};    ///< a keep-alive connection with no request
  std::size_t history_size = 10000;                  ///< prompts kept in the history
  std::size_t websocket_queue_limit = 4096;          ///< messages waiting for a slow client, then it is dropped
  host::RunOptions run;                              ///< device, jobs, threads
  /// Non-empty (nats://HOST:PORT): accepted prompts go to NATS JetStream for
  /// `cozy worker`s to run (cozy/server/worker.hpp) instead of this
  /// process's executor; clients notice no difference.
  std::string queue_url;
  std::chrono::milliseconds queue_ack_wait{30000};  ///< a worker silent this long loses its prompt
  int queue_max_deliveries = 3;                      ///< a prompt delivered this often without finishing fails
  int queue_replicas = 1;  ///< copies of the queue's streams on a NATS cluster (when it makes them)
  /// Where the server writes what nodes log (info and above) and what
  /// happened to prompts, one line each; null: nowhere.
  std::ostream* log = nullptr;
};

class Server {
 public:
  Server(std::shared_ptr<const host::Registry> registry, ServerOptions options);
  ~Server();  ///< stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Opens the database, binds, and starts the I/O and executor threads;
  /// returns the port it listens on. Throws cozy::Error when it cannot.
  unsigned short start();
  /// Stops serving: the running prompt is interrupted and stays queued (it
  /// runs again at the next start), connections are closed. Idempotent;
  /// safe from any thread but the server's own.
  void stop();
  /// "http://127.0.0.1:8188"
  std::string url() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cozy::server
