// What the benches that run whole graphs share: a "Keep" output node that
// hands any value back to the bench, and running a graph that must succeed.
#pragma once

#include <cozy/host/executor.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>
#include <stdexcept>

namespace cozy::bench {

/// Registers "Keep": one input of any type, returned as its output (an output node).
inline void add_keep_node(host::Registry& registry) {
  NodeDef keep = NodeDef::named("Keep", "Keep", "bench", "Returns its input, so the bench can read it.");
  keep.spec.inputs = {InputSpec::Link("value", types::ANY)};
  keep.spec.outputs = {{"value", types::ANY}};
  keep.spec.output_node = true;
  keep.run = [](const Inputs& in, Context&) -> Outputs { return {in["value"]}; };
  registry.add(keep);
}

/// Validates and runs `graph`; an invalid graph or a failed node throws.
inline host::RunReport run_graph(host::Executor& executor, const host::Registry& registry, const nlohmann::json& graph,
                                 const host::RunOptions& options) {
  host::ParseResult parsed = host::parse_graph_json(graph);
  std::vector<host::Issue> errors = host::validate(*parsed.graph, registry);
  if (!errors.empty()) throw std::runtime_error(errors.front().to_string());
  host::RunReport report = executor.run(*parsed.graph, options);
  if (!report.failures.empty()) throw std::runtime_error(report.failures.front().message);
  return report;
}

}  // namespace cozy::bench
