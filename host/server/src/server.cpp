// `cozy serve`: Boost.Beast sessions, the route table, the executor thread.
#include <cozy/server/server.hpp>

#include "comfy.hpp"
#include "http.hpp"
#include "prompt_run.hpp"
#include "queue.hpp"
#include "store.hpp"
#include "userdata.hpp"

#include <cozy/files.hpp>
#include <cozy/host/memory.hpp>
#include <cozy/host/validate.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace cozy::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace fs = std::filesystem;

namespace {

// "a,b,c" -> {"a", "b", "c"}, without empty items.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

std::string new_uuid() {
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}() ^ static_cast<std::uint64_t>(now_ms())};
  std::uint64_t a, b;
  {
    std::lock_guard<std::mutex> lock(mutex);
    a = random();
    b = random();
  }
  a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 1
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  return text;
}

}  // namespace

// ------------------------------------------------------------ the server

class WsSession;

struct Server::Impl {
  Impl(std::shared_ptr<const host::Registry> r, ServerOptions o)
      : registry(std::move(r)), options(std::move(o)), executor(registry) {
    if (options.temp_dir.empty()) options.temp_dir = options.output_dir.parent_path() / "temp";
    folders = {{"models", options.models_dir}, {"input", options.input_dir}, {"output", options.output_dir}};
  }

  std::shared_ptr<const host::Registry> registry;
  ServerOptions options;
  host::FileFolders folders;
  host::Executor executor;
  std::unique_ptr<Store> store;
  std::unique_ptr<UserData> user_data;
  std::unique_ptr<queue::ServerQueue> queue;  // with --queue: workers run the prompts
  Routes routes;

  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  unsigned short port = 0;
  std::thread io_thread, exec_thread;
  bool started = false;

  // The executor thread's work and the running prompt (under work_mutex).
  std::mutex work_mutex;
  std::condition_variable work_cv;
  bool stopping = false, work_waiting = false, free_requested = false, purge_requested = false;
  std::shared_ptr<host::CancelToken> current_cancel;
  std::string current_prompt;

  // I/O thread only.
  std::map<std::string, std::shared_ptr<WsSession>> sockets;
  std::string running_client, last_node;  // for a client that reconnects mid-prompt
  double next_number = 0;

  void add_routes();
  void accept();
  void execute_loop();
  void wake_executor() {
    {
      std::lock_guard<std::mutex> lock(work_mutex);
      work_waiting = true;
    }
    work_cv.notify_one();
  }

  // Messages to WebSocket clients; called on the I/O thread.
  void send(const std::string& sid, const std::string& type, const nlohmann::json& data);
  void broadcast(const std::string& type, const nlohmann::json& data);
  void send_status();
  // From any thread: posts to the I/O thread.
  void post_event(std::string target, std::string type, nlohmann::json data) {
    net::post(ioc, [this, target = std::move(target), type = std::move(type), data = std::move(data)] {
      if (type == "executing" && data.contains("node")) last_node = data["node"].is_null() ? "" : data["node"].get<std::string>();
      if (target.empty()) broadcast(type, data);
      else send(target, type, data);
    });
  }
  void post_status() {
    net::post(ioc, [this] { send_status(); });
  }

  // One line to options.log, from any thread.
  std::mutex log_mutex;
  void log_line(const std::string& line) {
    if (!options.log) return;
    std::lock_guard<std::mutex> lock(log_mutex);
    *options.log << line << std::endl;
  }

  // A run's events and node logs, from the executor's threads.
  EventForward forward_event = [this](const std::string& client, const std::string& type, nlohmann::json data) {
    post_event(client, type, std::move(data));
  };
  LogLine node_log = [this](const std::string& line) { log_line(line); };

  // Checks every request: the token, then the origin (ComfyUI's rule).
  std::optional<Reply> refuse(const Request& request) const;
};

