// `cozy serve` over real sockets: routes and their JSON, the queue and its
// persistence, the WebSocket's events, and every refusal (token, origin,
// traversal, symlinks, oversize bodies, malformed JSON and multipart, slow
// clients). The server runs in this process on a free loopback port.
#include "test_nodes.hpp"

#include <cozy/server/server.hpp>

#include "store.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <fstream>
#include <thread>

namespace cozy::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace fs = std::filesystem;
using nlohmann::json;

struct Response {
  int status = 0;
  std::string body;
  std::string content_type;
  json as_json() const { return json::parse(body, nullptr, false); }
};

// Gives a socket a receive timeout, so a test never hangs on a silent server.
void set_timeout(tcp::socket& socket, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::recorder().reset();
    dir = fs::temp_directory_path() /
          ("cozy_server_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    registry = testing::test_registry();
    registry->load_folder(COZY_PLUGIN_DIR);  // core: EmptyImage, SaveImage, LoadImage
    options.port = 0;
    options.input_dir = dir / "input";
    options.output_dir = dir / "output";
    options.temp_dir = dir / "temp";
    options.models_dir = dir / "models";
    options.user_dir = dir / "user";
    options.run.jobs = 1;
    options.run.threads = 1;
    fs::create_directories(options.input_dir);
  }
  void TearDown() override {
    server.reset();
    fs::remove_all(dir);
  }

  void start() {
    server = std::make_unique<Server>(registry, options);
    port = server->start();
  }

  Response request(http::verb method, const std::string& target, const std::string& body = "",
                   const std::string& content_type = "application/json",
                   const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), port});
    set_timeout(socket, 20000);
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    if (!body.empty() || method == http::verb::post) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    return {static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::content_type])};
  }
  Response get(const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return request(http::verb::get, target, "", "", headers);
  }
  Response post(const std::string& target, const json& body) { return request(http::verb::post, target, body.dump()); }

  // Queues a prompt and waits until it is in the history; returns its item.
  json run_prompt(const json& prompt, const std::string& client_id = "") {
    json body = {{"prompt", prompt}};
    if (!client_id.empty()) body["client_id"] = client_id;
    Response r = post("/prompt", body);
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string id = r.as_json().value("prompt_id", "");
    return wait_for_history(id);
  }
  json wait_for_history(const std::string& id, int timeout_ms = 20000) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      json h = get("/history/" + id).as_json();
      if (h.contains(id)) return h[id];
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "prompt " << id << " never reached the history";
    return {};
  }

  fs::path dir;
  std::shared_ptr<host::Registry> registry;
  ServerOptions options;
  std::unique_ptr<Server> server;
  unsigned short port = 0;
};

const json kConstGraph = {{"1", {{"class_type", "Const"}, {"inputs", {{"value", 3}}}}},
                          {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}};

json wait_graph(int ms) {
  return {{"1", {{"class_type", "Wait"}, {"inputs", {{"ms", ms}}}}},
          {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}};
}

const json kImageGraph = {
    {"1", {{"class_type", "EmptyImage"}, {"inputs", {{"width", 8}, {"height", 6}, {"batch_size", 2}}}}},
    {"2", {{"class_type", "SaveImage"}, {"inputs", {{"images", {"1", 0}}, {"filename_prefix", "run/img"}}}}}};

// ---------------------------------------------------------------- routes

TEST_F(ServerTest, ReadOnlyRoutesAnswerComfyUIsShapesWithAndWithoutApi) {
  start();
  for (const std::string prefix : {"", "/api"}) {
    EXPECT_EQ(get(prefix + "/prompt").as_json(), (json{{"exec_info", {{"queue_remaining", 0}}}}));
    json queue = get(prefix + "/queue").as_json();
    EXPECT_EQ(queue["queue_running"], json::array());
    EXPECT_EQ(queue["queue_pending"], json::array());
    json info = get(prefix + "/object_info").as_json();
    ASSERT_TRUE(info.contains("Const"));
    EXPECT_EQ(info["Const"]["input"]["required"]["value"][0], "INT");
    EXPECT_EQ(info["SaveImage"]["output_node"], true);
    EXPECT_EQ(info["LoadImage"]["python_module"], "cozy.core");
    json one = get(prefix + "/object_info/Const").as_json();
    EXPECT_EQ(one.size(), 1u);
    EXPECT_EQ(one["Const"]["name"], "Const");
    EXPECT_EQ(get(prefix + "/object_info/Nope").as_json(), json::object());
    EXPECT_EQ(get(prefix + "/embeddings").as_json(), json::array());
    EXPECT_EQ(get(prefix + "/history").as_json(), json::object());
    json stats = get(prefix + "/system_stats").as_json();
    EXPECT_GT(stats["system"]["ram_total"].get<double>(), 0);
    EXPECT_EQ(stats["devices"][0]["type"], "cpu");
    EXPECT_TRUE(get(prefix + "/features").as_json().contains("max_upload_size"));
    EXPECT_TRUE(get(prefix + "/extensions").as_json().is_array());
  }
  Response missing = get("/no/such/route");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.as_json()["error"]["type"], "not_found");
  Response wrong_method = request(http::verb::delete_, "/prompt");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.as_json()["error"]["type"], "method_not_allowed");
}

