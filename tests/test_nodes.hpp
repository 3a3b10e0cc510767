// Node types compiled into the tests, to exercise the executor alone.
#pragma once

#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>

#include <c10/util/Exception.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cozy::testing {

/// What the test nodes saw, shared by all of them.
struct Recorder {
  using Clock = std::chrono::steady_clock;
  std::mutex mutex;
  std::map<std::string, int> calls;  // node id -> times run
  std::vector<std::string> events;   // "run:ID", "freed:ID"
  std::map<std::string, std::pair<Clock::time_point, Clock::time_point>> intervals;
  std::vector<std::thread::id> threads;  // the thread of every Wait call

  void note(const std::string& event) {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(event);
  }
  void called(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex);
    ++calls[id];
    events.push_back("run:" + id);
  }
  void reset() {
    std::lock_guard<std::mutex> lock(mutex);
    calls.clear();
    events.clear();
    intervals.clear();
    threads.clear();
  }
  std::size_t position(const std::string& event) {
    std::lock_guard<std::mutex> lock(mutex);
    for (std::size_t i = 0; i < events.size(); ++i)
      if (events[i] == event) return i;
    return SIZE_MAX;
  }
};

inline Recorder& recorder() {
  static Recorder r;
  return r;
}

/// An object that notes when it is destroyed.
struct Tracked : Object {
  explicit Tracked(std::string id) : id(std::move(id)) {}
  ~Tracked() override { recorder().note("freed:" + id); }
  std::string type_name() const override { return "TRACKED"; }
  std::string id;
};

/// The token the Cancel node cancels (the test hands the same one to the run).
inline std::shared_ptr<host::CancelToken>& token_to_cancel() {
  static std::shared_ptr<host::CancelToken> token;
  return token;
}

inline NodeDef make(const std::string& type, std::vector<InputSpec> inputs, std::vector<OutputSpec> outputs,
                    RunFunction run, bool output_node = false, bool pure = true) {
  NodeDef def;
  def.spec.class_type = type;
  def.spec.category = "test";
  def.spec.inputs = std::move(inputs);
  def.spec.outputs = std::move(outputs);
  def.spec.output_node = output_node;
  def.spec.pure = pure;
  def.run = std::move(run);
  return def;
}

