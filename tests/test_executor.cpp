#include "test_nodes.hpp"

#include <cozy/host/validate.hpp>

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <thread>

namespace cozy::host {
namespace {

using testing::recorder;

Graph graph_of(const std::string& text, const Registry& registry) {
  ParseResult parsed = parse_graph(text);
  EXPECT_TRUE(parsed.errors.empty()) << parsed.errors.front().to_string();
  std::vector<Issue> errors = validate(*parsed.graph, registry);
  EXPECT_TRUE(errors.empty()) << errors.front().to_string();
  return *parsed.graph;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override { recorder().reset(); }
  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
};

TEST_F(ExecutorTest, RunsProducersBeforeConsumersAndOnlyWhatOutputsNeed) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Const", "inputs": {"value": 2}},
    "2": {"class_type": "Const", "inputs": {"value": 3}},
    "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
    "4": {"class_type": "Add", "inputs": {"a": ["3", 0], "b": ["1", 0]}},
    "5": {"class_type": "Sink", "inputs": {"value": ["4", 0]}},
    "6": {"class_type": "Const", "inputs": {"value": 9}},
    "7": {"class_type": "Add", "inputs": {"a": ["6", 0]}}})",
                     *registry);
  for (int jobs : {1, 2}) {
    recorder().reset();
    options.jobs = jobs;
    options.use_cache = false;
    RunReport report = executor.run(g, options);
    ASSERT_TRUE(report.success);
    EXPECT_EQ(report.executed, 5u);
    EXPECT_EQ(report.outputs.at("5").at(0).as_int(), 7);
    auto& rec = recorder();
    EXPECT_LT(rec.position("run:1"), rec.position("run:3"));
    EXPECT_LT(rec.position("run:2"), rec.position("run:3"));
    EXPECT_LT(rec.position("run:3"), rec.position("run:4"));
    EXPECT_LT(rec.position("run:4"), rec.position("run:5"));
    // 6 and 7 feed no output node: they never run.
    EXPECT_EQ(rec.calls.count("6"), 0u);
    EXPECT_EQ(rec.calls.count("7"), 0u);
  }
}

TEST_F(ExecutorTest, IndependentBranchesOverlapWithTwoJobs) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Sleep", "inputs": {"ms": 300}},
    "2": {"class_type": "Sleep", "inputs": {"ms": 300}},
    "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}})",
                     *registry);
  options.use_cache = false;
  options.jobs = 2;
  RunReport report = executor.run(g, options);
  ASSERT_TRUE(report.success);
  auto a = recorder().intervals.at("1"), b = recorder().intervals.at("2");
  EXPECT_LT(a.first, b.second) << "branch 1 started after branch 2 ended";
  EXPECT_LT(b.first, a.second) << "branch 2 started after branch 1 ended";

  recorder().reset();
  options.jobs = 1;
  report = executor.run(g, options);
  ASSERT_TRUE(report.success);
  a = recorder().intervals.at("1"), b = recorder().intervals.at("2");
  EXPECT_TRUE(a.second <= b.first || b.second <= a.first) << "one job ran two nodes at once";
}

