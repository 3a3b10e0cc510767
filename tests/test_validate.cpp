#include <cozy/host/validate.hpp>

#include "table_specs.hpp"

#include <gtest/gtest.h>

#include <map>

namespace cozy::host {
namespace {

// A fixed table of specs: validation needs nothing else.
class Specs : public TableSpecs {
 public:
  Specs() {
    NodeSpec source;
    source.class_type = "Source";
    source.inputs = {InputSpec::Int("count", 4).range(1, 64), InputSpec::Float("scale", 1.0).range(0, 2),
                     InputSpec::Choice("mode", {"fast", "good"}), InputSpec::Boolean("flag", false),
                     InputSpec::String("name").help("no default given: empty string")};
    source.outputs = {{"IMAGE", types::IMAGE}, {"count", types::INT}};
    add(source);
    NodeSpec filter;
    filter.class_type = "Filter";
    filter.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Link("mask", types::MASK).optional(),
                     InputSpec::Link("anything", types::ANY).optional()};
    filter.outputs = {{"IMAGE", types::IMAGE}};
    add(filter);
    NodeSpec save;
    save.class_type = "Save";
    save.output_node = true;
    save.inputs = {InputSpec::Link("images", types::IMAGE), InputSpec::Int("required_int", 0)};
    save.inputs[1].default_value = Literal{};  // required, no default
    add(save);
    NodeSpec crop;
    crop.class_type = "Crop";
    crop.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Link("region", types::BOUNDING_BOX)};
    crop.outputs = {{"IMAGE", types::IMAGE}};
    add(crop);
    NodeSpec any;
    any.class_type = "AnyOut";
    any.outputs = {{"value", types::ANY}};
    add(any);
  }
};

std::vector<std::string> errors_of(const std::string& text) {
  ParseResult parsed = parse_graph(text);
  EXPECT_TRUE(parsed.errors.empty()) << parsed.errors[0].to_string();
  std::vector<std::string> out;
  if (!parsed.graph) return out;
  for (const auto& e : validate(*parsed.graph, Specs())) out.push_back(e.to_string());
  return out;
}

TEST(Validate, AValidGraphHasNoErrors) {
  EXPECT_EQ(errors_of(R"({
    "1": {"class_type": "Source", "inputs": {"count": 64, "scale": 0, "mode": "good", "flag": true, "name": "n"}},
    "2": {"class_type": "Filter", "inputs": {"image": ["1", 0], "anything": ["1", 1]}},
    "3": {"class_type": "Save", "inputs": {"images": ["2", 0], "required_int": -5}}})"),
            std::vector<std::string>{});
}

TEST(Validate, UnknownClassTypeSuggestsNearNames) {
  auto errors = errors_of(R"({"1": {"class_type": "Sourec"}, "2": {"class_type": "Zzzzzzzzzz"},
                              "3": {"class_type": "Save", "inputs": {"images": ["1", 0], "required_int": 1}}})");
  EXPECT_EQ(errors, (std::vector<std::string>{"node 1 (Sourec): unknown class_type 'Sourec'; did you mean: Source?",
                                              "node 2 (Zzzzzzzzzz): unknown class_type 'Zzzzzzzzzz'"}));
}

TEST(Validate, MissingRequiredInput) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Save"}})"),
            (std::vector<std::string>{"node 1 (Save), input 'images': missing required input of type IMAGE",
                                      "node 1 (Save), input 'required_int': missing required input of type INT"}));
}

TEST(Validate, UnknownInputNameListsTheValidOnes) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source", "inputs": {"cuont": 3}},
                          "2": {"class_type": "AnyOut", "inputs": {"x": 1}},
                          "3": {"class_type": "Save", "inputs": {"images": ["1", 0], "required_int": 1}}})"),
            (std::vector<std::string>{
                "node 1 (Source), input 'cuont': unknown input; valid inputs: count, scale, mode, flag, name",
                "node 2 (AnyOut), input 'x': unknown input; this node takes no inputs"}));
}

// The front doors drop them first, with a warning each, as ComfyUI ignores them.
TEST(Validate, UnknownInputsAreDroppedWithAWarning) {
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "Source", "inputs": {"cuont": 3, "count": 2}},
                                       "2": {"class_type": "Filter", "inputs": {"image": ["1", 0], "from": ["9", 0]}},
                                       "3": {"class_type": "Save", "inputs": {"images": ["2", 0], "required_int": 1}}})");
  ASSERT_TRUE(parsed.graph);
  std::vector<Issue> warnings = drop_unknown_inputs(*parsed.graph, Specs());
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].to_string(),
            "node 1 (Source), input 'cuont': unknown input, ignored; valid inputs: count, scale, mode, flag, name");
  EXPECT_EQ(warnings[0].type, "unknown_input");
  EXPECT_EQ(warnings[1].input, "from") << "a link to a missing node, on an unknown input, goes too";
  EXPECT_TRUE(validate(*parsed.graph, Specs()).empty());
  EXPECT_EQ(parsed.graph->nodes[0].inputs.size(), 1u);
}