/// A registry with the test node types:
///   Const(value) -> INT; Add(a, b?) -> INT; Sleep(ms, after?) -> INT;
///   Fail(in?) throws; Sink(value: *) output node, returns its input;
///   MakeTracked -> TRACKED; Pass(in: *) -> *; Drop(in: *) -> INT; Impure(value) -> INT;
///   Cancel(in?) cancels the run; WrongArity -> returns 2 values for 1 output;
///   Echo(value: *) output node, returns what it got (for literal checks);
///   Wait(ms, after?) -> INT waits, polling the cancellation, notes its thread;
///   TorchFail throws a c10::Error; Log(message) logs a warning -> INT;
///   LiesAboutItsOutput declares an IMAGE and returns an INT; Show(value)
///   output node, shows "shown: <value>".
inline std::shared_ptr<host::Registry> test_registry() {
  using namespace types;
  auto r = std::make_shared<host::Registry>();
  Recorder& rec = recorder();
  r->add(make("Const", {InputSpec::Int("value", 0)}, {{"INT", INT}}, [&rec](const Inputs& in, Context& ctx) -> Outputs {
    rec.called(ctx.node_id());
    return {in.integer("value")};
  }));
  r->add(make("Add", {InputSpec::Link("a", INT), InputSpec::Link("b", INT).optional()}, {{"INT", INT}},
              [&rec](const Inputs& in, Context& ctx) -> Outputs {
                rec.called(ctx.node_id());
                return {in.integer("a") + (in.has("b") ? in.integer("b") : 0)};
              }));
  r->add(make("Sleep", {InputSpec::Int("ms", 100).range(0, 10000), InputSpec::Link("after", INT).optional()},
              {{"INT", INT}}, [&rec](const Inputs& in, Context& ctx) -> Outputs {
                auto start = Recorder::Clock::now();
                std::this_thread::sleep_for(std::chrono::milliseconds(in.integer("ms")));
                rec.called(ctx.node_id());
                std::lock_guard<std::mutex> lock(rec.mutex);
                rec.intervals[ctx.node_id()] = {start, Recorder::Clock::now()};
                return {in.integer("ms")};
              }));
  r->add(make("Fail", {InputSpec::Link("in", INT).optional()}, {{"INT", INT}},
              [&rec](const Inputs&, Context& ctx) -> Outputs {
                rec.called(ctx.node_id());
                throw Error("boom");
              }));
  r->add(make("Sink", {InputSpec::Link("value", ANY)}, {{"value", ANY}},
              [&rec](const Inputs& in, Context& ctx) -> Outputs {
                rec.called(ctx.node_id());
                return {in["value"]};
              },
              /*output_node=*/true));
  r->add(make("MakeTracked", {}, {{"TRACKED", "TRACKED"}}, [&rec](const Inputs&, Context& ctx) -> Outputs {
    rec.called(ctx.node_id());
    return {std::make_shared<Tracked>(ctx.node_id())};
  }));
  r->add(make("Pass", {InputSpec::Link("in", ANY)}, {{"out", ANY}}, [&rec](const Inputs& in, Context& ctx) -> Outputs {
    rec.called(ctx.node_id());
    return {in["in"]};
  }));
  r->add(make("Drop", {InputSpec::Link("in", ANY)}, {{"INT", INT}}, [&rec](const Inputs&, Context& ctx) -> Outputs {
    rec.called(ctx.node_id());
    return {0};
  }));
  r->add(make("Impure", {InputSpec::Int("value", 0)}, {{"INT", INT}},
              [&rec](const Inputs& in, Context& ctx) -> Outputs {
                rec.called(ctx.node_id());
                return {in.integer("value")};
              },
              false, /*pure=*/false));
  r->add(make("Cancel", {InputSpec::Link("in", INT).optional()}, {{"INT", INT}},
              [&rec](const Inputs&, Context& ctx) -> Outputs {
                rec.called(ctx.node_id());
                token_to_cancel()->cancel();
                ctx.check_cancelled();
                return {0};
              }));
  r->add(make("WrongArity", {}, {{"INT", INT}}, [](const Inputs&, Context&) -> Outputs { return {1, 2}; }));
  r->add(make("Echo",
              {InputSpec::Link("value", ANY), InputSpec::Float("number", 0.5), InputSpec::String("text", "default")},
              {{"value", ANY}, {"number", FLOAT}, {"text", STRING}},
              [](const Inputs& in, Context&) -> Outputs { return {in["value"], in["number"], in["text"]}; },
              /*output_node=*/true));
  r->add(make("Wait", {InputSpec::Int("ms", 100).range(0, 60000), InputSpec::Link("after", INT).optional()},
              {{"INT", INT}}, [&rec](const Inputs& in, Context& ctx) -> Outputs {
                {
                  std::lock_guard<std::mutex> lock(rec.mutex);
                  rec.threads.push_back(std::this_thread::get_id());
                }
                const auto until = Recorder::Clock::now() + std::chrono::milliseconds(in.integer("ms"));
                while (Recorder::Clock::now() < until) {
                  ctx.check_cancelled();
                  std::this_thread::sleep_for(std::chrono::milliseconds(2));
                }
                rec.called(ctx.node_id());
                return {in.integer("ms")};
              }));
  r->add(make("TorchFail", {}, {{"INT", INT}}, [](const Inputs&, Context&) -> Outputs {
    TORCH_CHECK(false, "the shapes do not match");
    return {0};
  }));
  r->add(make("Log", {InputSpec::String("message", "hello")}, {{"INT", INT}},
              [](const Inputs& in, Context& ctx) -> Outputs {
                ctx.log(LogLevel::warning, in.string("message"));
                return {1};
              }));
  r->add(make("LiesAboutItsOutput", {}, {{"IMAGE", IMAGE}}, [](const Inputs&, Context&) -> Outputs { return {7}; }));
  r->add(make("Show", {InputSpec::Link("value", ANY)}, {}, [](const Inputs& in, Context& ctx) -> Outputs {
    ctx.show_text("shown: " + std::to_string(in.integer("value")));
    return {};
  }, /*output_node=*/true));
  r->add(make("Progress", {}, {{"INT", INT}}, [](const Inputs&, Context& ctx) -> Outputs {
    for (int i = 1; i <= 3; ++i) ctx.progress(i, 3);
    return {3};
  }));
  // Lists, as ComfyUI maps nodes over them: Range makes one (OUTPUT_IS_LIST),
  // Total takes whole lists (INPUT_IS_LIST), NotAList declares a list output
  // and returns a single value.
  NodeDef range = make("Range", {InputSpec::Int("count", 3).range(0, 100), InputSpec::Int("start", 0)},
                       {{"INT", INT, /*is_list=*/true}}, [&rec](const Inputs& in, Context& ctx) -> Outputs {
                         rec.called(ctx.node_id());
                         List items;
                         for (std::int64_t i = 0; i < in.integer("count"); ++i) items.emplace_back(in.integer("start") + i);
                         return {Value(std::move(items))};
                       });
  r->add(std::move(range));
  NodeDef total = make("Total", {InputSpec::Link("values", INT), InputSpec::Int("times", 1)}, {{"INT", INT}, {"count", INT}},
                       [&rec](const Inputs& in, Context& ctx) -> Outputs {
                         rec.called(ctx.node_id());
                         std::int64_t sum = 0;
                         for (const Value& v : in["values"].as_list()) sum += v.as_int();
                         const List& times = in["times"].as_list();  // a literal arrives as a list of one
                         return {sum * times.at(0).as_int(), static_cast<std::int64_t>(in["values"].as_list().size())};
                       });
  total.spec.input_is_list = true;
  r->add(std::move(total));
  r->add(make("NotAList", {}, {{"INT", INT, /*is_list=*/true}}, [](const Inputs&, Context&) -> Outputs { return {7}; }));
  return r;
}

}  // namespace cozy::testing