TEST_F(ExecutorTest, DefaultParallelismFollowsTheGraphWidth) {
  Graph chain = graph_of(R"({"1": {"class_type": "Const"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                         *registry);
  RunReport report = executor.run(chain, options);
  EXPECT_EQ(report.jobs, 1);
  EXPECT_EQ(report.threads, resolve_parallelism(1, 0).second);
  options.jobs = 3;
  options.threads = 2;
  report = executor.run(chain, options);
  EXPECT_EQ(report.jobs, 3);
  EXPECT_EQ(report.threads, 2);
}

TEST_F(ExecutorTest, ReleasesAValueAfterItsLastConsumer) {
  Graph g = graph_of(R"({
    "1": {"class_type": "MakeTracked"},
    "2": {"class_type": "Pass", "inputs": {"in": ["1", 0]}},
    "3": {"class_type": "Const", "inputs": {"value": 1}},
    "4": {"class_type": "Add", "inputs": {"a": ["3", 0]}},
    "5": {"class_type": "Sink", "inputs": {"value": ["4", 0]}},
    "6": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}})",
                     *registry);
  options.use_cache = false;
  options.jobs = 1;
  {
    RunReport report = executor.run(g, options);
    ASSERT_TRUE(report.success);
    // The object goes on to Sink 6, whose output is kept in the report, so
    // only the report frees it.
    EXPECT_EQ(recorder().position("freed:1"), SIZE_MAX);
  }
  EXPECT_NE(recorder().position("freed:1"), SIZE_MAX);

  // Without a consumer that keeps it: freed once its last reader (11) has
  // run, before the nodes after it, while the run is still going on.
  recorder().reset();
  Graph g2 = graph_of(R"({
    "1": {"class_type": "MakeTracked"},
    "2": {"class_type": "Pass", "inputs": {"in": ["1", 0]}},
    "10": {"class_type": "Drop", "inputs": {"in": ["2", 0]}},
    "11": {"class_type": "Drop", "inputs": {"in": ["2", 0]}},
    "12": {"class_type": "Add", "inputs": {"a": ["10", 0], "b": ["11", 0]}},
    "13": {"class_type": "Pass", "inputs": {"in": ["12", 0]}},
    "14": {"class_type": "Sink", "inputs": {"value": ["13", 0]}}})",
                      *registry);
  RunReport report = executor.run(g2, options);
  ASSERT_TRUE(report.success);
  auto& rec = recorder();
  std::size_t freed = rec.position("freed:1");
  ASSERT_NE(freed, SIZE_MAX) << "the object outlived its last consumer";
  EXPECT_GT(freed, rec.position("run:10"));
  EXPECT_GT(freed, rec.position("run:11"));
  EXPECT_LT(freed, rec.position("run:12"));
  EXPECT_LT(freed, rec.position("run:14"));
}

TEST_F(ExecutorTest, CacheKeepsValuesUntilCleared) {
  Graph g = graph_of(R"({
    "1": {"class_type": "MakeTracked"},
    "2": {"class_type": "Pass", "inputs": {"in": ["1", 0]}},
    "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}})",
                     *registry);
  executor.run(g, options);
  EXPECT_EQ(recorder().position("freed:1"), SIZE_MAX);
  EXPECT_EQ(executor.cache_size(), 3u);
  executor.clear_cache();
  EXPECT_NE(recorder().position("freed:1"), SIZE_MAX);
}

TEST_F(ExecutorTest, ChangingOneInputRerunsOnlyThatNodeAndItsDescendants) {
  const char* text = R"({
    "1": {"class_type": "Const", "inputs": {"value": 1}},
    "2": {"class_type": "Const", "inputs": {"value": 2}},
    "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
    "5": {"class_type": "Const", "inputs": {"value": 5}},
    "6": {"class_type": "Add", "inputs": {"a": ["5", 0], "b": ["1", 0]}},
    "7": {"class_type": "Sink", "inputs": {"value": ["6", 0]}}})";
  Graph g = graph_of(text, *registry);
  CollectingSink events;
  options.events = &events;
  RunReport first = executor.run(g, options);
  ASSERT_TRUE(first.success);
  EXPECT_EQ(first.executed, 7u);

  recorder().reset();
  RunReport second = executor.run(g, options);
  ASSERT_TRUE(second.success);
  EXPECT_EQ(second.executed, 0u);
  EXPECT_TRUE(recorder().calls.empty());
  EXPECT_EQ(second.outputs.at("4").at(0).as_int(), 3);  // outputs of cached output nodes are there too

  recorder().reset();
  std::string error = apply_override(g, "2.value=10");
  ASSERT_EQ(error, "");
  RunReport third = executor.run(g, options);
  ASSERT_TRUE(third.success);
  EXPECT_EQ(third.outputs.at("4").at(0).as_int(), 11);
  std::map<std::string, int> expected = {{"2", 1}, {"3", 1}, {"4", 1}};
  EXPECT_EQ(recorder().calls, expected);
  std::vector<std::string> cached = third.cached;
  std::sort(cached.begin(), cached.end());
  EXPECT_EQ(cached, (std::vector<std::string>{"1", "7"}));

  // execution_cached names the nodes served from the cache, as ComfyUI does.
  bool saw_cached = false;
  for (const auto& e : events.events())
    if (e.type == "execution_cached" && e.data["nodes"].size() == 2) saw_cached = true;
  EXPECT_TRUE(saw_cached);
}