// ------------------------------------------------------------ WebSocket

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(Server::Impl& server, tcp::socket socket) : server_(server), ws_(std::move(socket)) {}

  void run(http::request<http::string_body> request, std::string sid) {
    sid_ = std::move(sid);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(1 << 20);
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  void send_text(std::string text) {
    if (closed_) return;
    if (queue_.size() >= server_.options.websocket_queue_limit) {
      // A client this far behind is dropped rather than let the queue grow.
      close();
      return;
    }
    queue_.push_back(std::make_shared<const std::string>(std::move(text)));
    if (queue_.size() == 1) write_next();
  }
  const std::string& sid() const { return sid_; }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;
    // A client that reconnects with its id replaces its old socket.
    if (auto old = server_.sockets.find(sid_); old != server_.sockets.end()) old->second->close();
    server_.sockets[sid_] = shared_from_this();
    server_.send(sid_, "status",
                 {{"status", comfy::queue_info(server_.store->remaining())}, {"sid", sid_}});
    if (server_.running_client == sid_ && !server_.last_node.empty())
      server_.send(sid_, "executing", {{"node", server_.last_node}});
    read();
  }

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->gone();
      self->on_message();
      self->read();
    });
  }

  void on_message() {
    const std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    nlohmann::json message = nlohmann::json::parse(text, nullptr, false);
    if (message.is_discarded() || !message.is_object()) return;
    if (message.value("type", "") == "feature_flags") {
      // Cozy sends no binary frames, so what the client supports changes nothing.
      send_text(nlohmann::json{{"type", "feature_flags"}, {"data", server_flags()}}.dump());
    }
  }

  static nlohmann::json server_flags() {
    return {{"supports_preview_metadata", false}, {"max_upload_size", 0}};
  }

  void write_next() {
    ws_.text(true);
    ws_.async_write(net::buffer(*queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->gone();
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->write_next();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    gone();
  }

  void gone() {
    closed_ = true;
    auto it = server_.sockets.find(sid_);
    if (it != server_.sockets.end() && it->second.get() == this) server_.sockets.erase(it);
  }

  Server::Impl& server_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::string sid_;
  bool closed_ = false;
};

void Server::Impl::send(const std::string& sid, const std::string& type, const nlohmann::json& data) {
  auto it = sockets.find(sid);
  if (it == sockets.end()) return;
  it->second->send_text(nlohmann::json{{"type", type}, {"data", data}}.dump());
}

void Server::Impl::broadcast(const std::string& type, const nlohmann::json& data) {
  const std::string text = nlohmann::json{{"type", type}, {"data", data}}.dump();
  std::vector<std::shared_ptr<WsSession>> all;
  for (const auto& [sid, session] : sockets) all.push_back(session);
  for (const auto& session : all) session->send_text(text);
}

void Server::Impl::send_status() {
  broadcast("status", {{"status", comfy::queue_info(store->remaining())}});
}

// ------------------------------------------------------------ HTTP

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Server::Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

  void run() { read(server_.options.header_timeout); }

 private:
  void read(std::chrono::milliseconds timeout) {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(std::max(server_.options.max_upload_bytes, server_.options.max_body_bytes));
    stream_.expires_after(timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof)
      return close();
    if (ec) return fail(http::status::bad_request, "bad_request", "malformed request: " + ec.message());
    // Uploads may be larger than other bodies.
    const std::string target(parser_->get().target());
    const bool upload = target.find("/upload/") != std::string::npos;
    const std::size_t limit = upload ? server_.options.max_upload_bytes : server_.options.max_body_bytes;
    if (parser_->content_length() && *parser_->content_length() > limit)
      return fail(http::status::payload_too_large, "payload_too_large",
                  "the body is larger than " + std::to_string(limit) + " bytes");
    parser_->body_limit(limit);
    stream_.expires_after(std::max(server_.options.header_timeout, server_.options.idle_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return fail(http::status::payload_too_large, "payload_too_large", "the body is larger than allowed");
    if (ec == beast::error::timeout || ec == net::error::eof || ec == http::error::end_of_stream) return close();
    if (ec) return fail(http::status::bad_request, "bad_request", "malformed request: " + ec.message());
    stream_.expires_never();
    http::request<http::string_body> message = parser_->release();
    Request request = to_request(message);
    if (auto refused = server_.refuse(request)) return respond(std::move(*refused), message.version(), false);

    if (websocket::is_upgrade(message) && (request.path == "/ws" || request.path == "/api/ws")) {
      std::string sid = request.query_value("clientId");
      if (sid.empty()) sid = new_uuid();
      std::make_shared<WsSession>(server_, stream_.release_socket())->run(std::move(message), std::move(sid));
      return;
    }
    Reply reply;
    try {
      reply = server_.routes.dispatch(request);
    } catch (const std::exception& e) {
      reply = json_reply(http::status::internal_server_error,
                         {{"error", comfy::error("internal_error", "the server failed to answer", e.what())}});
    }
    respond(std::move(reply), message.version(), message.keep_alive());
  }

  void respond(Reply reply, unsigned version, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>(reply.status, version);
    response->set(http::field::server, "cozy");
    response->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response->set(name, value);
    response->body() = std::move(reply.body);
    response->keep_alive(keep_alive);
    response->prepare_payload();
    stream_.expires_after(std::max(server_.options.header_timeout, server_.options.idle_timeout));
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        if (!keep_alive) return self->linger();
                        self->read(self->server_.options.idle_timeout);
                      });
  }

  // Ends a connection whose client may still be sending (a refused
  // upload): our side is shut for sending, what still arrives is read and
  // dropped for a moment, then the socket closes. Closing at once, with
  // unread bytes, would reset the connection before the client read the
  // answer.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain_ = std::make_shared<std::array<char, 16384>>();
    drain();
  }
  void drain() {
    stream_.async_read_some(net::buffer(*drain_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  // An answer to a request that cannot be read further; the connection ends.
  void fail(http::status status, const std::string& type, const std::string& message) {
    respond(json_reply(status, {{"error", comfy::error(type, message)}}), 11, false);
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  Server::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<std::array<char, 16384>> drain_;
};

void Server::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) std::make_shared<HttpSession>(*this, std::move(socket))->run();
    accept();
  });
}