TEST(Validate, LinksToMissingNodesAndOutputs) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source"},
                          "2": {"class_type": "Filter", "inputs": {"image": ["9", 0]}},
                          "3": {"class_type": "Save", "inputs": {"images": ["1", 2], "required_int": 1}}})"),
            (std::vector<std::string>{
                "node 2 (Filter), input 'image': links to node 9, which is not in the graph",
                "node 3 (Save), input 'images': links to output 2 of node 1 (Source), which has 2 outputs"}));
}

TEST(Validate, TypeMismatchOnAnEdgeButAnyMatchesAll) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source"},
                          "2": {"class_type": "Filter", "inputs": {"image": ["1", 1], "mask": ["1", 0]}},
                          "4": {"class_type": "AnyOut"},
                          "3": {"class_type": "Save", "inputs": {"images": ["4", 0], "required_int": 1}}})"),
            (std::vector<std::string>{
                "node 2 (Filter), input 'image': type mismatch: expects IMAGE, but output 1 of node 1 (Source) is INT",
                "node 2 (Filter), input 'mask': type mismatch: expects MASK, but output 0 of node 1 (Source) is IMAGE"}));
}

TEST(Validate, LiteralsOfTheWrongTypeOutOfRangeOrNotAChoice) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source", "inputs": {"count": 2.5, "scale": "big", "mode": "slow",
                                                                  "flag": 1, "name": 3}},
                          "2": {"class_type": "Source", "inputs": {"count": 65, "scale": -0.5, "mode": 1}},
                          "3": {"class_type": "Save", "inputs": {"images": ["1", 0], "required_int": "x"}},
                          "4": {"class_type": "Filter", "inputs": {"image": "picture.png", "anything": 3}},
                          "5": {"class_type": "Source", "inputs": {"count": {"__value__": [1, 2]}}}})"),
            (std::vector<std::string>{
                "node 1 (Source), input 'count': expects INT, got 2.5",
                "node 1 (Source), input 'scale': expects FLOAT, got \"big\"",
                "node 1 (Source), input 'mode': 'slow' is not among the choices: fast, good",
                "node 1 (Source), input 'flag': expects BOOLEAN (true or false), got 1",
                "node 1 (Source), input 'name': expects STRING, got 3",
                "node 2 (Source), input 'count': 65 is out of range [1, 64]",
                "node 2 (Source), input 'scale': -0.5 is out of range [0, 2]",
                "node 2 (Source), input 'mode': expects STRING, got 1",
                "node 3 (Save), input 'required_int': expects INT, got \"x\"",
                "node 4 (Filter), input 'image': expects a link from an output of type IMAGE, got the literal \"picture.png\"",
                "node 5 (Source), input 'count': takes a single INT, not a list"}));
}

// A BOUNDING_BOX is written as ComfyUI's frontend sends it, an object of
// whole pixels; object literals are for it alone.
TEST(Validate, ABoundingBoxIsAnObjectOfWholePixels) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source", "inputs": {"mode": "fast", "name": "n"}},
                          "2": {"class_type": "Crop", "inputs": {"image": ["1", 0], "region": {"x": 3, "width": 40}}},
                          "3": {"class_type": "Save", "inputs": {"images": ["2", 0], "required_int": 1}}})"),
            std::vector<std::string>{});
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source", "inputs": {"mode": "fast", "name": "n", "count": {"x": 1}}},
                          "2": {"class_type": "Crop", "inputs": {"image": ["1", 0], "region": {"left": 3}}},
                          "3": {"class_type": "Crop", "inputs": {"image": ["1", 0], "region": {"width": 0}}},
                          "4": {"class_type": "Crop", "inputs": {"image": ["1", 0], "region": {"x": 1.5}}},
                          "5": {"class_type": "Crop", "inputs": {"image": ["1", 0], "region": "0,0,8,8"}},
                          "6": {"class_type": "Save", "inputs": {"images": ["2", 0], "required_int": 1}}})"),
            (std::vector<std::string>{
                "node 1 (Source), input 'count': expects INT, got the object {\"x\":1} (object literals are for "
                "BOUNDING_BOX inputs)",
                "node 2 (Crop), input 'region': a BOUNDING_BOX has x, y, width and height, not 'left'",
                "node 3 (Crop), input 'region': a BOUNDING_BOX's width is a whole number of pixels, at least 1, got 0",
                "node 4 (Crop), input 'region': a BOUNDING_BOX's x is a whole number of pixels, at least 0, got 1.5",
                "node 5 (Crop), input 'region': expects a BOUNDING_BOX such as {\"x\": 0, \"y\": 0, \"width\": 512, "
                "\"height\": 512}, got \"0,0,8,8\""}));
}

TEST(Validate, CyclesNameEveryNodeOnThem) {
  auto errors = errors_of(R"({"1": {"class_type": "Filter", "inputs": {"image": ["3", 0]}},
                              "2": {"class_type": "Filter", "inputs": {"image": ["1", 0]}},
                              "3": {"class_type": "Filter", "inputs": {"image": ["2", 0]}},
                              "4": {"class_type": "Filter", "inputs": {"image": ["4", 0]}},
                              "5": {"class_type": "Save", "inputs": {"images": ["3", 0], "required_int": 1}}})");
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<std::string>{"node 1 (Filter): cycle through nodes 1, 2, 3",
                                              "node 4 (Filter): cycle through nodes 4"}));
}