TEST_F(ExecutorTest, ImpureNodesAndTheirDescendantsAlwaysRerun) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Impure", "inputs": {"value": 1}},
    "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
    "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
    "4": {"class_type": "Const", "inputs": {"value": 1}},
    "5": {"class_type": "Sink", "inputs": {"value": ["4", 0]}}})",
                     *registry);
  executor.run(g, options);
  recorder().reset();
  RunReport again = executor.run(g, options);
  std::map<std::string, int> expected = {{"1", 1}, {"2", 1}, {"3", 1}};
  EXPECT_EQ(recorder().calls, expected);
  EXPECT_EQ(again.executed, 3u);
}

TEST_F(ExecutorTest, AFailureSkipsDependentsAndIndependentBranchesFinish) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Fail"},
    "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
    "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
    "4": {"class_type": "Const", "inputs": {"value": 4}},
    "5": {"class_type": "Sink", "inputs": {"value": ["4", 0]}}})",
                     *registry);
  for (int jobs : {1, 2}) {
    recorder().reset();
    options.jobs = jobs;
    CollectingSink events;
    options.events = &events;
    RunReport report = executor.run(g, options);
    EXPECT_FALSE(report.success);
    ASSERT_EQ(report.failures.size(), 1u);
    EXPECT_EQ(report.failures[0].node_id, "1");
    EXPECT_EQ(report.failures[0].class_type, "Fail");
    EXPECT_EQ(report.failures[0].message, "boom");
    std::vector<std::string> skipped = report.skipped;
    std::sort(skipped.begin(), skipped.end());
    EXPECT_EQ(skipped, (std::vector<std::string>{"2", "3"}));
    EXPECT_EQ(report.outputs.count("5"), 1u);
    EXPECT_EQ(recorder().calls.count("2"), 0u);
    bool error_event = false;
    for (const auto& e : events.events())
      if (e.type == "execution_error" && e.data["node_id"] == "1" && e.data["exception_message"] == "boom")
        error_event = true;
    EXPECT_TRUE(error_event);
    executor.clear_cache();
  }
}