std::optional<Reply> Server::Impl::refuse(const Request& request) const {
  if (!options.token.empty()) {
    std::string given = request.bearer_token();
    if (given.empty()) given = request.query_value("token");
    if (!constant_time_equal(given, options.token))
      return json_reply(http::status::unauthorized,
                        {{"error", comfy::error("unauthorized", "this server needs its token: Authorization: Bearer "
                                                                "<token>, or ?token=<token>")}},
                        {{"WWW-Authenticate", "Bearer"}});
  }
  if (!origin_allowed(request))
    return json_reply(http::status::forbidden,
                      {{"error", comfy::error("forbidden_origin", "the request's Origin does not match its Host")}});
  return std::nullopt;
}

// ------------------------------------------------------------ the executor thread

void Server::Impl::execute_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(work_mutex);
      work_cv.wait(lock, [this] { return stopping || work_waiting || free_requested; });
      if (stopping) return;
      work_waiting = false;
      if (free_requested) {
        free_requested = false;
        const bool purge = purge_requested;
        purge_requested = false;
        lock.unlock();
        executor.clear_cache();
        if (purge) host::purge_memory();
        lock.lock();
      }
    }
    for (;;) {
      std::optional<QueuedPrompt> prompt;
      auto cancel = std::make_shared<host::CancelToken>();
      {
        std::lock_guard<std::mutex> lock(work_mutex);
        if (stopping) return;
        prompt = store->start_next();
        if (!prompt) break;
        current_cancel = cancel;
        current_prompt = prompt->prompt_id;
      }
      const std::string client = prompt->extra_data.value("client_id", "");
      net::post(ioc, [this, client] {
        running_client = client;
        send_status();
      });

      const host::RunOptions run = with_folders(options.run, options.input_dir, options.output_dir, options.models_dir,
                                                options.model_save_dir, options.temp_dir);
      PromptOutcome outcome =
          run_prompt(*prompt, executor, *registry, folders, run, cancel, forward_event, node_log);
      {
        std::lock_guard<std::mutex> lock(work_mutex);
        current_cancel.reset();
        current_prompt.clear();
        // Stopped by the server's own shutdown: the prompt stays queued and
        // runs again at the next start.
        if (stopping && outcome.interrupted) return;
      }
      store->finish(prompt->prompt_id, outcome.history_item);
      for (const auto& line : outcome.log) log_line(line);
      const std::string id = prompt->prompt_id;
      net::post(ioc, [this, client, id] {
        running_client.clear();
        last_node.clear();
        if (client.empty()) broadcast("executing", {{"node", nullptr}, {"prompt_id", id}});
        else send(client, "executing", {{"node", nullptr}, {"prompt_id", id}});
        send_status();
      });
    }
  }
}

