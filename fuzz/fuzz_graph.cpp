// libFuzzer target: any bytes through parse_graph, --set overrides and
// validate; an editor workflow (nodes, links) through its conversion first. A crash, a sanitizer report or a broken invariant is a finding;
// each one found is kept in fuzz/regressions/ and replayed by the tests.
#include <cozy/host/graph.hpp>
#include <cozy/host/validate.hpp>
#include <cozy/host/workflow.hpp>

#include <nlohmann/json.hpp>

#include "../tests/table_specs.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace {

// Node types shaped like the core plugin's, with every kind of input.
class FuzzSpecs : public cozy::host::TableSpecs {
 public:
  FuzzSpecs() {
    using cozy::InputSpec;
    namespace types = cozy::types;
    add("Int", {InputSpec::Int("value", 0).range(-1e15, 1e15)}, {{"INT", types::INT}});
    add("Float", {InputSpec::Float("value", 0.0)}, {{"FLOAT", types::FLOAT}});
    add("String", {InputSpec::String("value")}, {{"STRING", types::STRING}});
    add("Boolean", {InputSpec::Boolean("value", false)}, {{"BOOLEAN", types::BOOLEAN}});
    add("LoadImage", {InputSpec::String("image")}, {{"IMAGE", types::IMAGE}, {"MASK", types::MASK}});
    add("EmptyImage",
        {InputSpec::Int("width", 512).range(1, 16384), InputSpec::Int("height", 512).range(1, 16384),
         InputSpec::Int("batch_size", 1).range(1, 4096), InputSpec::Int("color", 0).range(0, 0xFFFFFF)},
        {{"IMAGE", types::IMAGE}});
    add("ImageGrid",
        {InputSpec::Link("images", types::IMAGE), InputSpec::Int("columns", 0).range(0, 1024),
         InputSpec::Float("background", 1.0).range(0, 1)},
        {{"IMAGE", types::IMAGE}});
    add("ImageBatch", {InputSpec::Link("image1", types::IMAGE), InputSpec::Link("image2", types::IMAGE)},
        {{"IMAGE", types::IMAGE}});
    add("Any", {InputSpec::Link("value", types::ANY).optional()}, {{"value", types::ANY}});
    add("SaveImage",
        {InputSpec::Link("images", types::IMAGE), InputSpec::String("filename_prefix", "cozy"),
         InputSpec::Choice("bit_depth", {"8", "16"})},
        {}, /*output=*/true);
  }

 private:
  void add(const char* type, std::vector<cozy::InputSpec> inputs, std::vector<cozy::OutputSpec> outputs,
           bool output = false) {
    cozy::NodeSpec spec;
    spec.class_type = type;
    spec.inputs = std::move(inputs);
    spec.outputs = std::move(outputs);
    spec.output_node = output;
    TableSpecs::add(std::move(spec));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const FuzzSpecs specs;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (!document.is_discarded() && cozy::host::is_ui_workflow(document)) {
    cozy::host::Conversion converted = cozy::host::convert_ui_workflow(document, specs);
    for (const auto& e : converted.errors)
      if (e.message.empty()) std::abort();
    cozy::host::ParseResult from_ui = cozy::host::parse_graph_json(converted.prompt);
    if (from_ui.graph) (void)cozy::host::validate(*from_ui.graph, specs);
    return 0;
  }
  cozy::host::ParseResult parsed = cozy::host::parse_graph(text);
  // Invariant: a graph, or at least one error, never both.
  if (parsed.graph.has_value() == !parsed.errors.empty()) std::abort();
  if (!parsed.graph) return 0;
  for (const auto& e : cozy::host::validate(*parsed.graph, specs)) {
    if (e.message.empty()) std::abort();
    (void)e.to_string();
  }
  // Overrides as the command line applies them, on the first node.
  if (!parsed.graph->nodes.empty()) {
    std::string id = parsed.graph->nodes.front().id;
    cozy::host::apply_override(*parsed.graph, id + ".value=" + std::string(text.substr(0, 16)));
    (void)cozy::host::validate(*parsed.graph, specs);
  }
  return 0;
}