TEST(Validate, AGraphWithoutOutputNodeListsTheOutputNodeTypes) {
  EXPECT_EQ(errors_of(R"({"1": {"class_type": "Source"}})"),
            (std::vector<std::string>{"the graph has no output node, so nothing would run; output nodes: Save"}));
  EXPECT_EQ(errors_of("{}"),
            (std::vector<std::string>{"the graph has no output node, so nothing would run; output nodes: Save"}));
}

TEST(Validate, CollectsEveryErrorInOnePass) {
  auto errors = errors_of(R"({"1": {"class_type": "Nope"}, "2": {"class_type": "Source", "inputs": {"count": 0}},
                              "3": {"class_type": "Filter", "inputs": {"image": ["8", 0]}}})");
  EXPECT_EQ(errors.size(), 4u);
}


// Each error carries ComfyUI's type (or Cozy's own) and extra_info, so a
// server can answer ComfyUI's node_errors.
std::vector<std::string> types_of(const std::string& text, const SpecSource& specs = Specs()) {
  ParseResult parsed = parse_graph(text);
  std::vector<std::string> out;
  if (!parsed.graph) return out;
  for (const auto& e : validate(*parsed.graph, specs)) out.push_back(e.node_id + ":" + e.input + ":" + e.type);
  return out;
}

TEST(Validate, EveryErrorHasComfyUIsType) {
  EXPECT_EQ(types_of(R"({"1": {"class_type": "Sourec"}})"),
            (std::vector<std::string>{"1::missing_node_type", ":" ":prompt_no_outputs"}));
  EXPECT_EQ(types_of(R"({"1": {"class_type": "Save"}})"),
            (std::vector<std::string>{"1:images:required_input_missing", "1:required_int:required_input_missing"}));
  EXPECT_EQ(types_of(R"({"1": {"class_type": "Source", "inputs": {"cuont": 3, "count": 0, "scale": 3, "mode": "x",
                                                                  "flag": 1}},
                         "2": {"class_type": "Filter", "inputs": {"image": ["9", 0]}},
                         "3": {"class_type": "Filter", "inputs": {"image": ["1", 1]}},
                         "4": {"class_type": "Save", "inputs": {"images": ["1", 5], "required_int": 1}}})"),
            (std::vector<std::string>{"1:cuont:unknown_input", "1:count:value_smaller_than_min",
                                      "1:scale:value_bigger_than_max", "1:mode:value_not_in_list",
                                      "1:flag:invalid_input_type", "2:image:bad_linked_input",
                                      "3:image:return_type_mismatch", "4:images:bad_linked_input"}));
  EXPECT_EQ(types_of(R"({"1": {"class_type": "Filter", "inputs": {"image": ["1", 0]}},
                         "2": {"class_type": "Save", "inputs": {"images": ["1", 0], "required_int": 1}}})"),
            (std::vector<std::string>{"1::dependency_cycle"}));
}

TEST(Validate, ExtraInfoNamesTheInputAndWhatWasReceived) {
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "Source", "inputs": {"count": 99}},
                                       "2": {"class_type": "Save", "inputs": {"images": ["1", 1], "required_int": 1}}})");
  std::vector<Issue> errors = validate(*parsed.graph, Specs());
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].extra_info["input_name"], "count");
  EXPECT_EQ(errors[0].extra_info["received_value"], 99);
  EXPECT_EQ(errors[1].extra_info["input_name"], "images");
  EXPECT_EQ(errors[1].extra_info["received_type"], "INT");
  EXPECT_EQ(errors[1].extra_info["linked_node"], (nlohmann::json{"1", 1}));
  EXPECT_EQ(errors[1].to_json()["type"], "return_type_mismatch");
}

// A spec source that fails while it is asked: the validator reports it on
// the node, with the exception's type, and goes on with the other nodes.
class ThrowingSpecs : public Specs {
 public:
  const NodeSpec* find_spec(const std::string& type) const override {
    if (type == "Broken") throw std::runtime_error("the plugin's table is corrupt");
    return Specs::find_spec(type);
  }
};

TEST(Validate, AnExceptionDuringValidationIsAnErrorOfItsNode) {
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "Broken"},
                                       "2": {"class_type": "Save", "inputs": {"required_int": 1}}})");
  std::vector<Issue> errors = validate(*parsed.graph, ThrowingSpecs());
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].node_id, "1");
  EXPECT_EQ(errors[0].type, "exception_during_validation");
  EXPECT_EQ(errors[0].extra_info["exception_type"], "std::runtime_error");
  EXPECT_EQ(errors[0].to_string(), "node 1 (Broken): validation failed: the plugin's table is corrupt");
  EXPECT_EQ(errors[1].type, "required_input_missing");
}

}  // namespace
}  // namespace cozy::host