// ------------------------------------------------------------ routes

void Server::Impl::add_routes() {
  auto json = [](const nlohmann::json& body, http::status status = http::status::ok) { return json_reply(status, body); };
  auto bad_json = [](const std::string& what) {
    return json_reply(http::status::bad_request, {{"error", comfy::error("invalid_json", "the body is not valid JSON", what)},
                                                  {"node_errors", nlohmann::json::object()}});
  };
  auto parse_body = [](const Request& r) { return nlohmann::json::parse(r.body, nullptr, false); };

  routes.add(http::verb::post, "/prompt", [=](const Request& r, const PathParams&) {
    nlohmann::json body = parse_body(r);
    if (body.is_discarded() || !body.is_object()) return bad_json("POST /prompt takes a JSON object");
    if (!body.contains("prompt") || !body["prompt"].is_object())
      return json(nlohmann::json{{"error", comfy::error("no_prompt", "No prompt provided", "")},
                                 {"node_errors", nlohmann::json::object()}},
                  http::status::bad_request);
    host::ParseResult parsed = host::parse_graph_json(body["prompt"]);
    std::vector<host::Issue> issues = parsed.errors;
    std::vector<std::string> outputs;
    if (parsed.graph) {
      // Inputs ComfyUI ignores are ignored here too, with a line in the log.
      for (const auto& w : host::drop_unknown_inputs(*parsed.graph, *registry)) log_line("warning: " + w.to_string());
      issues = host::validate(*parsed.graph, *registry, &folders);
      std::vector<host::Issue> outside = confine_files(*parsed.graph, *registry, folders);
      issues.insert(issues.end(), outside.begin(), outside.end());
      for (const auto& node : parsed.graph->nodes)
        if (const NodeSpec* spec = registry->find_spec(node.class_type); spec && spec->output_node)
          outputs.push_back(node.id);
    }
    if (!issues.empty())
      return json(comfy::validation_failure(issues, parsed.graph ? &*parsed.graph : nullptr, outputs),
                  http::status::bad_request);
    QueuedPrompt prompt;
    if (body.contains("number") && body["number"].is_number()) {
      prompt.number = body["number"].get<double>();
    } else {
      prompt.number = next_number;
      if (body.value("front", false)) prompt.number = -prompt.number;
      next_number += 1;
    }
    prompt.prompt_id = body.contains("prompt_id") && body["prompt_id"].is_string() ? body["prompt_id"].get<std::string>()
                                                                                   : new_uuid();
    if (prompt.prompt_id.empty() || prompt.prompt_id.size() > 200)
      return json({{"error", comfy::error("invalid_prompt_id", "prompt_id must be 1 to 200 characters")},
                   {"node_errors", nlohmann::json::object()}},
                  http::status::bad_request);
    prompt.prompt = body["prompt"];
    prompt.extra_data = body.contains("extra_data") && body["extra_data"].is_object() ? body["extra_data"]
                                                                                      : nlohmann::json::object();
    if (body.contains("client_id") && body["client_id"].is_string()) prompt.extra_data["client_id"] = body["client_id"];
    if (!prompt.extra_data.contains("create_time")) prompt.extra_data["create_time"] = now_ms();
    prompt.outputs = outputs;
    try {
      store->enqueue(prompt);  // committed before the client hears of it
    } catch (const Error& e) {
      return json({{"error", comfy::error("duplicate_prompt_id", e.what())}, {"node_errors", nlohmann::json::object()}},
                  http::status::bad_request);
    }
    if (queue) queue->submitted();
    else wake_executor();
    send_status();
    return json({{"prompt_id", prompt.prompt_id}, {"number", prompt.number}, {"node_errors", nlohmann::json::object()}});
  });

  routes.add(http::verb::get, "/prompt",
             [=](const Request&, const PathParams&) { return json(comfy::queue_info(store->remaining())); });

  routes.add(http::verb::get, "/queue", [=](const Request&, const PathParams&) {
    nlohmann::json running = nlohmann::json::array(), pending = nlohmann::json::array();
    for (const auto& p : store->running()) running.push_back(p.as_comfy());
    for (const auto& p : store->pending()) pending.push_back(p.as_comfy());
    return json({{"queue_running", running}, {"queue_pending", pending}});
  });

  routes.add(http::verb::post, "/queue", [=](const Request& r, const PathParams&) {
    nlohmann::json body = parse_body(r);
    if (body.is_discarded() || !body.is_object()) return bad_json("POST /queue takes {\"clear\": true} or {\"delete\": [ids]}");
    std::vector<std::string> removed;
    if (body.value("clear", false)) {
      if (queue)
        for (const auto& p : store->pending()) removed.push_back(p.prompt_id);
      store->clear_pending();
    }
    if (body.contains("delete") && body["delete"].is_array()) {
      std::vector<std::string> ids;
      for (const auto& id : body["delete"])
        if (id.is_string()) ids.push_back(id);
      if (queue)
        for (const auto& p : store->pending())
          if (std::find(ids.begin(), ids.end(), p.prompt_id) != ids.end()) removed.push_back(p.prompt_id);
      store->remove_pending(ids);
    }
    if (queue) queue->withdrawn(removed);
    send_status();
    return json(nlohmann::json::object());
  });

  routes.add(http::verb::post, "/interrupt", [=](const Request& r, const PathParams&) {
    nlohmann::json body = parse_body(r);
    std::string only;
    if (!body.is_discarded() && body.is_object() && body.contains("prompt_id") && body["prompt_id"].is_string())
      only = body["prompt_id"];
    if (queue) {
      queue->interrupt(only);
      return json(nlohmann::json::object());
    }
    std::lock_guard<std::mutex> lock(work_mutex);
    if (current_cancel && (only.empty() || only == current_prompt)) current_cancel->cancel();
    return json(nlohmann::json::object());
  });

  routes.add(http::verb::get, "/history", [=](const Request& r, const PathParams&) {
    std::size_t max_items = 0;
    std::int64_t offset = -1;
    try {
      if (auto v = r.query_value("max_items"); !v.empty()) max_items = std::stoul(v);
      if (auto v = r.query_value("offset"); !v.empty()) offset = std::stoll(v);
    } catch (const std::exception&) {
      return json({{"error", comfy::error("bad_query", "max_items and offset are numbers")}}, http::status::bad_request);
    }
    // Oldest first, as ComfyUI's dict keeps them: an ordered object.
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (auto& [id, item] : store->history(max_items, offset)) out[id] = std::move(item);
    Reply reply;
    reply.body = out.dump();
    return reply;
  });

  routes.add(http::verb::get, "/history/{prompt_id}", [=](const Request&, const PathParams& p) {
    nlohmann::json out = nlohmann::json::object();
    if (auto item = store->history_item(p.at("prompt_id"))) out[p.at("prompt_id")] = *item;
    return json(out);
  });

  routes.add(http::verb::post, "/history", [=](const Request& r, const PathParams&) {
    nlohmann::json body = parse_body(r);
    if (body.is_discarded() || !body.is_object()) return bad_json("POST /history takes {\"clear\": true} or {\"delete\": [ids]}");
    if (body.value("clear", false)) store->clear_history();
    if (body.contains("delete") && body["delete"].is_array()) {
      std::vector<std::string> ids;
      for (const auto& id : body["delete"])
        if (id.is_string()) ids.push_back(id);
      store->delete_history(ids);
    }
    return json(nlohmann::json::object());
  });

  routes.add(http::verb::get, "/object_info", [=](const Request&, const PathParams&) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& type : registry->class_types()) out[type] = comfy::node_info(*registry->find(type), folders);
    return json(out);
  });

  routes.add(http::verb::get, "/object_info/{node_class}", [=](const Request&, const PathParams& p) {
    nlohmann::json out = nlohmann::json::object();
    if (const host::RegisteredNode* node = registry->find(p.at("node_class")))
      out[p.at("node_class")] = comfy::node_info(*node, folders);
    return json(out);
  });

  routes.add(http::verb::get, "/view", [=](const Request& r, const PathParams&) {
    const std::string type = r.query_value("type").empty() ? "output" : r.query_value("type");
    const fs::path* root = type == "output" ? &options.output_dir
                           : type == "input" ? &options.input_dir
                           : type == "temp"  ? &options.temp_dir
                                             : nullptr;
    if (!root)
      return json({{"error", comfy::error("bad_type", "type is output, input or temp", type)}}, http::status::bad_request);
    return file_reply(*root, r.query_value("subfolder"), r.query_value("filename"));
  });

  auto upload = [=](const Request& r, bool mask) {
    return upload_reply(r, mask, options.input_dir, options.output_dir, options.temp_dir);
  };
  routes.add(http::verb::post, "/upload/image", [=](const Request& r, const PathParams&) { return upload(r, false); });
  routes.add(http::verb::post, "/upload/mask", [=](const Request& r, const PathParams&) { return upload(r, true); });

  routes.add(http::verb::get, "/system_stats", [=](const Request&, const PathParams&) {
    return json(system_stats(options.run.device));
  });
  routes.add(http::verb::get, "/embeddings",
             [=](const Request&, const PathParams&) { return json(nlohmann::json::array()); });
  // The frontend's own extensions, then those of Cozy's web folders (as
  // ComfyUI lists its custom nodes' WEB_DIRECTORY).
  routes.add(http::verb::get, "/extensions", [=](const Request&, const PathParams&) {
    nlohmann::json list = nlohmann::json::array();
    if (!options.front_end_root.empty())
      for (const auto& file : host::list_files(options.front_end_root / "extensions", {".js"}))
        list.push_back("/extensions/" + file);
    for (const auto& [name, dir] : options.web_extensions)
      for (const auto& file : host::list_files(dir, {".js"})) list.push_back("/extensions/" + name + "/" + file);
    return json(list);
  });
  std::map<std::string, fs::path> templates;
  for (const auto& [name, dir] : options.web_extensions) templates[name] = dir / "templates";
  user_data = std::make_unique<UserData>(options.user_dir, templates);
  user_data->add_routes(routes);
  // Subgraph blueprints that extensions ship (none).
  routes.add(http::verb::get, "/global_subgraphs",
             [=](const Request&, const PathParams&) { return json(nlohmann::json::object()); });
  // Asked for by the frontend's model library; Cozy's models are file inputs of their loaders.
  routes.add(http::verb::get, "/experiment/models",
             [=](const Request&, const PathParams&) { return json(nlohmann::json::array()); });
  routes.add(http::verb::get, "/features", [=](const Request&, const PathParams&) {
    return json({{"supports_preview_metadata", false}, {"max_upload_size", options.max_upload_bytes}});
  });
  routes.add(http::verb::post, "/free", [=](const Request& r, const PathParams&) {
    nlohmann::json body = parse_body(r);
    if (body.is_discarded() || !body.is_object()) return bad_json("POST /free takes {\"unload_models\", \"free_memory\"}");
    const bool unload = body.value("unload_models", false), free_memory = body.value("free_memory", false);
    if (unload || free_memory) {
      {
        std::lock_guard<std::mutex> lock(work_mutex);
        free_requested = true;  // after the running prompt, on the executor's thread
        purge_requested = purge_requested || free_memory;
      }
      work_cv.notify_one();
    }
    return json(nlohmann::json::object());
  });

  // ComfyUI's jobs API (what its frontend's queue and history panels read):
  // one list over the queue and the history.
  routes.add(http::verb::get, "/jobs", [=](const Request& r, const PathParams&) {
    std::set<std::string> wanted;
    for (std::string status : split_list(r.query_value("status"))) wanted.insert(status);
    std::size_t limit = 200, offset = 0;
    try {
      if (auto v = r.query_value("limit"); !v.empty()) limit = std::stoul(v);
      if (auto v = r.query_value("offset"); !v.empty()) offset = std::stoul(v);
    } catch (const std::exception&) {
      return json({{"error", comfy::error("bad_query", "limit and offset are numbers")}}, http::status::bad_request);
    }
    // Running, then pending in the order they will run, then the history newest first.
    std::vector<nlohmann::json> all;
    for (const auto& p : store->running()) all.push_back(comfy::job(p, "in_progress", false));
    for (const auto& p : store->pending()) all.push_back(comfy::job(p, "pending", false));
    std::vector<nlohmann::json> finished;
    for (const auto& [id, item] : store->history()) finished.push_back(comfy::job_from_history(id, item, false));
    all.insert(all.end(), finished.rbegin(), finished.rend());
    nlohmann::json jobs = nlohmann::json::array();
    std::size_t total = 0;
    for (auto& j : all) {
      if (!wanted.empty() && !wanted.count(j["status"].get<std::string>())) continue;
      if (total >= offset && jobs.size() < limit) jobs.push_back(std::move(j));
      ++total;
    }
    return json({{"jobs", jobs},
                 {"pagination", {{"offset", offset}, {"limit", limit}, {"total", total}, {"has_more", offset + jobs.size() < total}}}});
  });
  routes.add(http::verb::get, "/jobs/{prompt_id}", [=](const Request&, const PathParams& p) {
    const std::string& id = p.at("prompt_id");
    for (const auto& q : store->running())
      if (q.prompt_id == id) return json(comfy::job(q, "in_progress", true));
    for (const auto& q : store->pending())
      if (q.prompt_id == id) return json(comfy::job(q, "pending", true));
    if (auto item = store->history_item(id)) return json(comfy::job_from_history(id, *item, true));
    return json({{"error", comfy::error("not_found", "no job " + id)}}, http::status::not_found);
  });

  // Static files: the frontend at /, last, for GET paths no route took.
  routes.fallback([=](const Request& r) {
    if (r.method != http::verb::get && r.method != http::verb::head)
      return json({{"error", comfy::error("not_found", "no route " + std::string(http::to_string(r.method)) + " " + r.path)}},
                  http::status::not_found);
    for (const auto& [name, dir] : options.web_extensions) {
      const std::string prefix = "/extensions/" + name + "/";
      if (r.path.rfind(prefix, 0) == 0) return file_reply(dir, "", r.path.substr(prefix.size()), /*subpaths=*/true);
    }
    if (options.front_end_root.empty())
      return json({{"error", comfy::error("not_found", "no route GET " + r.path + " (no frontend: see docs/ui.md)")}},
                  http::status::not_found);
    std::string relative = r.path == "/" ? "index.html" : r.path.substr(1);
    // index.html links user.css beside it (the user's styles may go there).
    if (r.path == "/user.css" && !fs::exists(options.front_end_root / relative)) {
      Reply empty;
      empty.content_type = "text/css; charset=utf-8";
      return empty;
    }
    // ComfyUI's core templates come from another package (and need its
    // models): without them the template browser lists Cozy's only.
    if ((r.path == "/templates/index.json" || r.path == "/templates/index_logo.json") &&
        !fs::exists(options.front_end_root / relative))
      return json(r.path == "/templates/index.json" ? nlohmann::json::array() : nlohmann::json::object());
    Reply reply = file_reply(options.front_end_root, "", relative, /*subpaths=*/true);
    if (r.path == "/") reply.headers.push_back({"Cache-Control", "no-cache"});
    return reply;
  });
}