TEST_F(ExecutorTest, AFailedNodeIsNotCached) {
  Graph g = graph_of(R"({"1": {"class_type": "Fail"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  executor.run(g, options);
  executor.run(g, options);
  EXPECT_EQ(recorder().calls["1"], 2);
}

TEST_F(ExecutorTest, WrongNumberOfOutputsIsAFailure) {
  Graph g = graph_of(R"({"1": {"class_type": "WrongArity"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].message, "returned 2 outputs, but declares 1");
}

TEST_F(ExecutorTest, CancellationStopsTheRunAndSkipsTheRest) {
  options.cancel = testing::token_to_cancel() = std::make_shared<CancelToken>();
  Graph g = graph_of(R"({
    "1": {"class_type": "Const", "inputs": {"value": 1}},
    "2": {"class_type": "Cancel", "inputs": {"in": ["1", 0]}},
    "3": {"class_type": "Add", "inputs": {"a": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.jobs = 1;
  RunReport report = executor.run(g, options);
  EXPECT_TRUE(report.interrupted);
  EXPECT_FALSE(report.success);
  EXPECT_TRUE(report.failures.empty()) << "a cancelled node is not a failure";
  EXPECT_EQ(recorder().calls.count("3"), 0u);
  auto all = events.events();
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all[all.size() - 2].type, "execution_interrupted");
  EXPECT_EQ(all[all.size() - 2].data["node_id"], "2");
  EXPECT_EQ(all.back().type, "executing");
  EXPECT_TRUE(all.back().data["node"].is_null());
  // A run with a fresh token starts afresh; the cancelled token stays cancelled.
  Graph ok = graph_of(R"({"1": {"class_type": "Const"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                      *registry);
  EXPECT_FALSE(executor.run(ok, options).success) << "the cancelled token stops this run before it starts";
  options.cancel = std::make_shared<CancelToken>();
  EXPECT_TRUE(executor.run(ok, options).success);
}

TEST_F(ExecutorTest, EventsFollowComfyUINames) {
  Graph g = graph_of(R"({"1": {"class_type": "Progress"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.prompt_id = "p1";
  executor.run(g, options);
  std::vector<std::string> types;
  for (const auto& e : events.events()) {
    types.push_back(e.type);
    EXPECT_EQ(e.data["prompt_id"], "p1");
  }
  EXPECT_EQ(types, (std::vector<std::string>{"execution_start", "executing", "progress", "progress", "progress",
                                             "executed", "executing", "executed", "execution_success", "executing"}));
  EXPECT_TRUE(events.events().back().data["node"].is_null());
  EXPECT_EQ(events.events()[2].data["max"], 3);
  EXPECT_EQ(events.events()[2].data["node"], "1");
}

TEST_F(ExecutorTest, LiteralsDefaultsAndListsReachTheNode) {
  Graph g = graph_of(R"({"1": {"class_type": "Echo", "inputs": {"value": {"__value__": [1, "two", 3.5]}, "number": 2}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_TRUE(report.success);
  const Outputs& out = report.outputs.at("1");
  const List& list = out[0].as_list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].as_int(), 1);
  EXPECT_EQ(list[1].as_string(), "two");
  EXPECT_DOUBLE_EQ(list[2].as_float(), 3.5);
  EXPECT_TRUE(out[1].is_float()) << "an INT literal given to a FLOAT input arrives as FLOAT";
  EXPECT_DOUBLE_EQ(out[1].as_float(), 2.0);
  EXPECT_EQ(out[2].as_string(), "default");
}

TEST_F(ExecutorTest, PlanRefusesAnInvalidGraph) {
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "Nope"}})");
  EXPECT_THROW(executor.plan(*parsed.graph), Error);
}

TEST(ProgressBar, DrawsNodesProgressAndErrors) {
  std::ostringstream out;
  ProgressBarSink bar(out);
  bar.emit({"execution_start", {{"nodes", 2}}});
  bar.emit({"executing", {{"node", "1"}, {"display_node", "1"}, {"title", "Load"}}});
  bar.emit({"executed", {{"node", "1"}}});
  bar.emit({"executing", {{"node", "2"}, {"display_node", "2"}, {"title", "Train"}}});
  bar.emit({"progress", {{"node", "2"}, {"value", 1}, {"max", 2}}});
  bar.emit({"executed", {{"node", "2"}}});
  bar.emit({"execution_success", nlohmann::json::object()});
  bar.emit({"executing", {{"node", nullptr}}});
  std::string text = out.str();
  EXPECT_NE(text.find("[########################] 2/2 nodes  done\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[..."), std::string::npos) << "the first draw shows an empty bar: " << text;
  EXPECT_EQ(text.substr(text.size() - 1), "\n") << "nothing after the terminal event";
}

// The terminal execution_error ends the bar; the caller prints every failure.
TEST(ProgressBar, AnErrorEndsTheBarAsFailed) {
  std::ostringstream out;
  ProgressBarSink bar(out);
  bar.emit({"execution_start", {{"nodes", 2}}});
  bar.emit({"executing", {{"node", "1"}, {"display_node", "1"}, {"title", "Load"}}});
  bar.emit({"executed", {{"node", "1"}}});
  bar.emit({"execution_error", {{"node_id", "2"}, {"node_type", "Train"}, {"exception_message", "boom"}}});
  bar.emit({"executing", {{"node", nullptr}}});
  std::string text = out.str();
  EXPECT_NE(text.find("] 1/2 nodes  failed\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("boom"), std::string::npos) << text;
}

TEST(JsonLines, OneObjectPerEvent) {
  std::ostringstream out;
  JsonLinesSink sink(out);
  sink.emit({"executing", {{"node", "3"}}});
  EXPECT_EQ(out.str(), "{\"data\":{\"node\":\"3\"},\"type\":\"executing\"}\n");
}

TEST(ValueTest, AccessorsNameWhatWasExpected) {
  Value v(std::int64_t{3});
  EXPECT_EQ(v.as_int(), 3);
  EXPECT_DOUBLE_EQ(v.as_float(), 3.0);
  try {
    (void)v.as_string();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "expected STRING, got INT");
  }
  Value object(std::make_shared<testing::Tracked>("x"));
  struct Other : Object {
    std::string type_name() const override { return "OTHER"; }
  };
  try {
    (void)object.as<Other>();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "object of type TRACKED does not have the expected interface");
  }
}


// ------------------------------------------------ the host as a service

std::vector<std::string> types_of(const std::vector<Event>& events) {
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e.type);
  return types;
}

TEST_F(ExecutorTest, AFailureEndsTheRunWithOneTerminalEventAfterEveryBranch) {
  // Node 1 fails at once; the other branch (2 -> 4) is still running then.
  Graph g = graph_of(R"({
    "1": {"class_type": "Fail"},
    "3": {"class_type": "Sink", "inputs": {"value": ["1", 0]}},
    "2": {"class_type": "Sleep", "inputs": {"ms": 200}},
    "4": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.jobs = 2;
  options.prompt_id = "p";
  RunReport report = executor.run(g, options);
  EXPECT_FALSE(report.success);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].exception_type, "cozy::Error");
  std::vector<Event> all = events.events();
  std::vector<std::string> types = types_of(all);
  const auto terminal = std::count_if(types.begin(), types.end(), [](const std::string& t) {
    return t == "execution_success" || t == "execution_error" || t == "execution_interrupted";
  });
  EXPECT_EQ(terminal, 1) << "exactly one terminal event";
  ASSERT_GE(all.size(), 2u);
  const Event& error = all[all.size() - 2];
  EXPECT_EQ(error.type, "execution_error");
  EXPECT_EQ(error.data["node_id"], "1");
  EXPECT_EQ(error.data["node_type"], "Fail");
  EXPECT_EQ(error.data["exception_message"], "boom");
  EXPECT_EQ(error.data["exception_type"], "cozy::Error");
  EXPECT_TRUE(error.data["traceback"].is_array());
  EXPECT_EQ(error.data["executed"], (nlohmann::json{"2", "4"}));
  EXPECT_EQ(all.back().type, "executing");
  EXPECT_TRUE(all.back().data["node"].is_null());
  EXPECT_EQ(all.back().data["prompt_id"], "p");
  // Node 4 finished before the terminal event.
  std::size_t executed_4 = 0;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (all[i].type == "executed" && all[i].data["node"] == "4") executed_4 = i;
  EXPECT_GT(executed_4, 0u);
  EXPECT_LT(executed_4, all.size() - 2);
}