TEST_F(ServerTest, APromptRunsAndItsHistoryHasStatusOutputsAndTimings) {
  start();
  Response r = post("/prompt", {{"prompt", kImageGraph}, {"client_id", "c1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json answer = r.as_json();
  EXPECT_EQ(answer["node_errors"], json::object());
  EXPECT_TRUE(answer["number"].is_number());
  const std::string id = answer["prompt_id"];
  EXPECT_EQ(id.size(), 36u) << "a UUID";
  json item = wait_for_history(id);
  EXPECT_EQ(item["status"]["status_str"], "success");
  EXPECT_EQ(item["status"]["completed"], true);
  EXPECT_EQ(item["prompt"][1], id);
  EXPECT_EQ(item["prompt"][2], kImageGraph);
  EXPECT_EQ(item["prompt"][3]["client_id"], "c1");
  EXPECT_EQ(item["prompt"][4], json::array({"2"}));
  ASSERT_EQ(item["outputs"]["2"]["images"].size(), 2u);
  json image = item["outputs"]["2"]["images"][0];
  EXPECT_EQ(image, (json{{"filename", "img_00001.png"}, {"subfolder", "run"}, {"type", "output"}}));
  EXPECT_GT(item["cozy"]["finished_ms"].get<double>(), 0);
  std::vector<std::string> messages;
  for (const auto& m : item["status"]["messages"]) messages.push_back(m[0]);
  EXPECT_EQ(messages, (std::vector<std::string>{"execution_start", "execution_success"}));
  // The file, as /view serves it.
  Response view = get("/view?filename=img_00001.png&subfolder=run&type=output");
  EXPECT_EQ(view.status, 200);
  EXPECT_EQ(view.content_type, "image/png");
  EXPECT_EQ(view.body.substr(1, 3), "PNG");
  EXPECT_EQ(get("/jobs/" + id).as_json()["status"], "completed");
}

TEST_F(ServerTest, AnInvalidPromptIsRefusedWithComfyUIsNodeErrors) {
  start();
  Response r = post("/prompt", {{"prompt",
                                 {{"1", {{"class_type", "Const"}, {"inputs", {{"value", "three"}}}}},
                                  {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}},
                                  {"3", {{"class_type", "Sink"}, {"inputs", json::object()}}}}}});
  ASSERT_EQ(r.status, 400);
  json body = r.as_json();
  EXPECT_EQ(body["error"]["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(body["error"]["message"], "Prompt outputs failed validation");
  ASSERT_TRUE(body["node_errors"].contains("1"));
  json e1 = body["node_errors"]["1"];
  EXPECT_EQ(e1["class_type"], "Const");
  EXPECT_EQ(e1["dependent_outputs"], json::array({"2"}));
  EXPECT_EQ(e1["errors"][0]["type"], "invalid_input_type");
  EXPECT_EQ(e1["errors"][0]["extra_info"]["input_name"], "value");
  EXPECT_EQ(e1["errors"][0]["extra_info"]["received_value"], "three");
  EXPECT_EQ(body["node_errors"]["3"]["errors"][0]["type"], "required_input_missing");
  EXPECT_EQ(get("/prompt").as_json()["exec_info"]["queue_remaining"], 0) << "nothing was queued";

  Response unknown = post("/prompt", {{"prompt", {{"1", {{"class_type", "Nope"}, {"inputs", json::object()}}}}}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.as_json()["error"]["type"], "missing_node_type");
  Response no_prompt = post("/prompt", {{"client_id", "x"}});
  EXPECT_EQ(no_prompt.status, 400);
  EXPECT_EQ(no_prompt.as_json()["error"]["type"], "no_prompt");
  Response garbage = request(http::verb::post, "/prompt", "{not json");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(garbage.as_json()["error"]["type"], "invalid_json");
}

TEST_F(ServerTest, AGivenPromptIdAndNumberAreHonouredAndAnIdIsUsedOnce) {
  start();
  Response r = post("/prompt", {{"prompt", kConstGraph}, {"prompt_id", "mine-1"}, {"number", 7}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.as_json()["prompt_id"], "mine-1");
  EXPECT_EQ(r.as_json()["number"], 7);
  wait_for_history("mine-1");
  Response again = post("/prompt", {{"prompt", kConstGraph}, {"prompt_id", "mine-1"}});
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.as_json()["error"]["type"], "duplicate_prompt_id");
}

TEST_F(ServerTest, TheQueueListsDeletesClearsAndInterrupts) {
  start();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(post("/prompt", {{"prompt", wait_graph(3000)}}).as_json()["prompt_id"]);
  // The first runs; the others wait.
  for (int waited = 0; waited < 5000 && get("/queue").as_json()["queue_running"].empty(); waited += 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  json queue = get("/queue").as_json();
  ASSERT_EQ(queue["queue_running"].size(), 1u);
  EXPECT_EQ(queue["queue_running"][0][1], ids[0]);
  ASSERT_EQ(queue["queue_pending"].size(), 3u);
  EXPECT_EQ(queue["queue_pending"][0][1], ids[1]);
  EXPECT_EQ(get("/jobs/" + ids[1]).as_json()["status"], "pending");
  post("/queue", {{"delete", {ids[1]}}});
  queue = get("/queue").as_json();
  ASSERT_EQ(queue["queue_pending"].size(), 2u);
  EXPECT_EQ(queue["queue_pending"][0][1], ids[2]);
  post("/queue", {{"clear", true}});
  EXPECT_EQ(get("/queue").as_json()["queue_pending"].size(), 0u);
  // An interrupt naming another prompt leaves the running one alone.
  post("/interrupt", {{"prompt_id", "someone-else"}});
  EXPECT_EQ(get("/queue").as_json()["queue_running"].size(), 1u);
  post("/interrupt", json::object());
  json item = wait_for_history(ids[0]);
  EXPECT_EQ(item["status"]["status_str"], "error");
  EXPECT_EQ(item["cozy"]["interrupted"], true);
  EXPECT_LT(item["cozy"]["seconds"].get<double>(), 2.5) << "stopped before its 3 s";
  EXPECT_EQ(item["status"]["messages"].back()[0], "execution_interrupted");
  EXPECT_EQ(get("/jobs/" + ids[0]).as_json()["status"], "cancelled");
  EXPECT_EQ(get("/history").as_json().size(), 1u) << "deleted and cleared prompts never ran";
}

TEST_F(ServerTest, JobsListTheQueueAndTheHistoryAsComfyUIsFrontendReadsThem) {
  start();
  const std::string done = run_prompt(kImageGraph)["prompt"][1];
  const std::string failed = run_prompt({{"1", {{"class_type", "Fail"}}},
                                         {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}})["prompt"][1];
  const std::string running = post("/prompt", {{"prompt", wait_graph(2000)}}).as_json()["prompt_id"];
  const std::string pending = post("/prompt", {{"prompt", kConstGraph}}).as_json()["prompt_id"];
  for (int waited = 0; waited < 5000 && get("/queue").as_json()["queue_running"].empty(); waited += 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  json all = get("/api/jobs?limit=10").as_json();
  ASSERT_EQ(all["jobs"].size(), 4u);
  EXPECT_EQ(all["pagination"], (json{{"offset", 0}, {"limit", 10}, {"total", 4}, {"has_more", false}}));
  std::vector<std::string> order;
  for (const auto& j : all["jobs"]) order.push_back(j["id"]);
  EXPECT_EQ(order, (std::vector<std::string>{running, pending, failed, done})) << "queue first, then newest first";
  EXPECT_EQ(all["jobs"][0]["status"], "in_progress");
  EXPECT_EQ(all["jobs"][1]["status"], "pending");
  EXPECT_EQ(all["jobs"][2]["status"], "failed");
  EXPECT_EQ(all["jobs"][2]["execution_error"]["node_id"], "1");
  json completed = all["jobs"][3];
  EXPECT_EQ(completed["status"], "completed");
  EXPECT_EQ(completed["outputs_count"], 2);
  EXPECT_EQ(completed["preview_output"]["filename"], "img_00001.png");
  EXPECT_EQ(completed["preview_output"]["nodeId"], "2");
  EXPECT_GT(completed["create_time"].get<double>(), 0);
  EXPECT_GE(completed["execution_end_time"].get<double>(), completed["execution_start_time"].get<double>());
  json history_only = get("/jobs?status=completed,failed,cancelled&limit=1&offset=1").as_json();
  ASSERT_EQ(history_only["jobs"].size(), 1u);
  EXPECT_EQ(history_only["jobs"][0]["id"], done);
  EXPECT_EQ(history_only["pagination"]["total"], 2);
  EXPECT_EQ(history_only["pagination"]["has_more"], false);
  json detail = get("/jobs/" + done).as_json();
  EXPECT_EQ(detail["workflow"]["prompt"], kImageGraph);
  EXPECT_EQ(detail["outputs"]["2"]["images"].size(), 2u);
  EXPECT_EQ(detail["execution_status"]["status_str"], "success");
  EXPECT_EQ(get("/jobs/nope").status, 404);
  post("/interrupt", json::object());
}

TEST_F(ServerTest, AFailingNodeFailsItsPromptOnlyAndTheNextOneRuns) {
  start();
  json failed = run_prompt({{"1", {{"class_type", "TorchFail"}}}, {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}});
  EXPECT_EQ(failed["status"]["status_str"], "error");
  json error = failed["status"]["messages"].back();
  EXPECT_EQ(error[0], "execution_error");
  EXPECT_EQ(error[1]["node_id"], "1");
  EXPECT_EQ(error[1]["exception_type"], "c10::Error");
  EXPECT_EQ(failed["cozy"]["failures"][0]["exception_type"], "c10::Error");
  EXPECT_EQ(run_prompt(kConstGraph)["status"]["status_str"], "success");
}

TEST_F(ServerTest, HistoryIsListedLimitedAndDeleted) {
  start();
  for (int i = 0; i < 3; ++i) run_prompt({{"1", {{"class_type", "Const"}, {"inputs", {{"value", i}}}}},
                                          {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}});
  json all = get("/history").as_json();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(get("/history?max_items=2").as_json().size(), 2u);
  // Oldest first in the body, as ComfyUI sends them.
  const std::string body = get("/history").body;
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(body);
  std::vector<int> values;
  for (const auto& [id, item] : ordered.items()) values.push_back(item["prompt"][2]["1"]["inputs"]["value"]);
  EXPECT_EQ(values, (std::vector<int>{0, 1, 2}));
  const std::string first = ordered.begin().key();
  post("/history", {{"delete", {first}}});
  EXPECT_EQ(get("/history").as_json().size(), 2u);
  EXPECT_EQ(get("/history/" + first).as_json(), json::object());
  post("/history", {{"clear", true}});
  EXPECT_EQ(get("/history").as_json(), json::object());
}

TEST_F(ServerTest, TheCacheServesAnUnchangedNodeUntilFree) {
  start();
  json first = run_prompt(kConstGraph);
  json second = run_prompt(kConstGraph);
  EXPECT_FALSE(second["cozy"]["cached"].empty()) << "the second run is served from the cache";
  EXPECT_EQ(testing::recorder().calls["1"], 1);
  EXPECT_EQ(post("/free", {{"unload_models", true}, {"free_memory", true}}).status, 200);
  json third = run_prompt(kConstGraph);
  EXPECT_TRUE(third["cozy"]["cached"].empty()) << "POST /free emptied the cache";
  EXPECT_EQ(testing::recorder().calls["1"], 2);
}

// ---------------------------------------------------------------- persistence

TEST_F(ServerTest, TheQueueAndHistorySurviveARestart) {
  start();
  run_prompt(kConstGraph);
  const std::string running = post("/prompt", {{"prompt", wait_graph(5000)}}).as_json()["prompt_id"];
  const std::string pending = post("/prompt", {{"prompt", kConstGraph}, {"prompt_id", "queued-1"}}).as_json()["prompt_id"];
  for (int waited = 0; waited < 5000 && get("/queue").as_json()["queue_running"].empty(); waited += 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  server->stop();  // interrupts the running prompt; it stays queued
  server.reset();

  options.port = 0;
  start();
  json running_item = wait_for_history(running);
  EXPECT_EQ(running_item["status"]["status_str"], "success") << "the interrupted prompt ran again, to its end";
  EXPECT_EQ(wait_for_history("queued-1")["status"]["status_str"], "success");
  EXPECT_EQ(get("/history").as_json().size(), 3u) << "each prompt once";
}

// The store alone: a prompt that was running when the process died runs
// again, but not forever.
TEST(Store, APromptThatKeepsCrashingTheServerIsGivenUp) {
  const fs::path file = fs::temp_directory_path() / "cozy_store_crash" / "cozy.db";
  fs::remove_all(file.parent_path());
  {
    Store store(file, 100);
    QueuedPrompt a, b;
    a.prompt_id = "a", a.prompt = kConstGraph, a.number = 0;
    b.prompt_id = "b", b.prompt = kConstGraph, b.number = 1;
    store.enqueue(a);
    store.enqueue(b);
    EXPECT_EQ(store.start_next()->prompt_id, "a");
  }  // the process dies while "a" runs
  {
    Store store(file, 100);
    EXPECT_TRUE(store.given_up().empty());
    ASSERT_EQ(store.pending().size(), 2u);
    auto again = store.start_next();
    EXPECT_EQ(again->prompt_id, "a");
    EXPECT_EQ(again->attempts, 2);
  }  // and dies again
  Store store(file, 100);
  EXPECT_EQ(store.given_up(), std::vector<std::string>{"a"});
  auto item = store.history_item("a");
  ASSERT_TRUE(item);
  EXPECT_EQ((*item)["status"]["status_str"], "error");
  EXPECT_EQ((*item)["status"]["messages"][0][1]["exception_type"], "cozy::server::Crashed");
  ASSERT_EQ(store.pending().size(), 1u);
  EXPECT_EQ(store.pending()[0].prompt_id, "b");
  fs::remove_all(file.parent_path());
}

TEST(Store, TheHistoryKeepsItsNewestItems) {
  const fs::path file = fs::temp_directory_path() / "cozy_store_limit" / "cozy.db";
  fs::remove_all(file.parent_path());
  Store store(file, 2);
  for (const char* id : {"1", "2", "3"}) {
    QueuedPrompt p;
    p.prompt_id = id;
    p.prompt = kConstGraph;
    store.enqueue(p);
    store.start_next();
    store.finish(id, {{"status", {{"status_str", "success"}}}});
  }
  auto history = store.history();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].first, "2");
  EXPECT_EQ(history[1].first, "3");
  EXPECT_EQ(store.history(1).at(0).first, "3");
  fs::remove_all(file.parent_path());
}

// ---------------------------------------------------------------- events

struct WsClient {
  WsClient(unsigned short port, const std::string& target) : ws(ioc) {
    tcp::socket& socket = ws.next_layer();
    socket.connect({net::ip::make_address("127.0.0.1"), port});
    set_timeout(socket, 20000);
    ws.handshake("127.0.0.1:" + std::to_string(port), target);
  }
  json next() {
    beast::flat_buffer buffer;
    ws.read(buffer);
    return json::parse(beast::buffers_to_string(buffer.data()));
  }
  // Messages until (and with) one of `type` whose data matches `pred`.
  std::vector<json> until(const std::string& type, const std::function<bool(const json&)>& pred = nullptr) {
    std::vector<json> seen;
    for (;;) {
      seen.push_back(next());
      if (seen.back()["type"] == type && (!pred || pred(seen.back()["data"]))) return seen;
    }
  }
  net::io_context ioc;
  websocket::stream<tcp::socket> ws;
};

TEST_F(ServerTest, TheWebSocketCarriesComfyUIsEventsInOrder) {
  start();
  WsClient client(port, "/ws?clientId=abc");
  json hello = client.next();
  EXPECT_EQ(hello["type"], "status");
  EXPECT_EQ(hello["data"]["sid"], "abc");
  EXPECT_EQ(hello["data"]["status"]["exec_info"]["queue_remaining"], 0);
  // feature_flags is answered.
  client.ws.write(net::buffer(std::string(R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})")));
  EXPECT_EQ(client.next()["type"], "feature_flags");

  const std::string id = post("/prompt", {{"prompt", kImageGraph}, {"client_id", "abc"}}).as_json()["prompt_id"];
  std::vector<json> events = client.until("executing", [](const json& d) { return d["node"].is_null(); });
  std::vector<std::string> types;
  for (const auto& e : events) {
    types.push_back(e["type"]);
    if (e["type"] != "status") {
      EXPECT_EQ(e["data"]["prompt_id"], id) << e.dump();
    }
  }
  // status (queued), status (running), execution_start, executing 1, executing 2,
  // executed 2 (EmptyImage shows nothing: no executed), execution_success,
  // then executing null once the history is written.
  std::vector<std::string> expected = {"status", "status", "execution_start", "executing", "executing",
                                       "executed", "execution_success", "executing"};
  EXPECT_EQ(types, expected);
  const json& executed = events[5]["data"];
  EXPECT_EQ(executed["node"], "2");
  EXPECT_EQ(executed["output"]["images"][0]["filename"], "img_00001.png");
  EXPECT_TRUE(get("/history/" + id).as_json().contains(id)) << "the history is written before executing null";
  EXPECT_EQ(client.next()["type"], "status");
}

TEST_F(ServerTest, EventsGoToTheClientThatQueuedAndBroadcastWithoutOne) {
  start();
  WsClient mine(port, "/ws?clientId=mine"), other(port, "/ws?clientId=other");
  mine.next();
  other.next();
  post("/prompt", {{"prompt", kConstGraph}, {"client_id", "mine"}});
  mine.until("execution_success");
  // The other client saw status messages only.
  std::vector<json> seen = other.until("status", [](const json& d) { return d["status"]["exec_info"]["queue_remaining"] == 0; });
  for (const auto& e : seen) EXPECT_EQ(e["type"], "status");
  // Without a client_id, everyone hears it.
  post("/prompt", {{"prompt", {{"1", {{"class_type", "Const"}, {"inputs", {{"value", 11}}}}},
                               {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}}}});
  other.until("execution_success");
  mine.until("execution_success");
}

TEST_F(ServerTest, AnErrorReachesTheClientAsOneExecutionError) {
  start();
  WsClient client(port, "/ws?clientId=e");
  client.next();
  post("/prompt", {{"prompt", {{"1", {{"class_type", "Fail"}}},
                               {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}},
                               {"3", {{"class_type", "Const"}}},
                               {"4", {{"class_type", "Sink"}, {"inputs", {{"value", {"3", 0}}}}}}}},
                   {"client_id", "e"}});
  std::vector<json> events = client.until("executing", [](const json& d) { return d["node"].is_null(); });
  int terminal = 0;
  for (const auto& e : events) {
    if (e["type"] == "execution_error") {
      ++terminal;
      EXPECT_EQ(e["data"]["node_id"], "1");
      EXPECT_EQ(e["data"]["exception_message"], "boom");
      EXPECT_EQ(e["data"]["exception_type"], "cozy::Error");
      EXPECT_TRUE(e["data"]["traceback"].is_array());
    }
    if (e["type"] == "execution_success" || e["type"] == "execution_interrupted") ++terminal;
  }
  EXPECT_EQ(terminal, 1);
}

// ---------------------------------------------------------------- security

TEST_F(ServerTest, ATokenIsNeededEverywhereWhenSet) {
  options.token = "s3cret";
  start();
  Response none = get("/prompt");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.as_json()["error"]["type"], "unauthorized");
  EXPECT_EQ(get("/prompt", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(get("/prompt", {{"Authorization", "Bearer s3cret"}}).status, 200);
  EXPECT_EQ(get("/prompt?token=s3cret").status, 200);
  // The WebSocket too.
  EXPECT_THROW(WsClient(port, "/ws?clientId=x"), boost::system::system_error);
  WsClient ok(port, "/ws?clientId=x&token=s3cret");
  EXPECT_EQ(ok.next()["type"], "status");
}

TEST_F(ServerTest, ABrowserRequestFromAnotherOriginIsRefused) {
  start();
  const std::string host = "127.0.0.1:" + std::to_string(port);
  Response evil = get("/prompt", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(evil.as_json()["error"]["type"], "forbidden_origin");
  EXPECT_EQ(get("/prompt", {{"Origin", "http://" + host}}).status, 200);
  EXPECT_EQ(get("/prompt", {{"Origin", "http://127.0.0.1:1"}}).status, 403) << "another port is another origin";
}

TEST_F(ServerTest, ViewStaysInsideItsFolders) {
  start();
  fs::create_directories(options.output_dir / "sub");
  std::ofstream(options.output_dir / "sub" / "a.png") << "png";
  std::ofstream(dir / "secret.txt") << "secret";
  fs::create_symlink(dir / "secret.txt", options.output_dir / "link.txt");
  fs::create_directory_symlink(dir, options.output_dir / "dirlink");
  EXPECT_EQ(get("/view?filename=a.png&subfolder=sub&type=output").status, 200);
  EXPECT_EQ(get("/view?filename=..%2Fsecret.txt&type=output").status, 400);
  EXPECT_EQ(get("/view?filename=%2Fetc%2Fpasswd&type=output").status, 400);
  EXPECT_EQ(get("/view?filename=secret.txt&subfolder=..&type=output").status, 403);
  EXPECT_EQ(get("/view?filename=secret.txt&subfolder=%2Ftmp&type=output").status, 403);
  Response link = get("/view?filename=link.txt&type=output");
  EXPECT_EQ(link.status, 403) << "a symlink that leads out is refused (ComfyUI issue 12285)";
  EXPECT_NE(link.body, "secret");
  EXPECT_EQ(get("/view?filename=secret.txt&subfolder=dirlink&type=output").status, 403);
  EXPECT_EQ(get("/view?filename=a.png&type=elsewhere").status, 400);
  EXPECT_EQ(get("/view?filename=nope.png&type=output").status, 404);
}

std::string multipart(const std::string& boundary, const std::vector<std::tuple<std::string, std::string, std::string>>& parts) {
  std::string body;
  for (const auto& [name, filename, data] : parts) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"";
    if (!filename.empty()) body += "; filename=\"" + filename + "\"\r\nContent-Type: image/png";
    body += "\r\n\r\n" + data + "\r\n";
  }
  return body + "--" + boundary + "--\r\n";
}

TEST_F(ServerTest, UploadsAreNamedConfinedAndLimited) {
  options.max_upload_bytes = 64 * 1024;
  start();
  const std::string type = "multipart/form-data; boundary=XyZ";
  Response first = request(http::verb::post, "/upload/image", multipart("XyZ", {{"image", "pic.png", "one"}}), type);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.as_json(), (json{{"name", "pic.png"}, {"subfolder", ""}, {"type", "input"}}));
  Response same = request(http::verb::post, "/upload/image", multipart("XyZ", {{"image", "pic.png", "one"}}), type);
  EXPECT_EQ(same.as_json()["name"], "pic.png") << "the same bytes again are not stored twice";
  Response other = request(http::verb::post, "/upload/image", multipart("XyZ", {{"image", "pic.png", "two"}}), type);
  EXPECT_EQ(other.as_json()["name"], "pic (1).png");
  Response over = request(http::verb::post, "/upload/image",
                          multipart("XyZ", {{"image", "pic.png", "three"}, {"overwrite", "", "true"}}), type);
  EXPECT_EQ(over.as_json()["name"], "pic.png");
  std::ifstream in(options.input_dir / "pic.png");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "three");
  Response sub = request(http::verb::post, "/upload/image",
                         multipart("XyZ", {{"image", "../../x.png", "d"}, {"subfolder", "", "mine"}}), type);
  EXPECT_EQ(sub.as_json(), (json{{"name", "x.png"}, {"subfolder", "mine"}, {"type", "input"}})) << "the name is cleaned";
  EXPECT_TRUE(fs::exists(options.input_dir / "mine" / "x.png"));

  EXPECT_EQ(request(http::verb::post, "/upload/image", multipart("XyZ", {{"image", "a.png", "d"}, {"subfolder", "", "../.."}}), type).status, 403);
  EXPECT_EQ(request(http::verb::post, "/upload/image", multipart("XyZ", {{"image", ".hidden", "d"}}), type).status, 400);
  EXPECT_EQ(request(http::verb::post, "/upload/image", multipart("XyZ", {{"name", "", "d"}}), type).status, 400);
  Response bad = request(http::verb::post, "/upload/image", "--XyZ\r\nno headers end", type);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.as_json()["error"]["type"], "bad_multipart");
  EXPECT_EQ(request(http::verb::post, "/upload/image", "{}", "application/json").status, 400);
  Response big = request(http::verb::post, "/upload/image",
                         multipart("XyZ", {{"image", "big.png", std::string(100 * 1024, 'x')}}), type);
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.as_json()["error"]["type"], "payload_too_large");
}

TEST_F(ServerTest, AMaskUploadPutsItsAlphaOnTheOriginal) {
  start();
  cv::Mat original(4, 6, CV_8UC3, cv::Scalar(10, 20, 30));
  std::vector<unsigned char> png;
  cv::imencode(".png", original, png);
  fs::create_directories(options.output_dir / "shots");
  cv::imwrite((options.output_dir / "shots" / "orig.png").string(), original);
  cv::Mat mask(4, 6, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  mask(cv::Rect(0, 0, 3, 4)).setTo(cv::Scalar(0, 0, 0, 255));
  cv::imencode(".png", mask, png);
  const std::string body = multipart("M", {{"image", "masked.png", std::string(png.begin(), png.end())},
                                           {"original_ref", "", R"({"filename": "orig.png", "subfolder": "shots", "type": "output"})"}});
  Response r = request(http::verb::post, "/upload/mask", body, "multipart/form-data; boundary=M");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.as_json()["name"], "masked.png");
  cv::Mat stored = cv::imread((options.input_dir / "masked.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(stored.channels(), 4);
  EXPECT_EQ(stored.at<cv::Vec4b>(0, 0), cv::Vec4b(10, 20, 30, 255)) << "the original's colour, the mask's alpha";
  EXPECT_EQ(stored.at<cv::Vec4b>(0, 5), cv::Vec4b(10, 20, 30, 0));
  Response outside = request(http::verb::post, "/upload/mask",
                             multipart("M", {{"image", "m.png", std::string(png.begin(), png.end())},
                                             {"original_ref", "", R"({"filename": "../../x.png", "type": "output"})"}}),
                             "multipart/form-data; boundary=M");
  EXPECT_EQ(outside.status, 403);
}

TEST_F(ServerTest, EveryOtherRefusalSaysWhatIsWrong) {
  start();
  auto error_of = [](const Response& r) { return r.as_json()["error"]; };
  Response query = get("/history?max_items=many");
  EXPECT_EQ(query.status, 400);
  EXPECT_EQ(error_of(query)["message"], "max_items and offset are numbers");
  Response limit = get("/jobs?limit=all");
  EXPECT_EQ(limit.status, 400);
  EXPECT_EQ(error_of(limit)["message"], "limit and offset are numbers");
  Response id = post("/prompt", {{"prompt", kConstGraph}, {"prompt_id", ""}});
  EXPECT_EQ(id.status, 400);
  EXPECT_EQ(error_of(id)["type"], "invalid_prompt_id");
  EXPECT_EQ(error_of(id)["message"], "prompt_id must be 1 to 200 characters");
  Response route = request(http::verb::post, "/no/such/route", "{}");
  EXPECT_EQ(route.status, 404);
  EXPECT_EQ(error_of(route)["message"], "no route POST /no/such/route");
  for (const std::string path : {"/queue", "/history", "/free"}) {
    Response bad = request(http::verb::post, path, "[1, 2");
    EXPECT_EQ(bad.status, 400) << path;
    EXPECT_EQ(error_of(bad)["type"], "invalid_json") << path;
  }
  const std::string type = "multipart/form-data; boundary=M";
  Response ref = request(http::verb::post, "/upload/mask",
                         multipart("M", {{"image", "m.png", "x"}, {"original_ref", "", "not json"}}), type);
  EXPECT_EQ(ref.status, 400);
  EXPECT_EQ(error_of(ref)["message"], "original_ref is {filename, subfolder, type}");
  std::ofstream(options.input_dir / "orig.png") << "x";
  cv::Mat original(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  cv::imwrite((options.input_dir / "orig.png").string(), original);
  Response not_image = request(http::verb::post, "/upload/mask",
                               multipart("M", {{"image", "m.png", "not a png"},
                                               {"original_ref", "", R"({"filename": "orig.png", "type": "input"})"}}),
                               type);
  EXPECT_EQ(not_image.status, 400);
  EXPECT_EQ(error_of(not_image)["message"], "the mask is not an image");
  Response no_original = request(http::verb::post, "/upload/mask",
                                 multipart("M", {{"image", "m.png", "x"},
                                                 {"original_ref", "", R"({"filename": "gone.png", "type": "input"})"}}),
                                 type);
  EXPECT_EQ(no_original.status, 404);
  EXPECT_EQ(error_of(no_original)["message"], "no image gone.png");
}

TEST_F(ServerTest, AGraphMayNameOnlyFilesInsideItsFolders) {
  start();
  std::ofstream(dir / "outside.png") << "x";
  for (const std::string& name : std::vector<std::string>{"../outside.png", (dir / "outside.png").string()}) {
    Response r = post("/prompt", {{"prompt", {{"1", {{"class_type", "LoadImage"}, {"inputs", {{"image", name}}}}},
                                              {"2", {{"class_type", "SaveImage"}, {"inputs", {{"images", {"1", 0}}}}}}}}});
    EXPECT_EQ(r.status, 400) << name;
    EXPECT_EQ(r.as_json()["node_errors"]["1"]["errors"].back()["type"], "value_not_in_list") << r.body;
  }
}

TEST_F(ServerTest, ASlowClientIsCutOffAndOthersAreServed) {
  options.header_timeout = std::chrono::milliseconds(300);
  start();
  net::io_context ioc;
  tcp::socket slow(ioc);
  slow.connect({net::ip::make_address("127.0.0.1"), port});
  set_timeout(slow, 5000);
  net::write(slow, net::buffer(std::string("GET /prompt HTTP/1.1\r\nHost: 127")));
  EXPECT_EQ(get("/prompt").status, 200) << "another client is served meanwhile";
  const auto start_time = std::chrono::steady_clock::now();
  char byte;
  beast::error_code ec;
  slow.read_some(net::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, std::chrono::seconds(3));
}

TEST_F(ServerTest, StaticFilesAreServedFromTheFrontEndRoot) {
  options.front_end_root = dir / "web";
  fs::create_directories(options.front_end_root / "assets");
  std::ofstream(options.front_end_root / "index.html") << "<html>cozy</html>";
  std::ofstream(options.front_end_root / "assets" / "app.js") << "let a = 1;";
  fs::create_directories(options.front_end_root / "extensions" / "x");
  std::ofstream(options.front_end_root / "extensions" / "x" / "e.js") << "";
  start();
  Response index = get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<html>cozy</html>");
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(get("/assets/app.js").content_type, "application/javascript; charset=utf-8");
  EXPECT_EQ(get("/assets/../../secret").status, 400);
  EXPECT_EQ(get("/extensions").as_json(), json::array({"/extensions/x/e.js"}));
}

// An input the node type does not declare is ignored, as ComfyUI ignores it.
TEST_F(ServerTest, AnUnknownInputIsIgnoredAsComfyUIIgnoresIt) {
  start();
  json graph = kConstGraph;
  graph["1"]["inputs"]["upload"] = "image";
  json item = run_prompt(graph);
  EXPECT_EQ(item["status"]["status_str"], "success") << item.dump();
}

// What ComfyUI's frontend keeps on the server: settings and the user's files
// (workflows saved from the menu), under <user_dir>/default, across a restart.
TEST_F(ServerTest, SettingsAndUserFilesAreKeptAcrossARestart) {
  start();
  EXPECT_EQ(get("/api/users").as_json(), (json{{"storage", "server"}, {"migrated", true}}));
  Response create = post("/api/users", {{"username", "ann"}});
  EXPECT_EQ(create.status, 400);
  EXPECT_EQ(create.as_json()["error"]["message"],
            "Cozy serves one user (\"default\"); there are no others to create");
  EXPECT_EQ(get("/api/settings").as_json(), json::object());
  EXPECT_EQ(post("/api/settings", {{"Comfy.ColorPalette", "light"}, {"Comfy.Locale", "en"}}).status, 200);
  EXPECT_EQ(request(http::verb::post, "/api/settings/Comfy.TutorialCompleted", "true").status, 200);
  EXPECT_EQ(get("/api/settings/Comfy.ColorPalette").as_json(), "light");
  EXPECT_EQ(get("/api/settings/Unknown.Key").as_json(), nullptr);
  EXPECT_EQ(post("/api/settings", json::array()).status, 400);

  // The folders the frontend lists at start exist (no 404 on a first visit).
  EXPECT_EQ(get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true").as_json(), json::array());
  const std::string workflow = R"({"nodes": [], "links": [], "version": 0.4})";
  Response saved = request(http::verb::post, "/api/userdata/workflows%2Fmy%20graph.json?overwrite=false&full_info=true",
                           workflow);
  ASSERT_EQ(saved.status, 200) << saved.body;
  EXPECT_EQ(saved.as_json()["path"], "workflows/my graph.json");
  EXPECT_EQ(saved.as_json()["size"], workflow.size());
  EXPECT_EQ(request(http::verb::post, "/api/userdata/workflows%2Fmy%20graph.json?overwrite=false", workflow).status, 409)
      << "not replaced without overwrite";
  EXPECT_EQ(request(http::verb::post, "/api/userdata/workflows%2Fsub%2Fb.json", "{}").as_json(), "workflows/sub/b.json");
  EXPECT_EQ(get("/api/userdata?dir=workflows&recurse=true").as_json(), json::array({"my graph.json", "sub/b.json"}));
  EXPECT_EQ(get("/api/userdata?dir=workflows").as_json(), json::array({"my graph.json"})) << "not recursive";
  EXPECT_EQ(get("/api/userdata?dir=workflows&recurse=true&split=true").as_json()[1],
            json::array({"sub/b.json", "sub", "b.json"}));
  EXPECT_EQ(get("/api/userdata?dir=nothing").status, 404);
  EXPECT_EQ(get("/api/userdata").status, 400);
  Response moved = request(http::verb::post, "/api/userdata/workflows%2Fsub%2Fb.json/move/workflows%2Fc.json", "");
  EXPECT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(moved.as_json(), "workflows/c.json");
  EXPECT_EQ(request(http::verb::post, "/api/userdata/workflows%2Fc.json/move/workflows%2Fmy%20graph.json", "").status,
            409);
  EXPECT_EQ(request(http::verb::delete_, "/api/userdata/workflows%2Fc.json").status, 204);
  EXPECT_EQ(get("/api/userdata/workflows%2Fc.json").status, 404);
  // Confined to the user's folder.
  EXPECT_EQ(request(http::verb::post, "/api/userdata/..%2F..%2Fescape.json", "{}").status, 403);
  EXPECT_EQ(get("/api/userdata/..%2Fcozy.db").status, 403);
  EXPECT_FALSE(fs::exists(dir / "escape.json"));

  server->stop();
  server.reset();
  options.port = 0;
  start();
  Response again = get("/api/userdata/workflows%2Fmy%20graph.json");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, workflow);
  EXPECT_EQ(get("/api/settings").as_json(),
            (json{{"Comfy.ColorPalette", "light"}, {"Comfy.Locale", "en"}, {"Comfy.TutorialCompleted", true}}));
  EXPECT_TRUE(fs::exists(options.user_dir / "default" / "comfy.settings.json"));
}

// A web extension's modules are listed and served under /extensions/NAME/,
// its workflow templates under /workflow_templates; i18n and the rest of
// what the frontend asks for at start answer.
TEST_F(ServerTest, WebExtensionsAndTheirTemplatesAreServed) {
  const fs::path web = dir / "web_ext";
  fs::create_directories(web / "templates");
  std::ofstream(web / "main.js") << "export {};";
  std::ofstream(web / "templates" / "loop.json") << R"({"nodes": []})";
  std::ofstream(web / "templates" / "loop.jpg") << "jpeg";
  options.web_extensions["mine"] = web;
  start();
  EXPECT_EQ(get("/api/extensions").as_json(), json::array({"/extensions/mine/main.js"}));
  Response module = get("/extensions/mine/main.js");
  EXPECT_EQ(module.status, 200);
  EXPECT_EQ(module.content_type, "application/javascript; charset=utf-8");
  EXPECT_EQ(get("/extensions/mine/../../secret").status, 400);
  EXPECT_EQ(get("/api/workflow_templates").as_json(), (json{{"mine", {"loop"}}}));
  EXPECT_EQ(get("/api/workflow_templates/mine/loop.json").body, R"({"nodes": []})");
  EXPECT_EQ(get("/api/workflow_templates/mine/loop.jpg").content_type, "image/jpeg");
  EXPECT_EQ(get("/api/workflow_templates/other/loop.json").status, 404);
  EXPECT_EQ(get("/api/i18n").as_json(), json::object());
  EXPECT_EQ(get("/api/global_subgraphs").as_json(), json::object());
  EXPECT_EQ(get("/api/experiment/models").as_json(), json::array());
}

}  // namespace
}  // namespace cozy::server