// ------------------------------------------------------------ Server

Server::Server(std::shared_ptr<const host::Registry> registry, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(registry), std::move(options))) {}

Server::~Server() { stop(); }

unsigned short Server::start() {
  Impl& s = *impl_;
  if (s.started) return s.port;
  for (const fs::path& dir : {s.options.input_dir, s.options.output_dir, s.options.temp_dir, s.options.user_dir})
    fs::create_directories(dir);
  s.store = std::make_unique<Store>(s.options.user_dir / "cozy.db", s.options.history_size);
  for (const auto& id : s.store->given_up())
    s.log_line("prompt " + id + ": the server stopped twice while running it; moved to the history as failed");
  // The next number follows the queue left by an earlier process.
  for (const auto& p : s.store->pending()) s.next_number = std::max(s.next_number, p.number + 1);
  s.add_routes();
  if (!s.options.queue_url.empty()) {
    queue::Settings settings{s.options.queue_url, s.options.queue_ack_wait, s.options.queue_max_deliveries,
                             s.options.queue_replicas};
    queue::ServerQueue::Host host{
        *s.store,
        [&s](const std::string& client, const std::string& type, nlohmann::json data) {
          s.post_event(client, type, std::move(data));
        },
        [&s] { s.post_status(); },
        [&s](const std::string& line) { s.log_line(line); },
        {{"output", s.options.output_dir},
         {"temp", s.options.temp_dir},
         {"models", s.options.model_save_dir.empty() ? s.options.output_dir : s.options.model_save_dir}}};
    s.queue = std::make_unique<queue::ServerQueue>(settings, std::move(host));
  }

  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.listen, ec);
  if (ec) throw Error("--listen " + s.options.listen + ": not an IP address");
  tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw Error("cannot listen on " + s.options.listen + ":" + std::to_string(s.options.port) + ": " + ec.message());
  s.port = s.acceptor.local_endpoint().port();
  s.accept();
  s.started = true;
  s.io_thread = std::thread([&s] { s.ioc.run(); });
  if (!s.queue) {
    s.exec_thread = std::thread([&s] { s.execute_loop(); });
    s.wake_executor();  // prompts left by an earlier process run now
  }
  return s.port;
}

void Server::stop() {
  Impl& s = *impl_;
  if (!s.started) return;
  s.started = false;
  {
    std::lock_guard<std::mutex> lock(s.work_mutex);
    s.stopping = true;
    if (s.current_cancel) s.current_cancel->cancel();
  }
  s.work_cv.notify_all();
  if (s.exec_thread.joinable()) s.exec_thread.join();
  s.queue.reset();
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.sockets.clear();
    s.ioc.stop();
  });
  if (s.io_thread.joinable()) s.io_thread.join();
}

std::string Server::url() const {
  std::string host = impl_->options.listen.find(':') != std::string::npos ? "[" + impl_->options.listen + "]"
                                                                          : impl_->options.listen;
  return "http://" + host + ":" + std::to_string(impl_->port);
}

}  // namespace cozy::server