TEST_F(ExecutorTest, EveryFailureIsReportedAndTheFirstIsTheEvent) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Fail"},
    "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}},
    "3": {"class_type": "Sleep", "inputs": {"ms": 50}},
    "4": {"class_type": "Fail", "inputs": {"in": ["3", 0]}},
    "5": {"class_type": "Sink", "inputs": {"value": ["4", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.jobs = 2;
  RunReport report = executor.run(g, options);
  ASSERT_EQ(report.failures.size(), 2u);
  EXPECT_EQ(report.failures[0].node_id, "1");
  EXPECT_EQ(report.failures[1].node_id, "4");
  std::vector<Event> all = events.events();
  const Event& error = all[all.size() - 2];
  EXPECT_EQ(error.data["node_id"], "1");
  EXPECT_EQ(error.data["errors"].size(), 2u);
  // The failed node's inputs, as ComfyUI's current_inputs: node 4 had one.
  EXPECT_EQ(report.failures[1].inputs["in"]["value"], 50);
  EXPECT_EQ(report.failures[1].inputs["in"]["from"], (nlohmann::json{"3", 0}));
}

TEST_F(ExecutorTest, LibTorchErrorsKeepTheirTypeAndLoseTheirBacktrace) {
  Graph g = graph_of(R"({"1": {"class_type": "TorchFail"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].exception_type, "c10::Error");
  EXPECT_NE(report.failures[0].message.find("the shapes do not match"), std::string::npos);
  EXPECT_EQ(report.failures[0].message.find("Exception raised from"), std::string::npos) << report.failures[0].message;
}

TEST_F(ExecutorTest, ACancelBeforeTheRunStartsIsNotLost) {
  Graph g = graph_of(R"({"1": {"class_type": "Const"}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.cancel = std::make_shared<CancelToken>();
  options.cancel->cancel();  // e.g. an /interrupt while the prompt waited in the queue
  RunReport report = executor.run(g, options);
  EXPECT_TRUE(report.interrupted);
  EXPECT_FALSE(report.success);
  EXPECT_EQ(report.executed, 0u);
  EXPECT_TRUE(recorder().calls.empty());
  EXPECT_EQ(types_of(events.events()),
            (std::vector<std::string>{"execution_start", "execution_interrupted", "executing"}));
}

TEST_F(ExecutorTest, EachRunHasItsOwnCancellation) {
  // Two executors run at once; cancelling one run's token leaves the other.
  Executor other(registry);
  Graph g = graph_of(R"({"1": {"class_type": "Wait", "inputs": {"ms": 400}},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  RunOptions a = options, b = options;
  a.cancel = std::make_shared<CancelToken>();
  b.cancel = std::make_shared<CancelToken>();
  a.use_cache = b.use_cache = false;
  RunReport report_a, report_b;
  std::thread run_a([&] { report_a = executor.run(g, a); });
  std::thread run_b([&] { report_b = other.run(g, b); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  a.cancel->cancel();
  run_a.join();
  run_b.join();
  EXPECT_TRUE(report_a.interrupted);
  EXPECT_FALSE(report_b.interrupted);
  EXPECT_TRUE(report_b.success);
  EXPECT_LT(report_a.seconds, 0.35) << "the cancelled run stopped early";
}

TEST_F(ExecutorTest, RunsOfOneExecutorFromTwoThreadsTakeTurns) {
  Graph g = graph_of(R"({"1": {"class_type": "Sleep", "inputs": {"ms": 150}},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  options.use_cache = false;
  RunReport first, second;
  auto start = std::chrono::steady_clock::now();
  std::thread t1([&] { first = executor.run(g, options); });
  std::thread t2([&] { second = executor.run(g, options); });
  t1.join();
  t2.join();
  EXPECT_TRUE(first.success);
  EXPECT_TRUE(second.success);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300)) << "the two runs overlapped";
}

TEST_F(ExecutorTest, WorkerThreadsLiveAsLongAsTheExecutor) {
  Graph g = graph_of(R"({"1": {"class_type": "Wait", "inputs": {"ms": 30}},
                         "2": {"class_type": "Wait", "inputs": {"ms": 30}},
                         "3": {"class_type": "Wait", "inputs": {"ms": 30}},
                         "4": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
                         "5": {"class_type": "Add", "inputs": {"a": ["4", 0], "b": ["3", 0]}},
                         "6": {"class_type": "Sink", "inputs": {"value": ["5", 0]}}})",
                     *registry);
  options.use_cache = false;
  options.jobs = 3;
  std::set<std::thread::id> seen;
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(executor.run(g, options).success);
    EXPECT_EQ(executor.worker_threads(), 2u) << "jobs - 1 helpers, made once";
    for (auto id : recorder().threads) seen.insert(id);
  }
  // Five runs of three parallel nodes: at most the caller and two helpers ran them.
  EXPECT_LE(seen.size(), 3u);
}

TEST_F(ExecutorTest, WithoutASinkNothingIsWritten) {
  Graph g = graph_of(R"({"1": {"class_type": "Log", "inputs": {"message": "careful"}},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  RunReport report = executor.run(g, options);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
  EXPECT_TRUE(report.success);
  // With a sink, the log is an event.
  CollectingSink events;
  options.events = &events;
  options.use_cache = false;
  executor.run(g, options);
  bool logged = false;
  for (const auto& e : events.events())
    logged = logged || (e.type == "log" && e.data["message"] == "careful" && e.data["level"] == "warning");
  EXPECT_TRUE(logged);
}

TEST_F(ExecutorTest, AnOutputThatDoesNotFitItsDeclarationFailsItsOwnNode) {
  Graph g = graph_of(R"({"1": {"class_type": "LiesAboutItsOutput"},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].node_id, "1") << "the node that returned it is named, not the next one";
  EXPECT_EQ(report.failures[0].message,
            "output 0 'IMAGE' is declared IMAGE (a tensor) but is a value of type INT");
  EXPECT_EQ(report.skipped, std::vector<std::string>{"2"});
}

TEST_F(ExecutorTest, AShownTextIsInTheExecutedEventAndTheReport) {
  Graph g = graph_of(R"({"1": {"class_type": "Const", "inputs": {"value": 5}},
                         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  RunReport report = executor.run(g, options);
  ASSERT_TRUE(report.success);
  EXPECT_EQ(report.ui.at("2")["text"], nlohmann::json::array({"shown: 5"}));
  bool seen = false;
  for (const auto& e : events.events())
    if (e.type == "executed" && e.data["node"] == "2") seen = e.data["output"]["text"][0] == "shown: 5";
  EXPECT_TRUE(seen);
}

TEST_F(ExecutorTest, ScalarOutputsCarryTheirValueInEvents) {
  Graph g = graph_of(R"({"1": {"class_type": "Const", "inputs": {"value": 42}},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  executor.run(g, options);
  bool seen = false;
  for (const auto& e : events.events())
    if (e.type == "executed" && e.data["node"] == "1") {
      EXPECT_EQ(e.data["values"][0]["value"], 42);
      EXPECT_EQ(e.data["values"][0]["type"], "INT");
      seen = true;
    }
  EXPECT_TRUE(seen);
}

// ComfyUI's list execution: a list output's elements travel one by one, a
// node runs once per element of its longest input (a shorter list repeats
// its last element), and a node that takes lists runs once on them.
TEST_F(ExecutorTest, ANodeRunsOncePerElementOfAList) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Range", "inputs": {"count": 3, "start": 10}},
    "2": {"class_type": "Const", "inputs": {"value": 1}},
    "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
    "5": {"class_type": "Total", "inputs": {"values": ["3", 0], "times": 2}},
    "6": {"class_type": "Sink", "inputs": {"value": ["5", 0]}},
    "7": {"class_type": "Sink", "inputs": {"value": ["5", 1]}},
    "8": {"class_type": "Show", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  CollectingSink events;
  options.events = &events;
  options.use_cache = false;
  RunReport report = executor.run(g, options);
  ASSERT_TRUE(report.success) << (report.failures.empty() ? "" : report.failures.front().message);
  EXPECT_EQ(recorder().calls["1"], 1);
  EXPECT_EQ(recorder().calls["3"], 3);  // 10+1, 11+1, 12+1; the Const's one value repeats
  EXPECT_EQ(recorder().calls["5"], 1);
  const List& sums = report.outputs.at("4").at(0).as_list();  // an output node that ran 3 times
  ASSERT_EQ(sums.size(), 3u);
  EXPECT_EQ(sums[0].as_int(), 11);
  EXPECT_EQ(sums[2].as_int(), 13);
  EXPECT_EQ(report.outputs.at("6").at(0).as_int(), 2 * (11 + 12 + 13));
  EXPECT_EQ(report.outputs.at("7").at(0).as_int(), 3);
  // The output node's texts from its three runs, in one executed event.
  EXPECT_EQ(report.ui.at("8")["text"], nlohmann::json({"shown: 10", "shown: 11", "shown: 12"}));
  int executed_3 = 0;
  for (const auto& e : events.events())
    if (e.type == "executed" && e.data["node"] == "3") {
      ++executed_3;
      EXPECT_EQ(e.data["values"][0]["kind"], "list");
      EXPECT_EQ(e.data["values"][0]["size"], 3);
    }
  EXPECT_EQ(executed_3, 1);
}

TEST_F(ExecutorTest, AnEmptyListRunsNothingDownstreamAndListsAreCached) {
  Graph g = graph_of(R"({
    "1": {"class_type": "Range", "inputs": {"count": 0}},
    "2": {"class_type": "Add", "inputs": {"a": ["1", 0]}},
    "3": {"class_type": "Total", "inputs": {"values": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 1]}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_TRUE(report.success);
  EXPECT_EQ(recorder().calls["2"], 0);  // no element, no run; the node still succeeded
  EXPECT_EQ(report.outputs.at("4").at(0).as_int(), 0);

  Graph h = graph_of(R"({
    "1": {"class_type": "Range", "inputs": {"count": 4}},
    "2": {"class_type": "Total", "inputs": {"values": ["1", 0]}},
    "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}})",
                     *registry);
  recorder().reset();
  report = executor.run(h, options);
  ASSERT_TRUE(report.success);
  EXPECT_EQ(report.outputs.at("3").at(0).as_int(), 0 + 1 + 2 + 3);
  recorder().reset();
  report = executor.run(h, options);  // the whole list comes from the cache
  ASSERT_TRUE(report.success);
  EXPECT_EQ(recorder().calls["1"], 0);
  EXPECT_EQ(report.outputs.at("3").at(0).as_int(), 6);
}

TEST_F(ExecutorTest, AListOutputThatIsNotAListFailsItsNode) {
  Graph g = graph_of(R"({"1": {"class_type": "NotAList", "inputs": {}},
                         "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})",
                     *registry);
  RunReport report = executor.run(g, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].node_id, "1");
  EXPECT_EQ(report.failures[0].message, "output 0 'INT' is declared a list of INT but is a value of type INT");
}

}  // namespace
}  // namespace cozy::host
