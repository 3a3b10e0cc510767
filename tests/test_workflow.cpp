// Workflows as ComfyUI's editor saves them, converted to the API format:
// widgets_values, links, PrimitiveNode, Reroute, mute, bypass, Note,
// subgraphs. The fixtures are written here in the editor's format.
#include <cozy/host/workflow.hpp>

#include "table_specs.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace cozy::host {
namespace {

using json = nlohmann::json;

class Specs : public TableSpecs {
 public:
  Specs() {
    NodeSpec empty;  // EmptyImage's shape: widgets only
    empty.class_type = "EmptyImage";
    empty.display_name = "Empty Image";
    empty.inputs = {InputSpec::Int("width", 512), InputSpec::Int("height", 512), InputSpec::Int("batch_size", 1)};
    empty.outputs = {{"IMAGE", types::IMAGE}};
    add(empty);
    NodeSpec sample;  // a seed (the editor adds control_after_generate after it) and an optional widget
    sample.class_type = "Sample";
    sample.inputs = {InputSpec::Link("generator", "GENERATOR"), InputSpec::Int("seed", 0), InputSpec::Int("batch", 4),
                     InputSpec::Float("truncation", 0.0).optional()};
    sample.outputs = {{"IMAGE", types::IMAGE}, {"LATENT", types::LATENT}};
    add(sample);
    NodeSpec load;
    load.class_type = "LoadImage";
    load.inputs = {InputSpec::String("image").files_in("input", {".png", ".jpg"}), InputSpec::Int("frame", 0)};
    load.outputs = {{"IMAGE", types::IMAGE}, {"MASK", types::MASK}};
    add(load);
    NodeSpec blur;
    blur.class_type = "Blur";
    blur.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Float("sigma", 1.0)};
    blur.outputs = {{"IMAGE", types::IMAGE}};
    add(blur);
    NodeSpec save;
    save.class_type = "SaveImage";
    save.output_node = true;
    save.inputs = {InputSpec::Link("images", types::IMAGE), InputSpec::String("filename_prefix", "cozy")};
    add(save);
  }
};

// An editor node: id, type, inputs (name, type, link), outputs, widgets_values, mode.
json node(int id, const std::string& type, json widgets, json inputs = json::array(), json outputs = json::array(),
          int mode = 0) {
  return {{"id", id},         {"type", type},       {"pos", {0, 0}},   {"size", {200, 100}}, {"flags", json::object()},
          {"order", id},      {"mode", mode},       {"inputs", inputs}, {"outputs", outputs}, {"properties", json::object()},
          {"widgets_values", widgets}};
}
json in(const std::string& name, const std::string& type, json link = nullptr) {
  return {{"name", name}, {"type", type}, {"link", link}};
}
json out(const std::string& name, const std::string& type, json links = json::array()) {
  return {{"name", name}, {"type", type}, {"links", links}};
}

Conversion convert(const json& workflow) { return convert_ui_workflow(workflow, Specs()); }

TEST(Workflow, WidgetsAndLinksBecomeInputs) {
  json wf = {{"last_node_id", 3}, {"last_link_id", 2}, {"version", 0.4},
             {"nodes", {node(1, "EmptyImage", {64, 32, 2}, json::array(), {out("IMAGE", "IMAGE", {1})}),
                        node(2, "Blur", {2.5}, {in("image", "IMAGE", 1)}, {out("IMAGE", "IMAGE", {2})}),
                        node(3, "SaveImage", {"blurred"}, {in("images", "IMAGE", 2)})}},
             {"links", {{1, 1, 0, 2, 0, "IMAGE"}, {2, 2, 0, 3, 0, "IMAGE"}}}};
  wf["nodes"][2]["title"] = "Keep it";
  ASSERT_TRUE(is_ui_workflow(wf));
  Conversion c = convert(wf);
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  EXPECT_EQ(c.prompt["1"]["inputs"], (json{{"width", 64}, {"height", 32}, {"batch_size", 2}}));
  EXPECT_EQ(c.prompt["2"]["inputs"], (json{{"image", {"1", 0}}, {"sigma", 2.5}}));
  EXPECT_EQ(c.prompt["3"]["inputs"], (json{{"images", {"2", 0}}, {"filename_prefix", "blurred"}}));
  EXPECT_EQ(c.prompt["3"]["_meta"]["title"], "Keep it");
  EXPECT_EQ(c.prompt["1"]["_meta"]["title"], "Empty Image") << "no title: the display name";
  EXPECT_FALSE(is_ui_workflow(c.prompt));
}

TEST(Workflow, ControlAfterGenerateAndTheUploadButtonAreSkipped) {
  json wf = {{"nodes", {node(1, "Sample", {7, "randomize", 16, 0.5}, {in("generator", "GENERATOR")}),
                        node(2, "LoadImage", {"cat.png", "image", 3})}},
             {"links", json::array()}};
  Conversion c = convert(wf);
  ASSERT_TRUE(c.errors.empty());
  EXPECT_EQ(c.prompt["1"]["inputs"], (json{{"seed", 7}, {"batch", 16}, {"truncation", 0.5}}));
  EXPECT_EQ(c.prompt["2"]["inputs"], (json{{"image", "cat.png"}, {"frame", 3}}));
  // Without the control value (an API export pasted back), the same inputs.
  wf["nodes"][0]["widgets_values"] = {7, 16, 0.5};
  EXPECT_EQ(convert(wf).prompt["1"]["inputs"], (json{{"seed", 7}, {"batch", 16}, {"truncation", 0.5}}));
  // Named values, where the editor wrote them, win over positions.
  wf["nodes"][0]["widgets_values_named"] = {{"seed", 9}, {"batch", 2}};
  EXPECT_EQ(convert(wf).prompt["1"]["inputs"], (json{{"seed", 9}, {"batch", 2}}));
}

TEST(Workflow, PrimitivesAndReroutesAreResolved) {
  // PrimitiveNode 4 gives its value to Blur's sigma (a widget made an input);
  // Reroute 5 carries EmptyImage's image to Blur.
  json wf = {{"nodes",
              {node(1, "EmptyImage", {8, 8, 1}, json::array(), {out("IMAGE", "IMAGE", {1})}),
               node(5, "Reroute", json::array(), {in("", "*", 1)}, {out("", "IMAGE", {2})}),
               node(4, "PrimitiveNode", {3.25, "fixed"}, json::array(), {out("FLOAT", "FLOAT", {3})}),
               node(2, "Blur", {1.0}, {in("image", "IMAGE", 2), in("sigma", "FLOAT", 3)}, {out("IMAGE", "IMAGE", {4})}),
               node(3, "SaveImage", {"p"}, {in("images", "IMAGE", 4)}),
               node(6, "Note", {"a note"}), node(7, "MarkdownNote", {"# notes"})}},
             {"links", {{1, 1, 0, 5, 0, "*"}, {2, 5, 0, 2, 0, "IMAGE"}, {3, 4, 0, 2, 1, "FLOAT"}, {4, 2, 0, 3, 0, "IMAGE"}}}};
  Conversion c = convert(wf);
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  EXPECT_EQ(c.prompt.size(), 3u) << c.prompt.dump();
  EXPECT_EQ(c.prompt["2"]["inputs"], (json{{"image", {"1", 0}}, {"sigma", 3.25}}));
}

TEST(Workflow, MutedNodesAreLeftOutAndBypassedOnesPassTheirInputOn) {
  // 1 -> 2 (bypassed) -> 3 -> 4; 5 (muted) -> 6 (save).
  json wf = {{"nodes",
              {node(1, "EmptyImage", {8, 8, 1}, json::array(), {out("IMAGE", "IMAGE", {1})}),
               node(2, "Blur", {4.0}, {in("image", "IMAGE", 1)}, {out("IMAGE", "IMAGE", {2})}, 4),
               node(3, "Blur", {1.0}, {in("image", "IMAGE", 2)}, {out("IMAGE", "IMAGE", {3})}),
               node(4, "SaveImage", {"kept"}, {in("images", "IMAGE", 3)}),
               node(5, "EmptyImage", {8, 8, 1}, json::array(), {out("IMAGE", "IMAGE", {4})}, 2),
               node(6, "SaveImage", {"muted"}, {in("images", "IMAGE", 4)})}},
             {"links", {{1, 1, 0, 2, 0, "IMAGE"}, {2, 2, 0, 3, 0, "IMAGE"}, {3, 3, 0, 4, 0, "IMAGE"},
                        {4, 5, 0, 6, 0, "IMAGE"}}}};
  Conversion c = convert(wf);
  ASSERT_TRUE(c.errors.empty());
  EXPECT_FALSE(c.prompt.contains("2")) << "bypassed";
  EXPECT_FALSE(c.prompt.contains("5")) << "muted";
  EXPECT_EQ(c.prompt["3"]["inputs"]["image"], json::array({"1", 0})) << "the bypassed node's own input";
  EXPECT_EQ(c.prompt["6"]["inputs"], (json{{"filename_prefix", "muted"}})) << "its input from a muted node is gone";
}

TEST(Workflow, SubgraphsAreFlattenedWithComfyUIsIds) {
  // Node 10 is an instance of subgraph "sg": its input 0 goes to an inner
  // Blur (inner id 1), whose output is the subgraph's output 0.
  json sg = {{"id", "sg"},
             {"name", "Soften"},
             {"inputs", {{{"name", "image"}, {"type", "IMAGE"}, {"linkIds", {1}}}}},
             {"outputs", {{{"name", "IMAGE"}, {"type", "IMAGE"}, {"linkIds", {2}}}}},
             {"nodes", {node(1, "Blur", {6.0}, {in("image", "IMAGE", 1)}, {out("IMAGE", "IMAGE", {2})})}},
             {"links",
              {{{"id", 1}, {"origin_id", -10}, {"origin_slot", 0}, {"target_id", 1}, {"target_slot", 0}, {"type", "IMAGE"}},
               {{"id", 2}, {"origin_id", 1}, {"origin_slot", 0}, {"target_id", -20}, {"target_slot", 0}, {"type", "IMAGE"}}}}};
  json wf = {{"nodes", {node(1, "EmptyImage", {8, 8, 1}, json::array(), {out("IMAGE", "IMAGE", {1})}),
                        node(10, "sg", json::array(), {in("image", "IMAGE", 1)}, {out("IMAGE", "IMAGE", {2})}),
                        node(3, "SaveImage", {"sub"}, {in("images", "IMAGE", 2)})}},
             {"links", {{1, 1, 0, 10, 0, "IMAGE"}, {2, 10, 0, 3, 0, "IMAGE"}}},
             {"definitions", {{"subgraphs", {sg}}}}};
  Conversion c = convert(wf);
  ASSERT_TRUE(c.errors.empty()) << c.errors[0].message;
  EXPECT_EQ(c.prompt.size(), 3u) << c.prompt.dump();
  EXPECT_EQ(c.prompt["10:1"]["class_type"], "Blur");
  EXPECT_EQ(c.prompt["10:1"]["inputs"], (json{{"image", {"1", 0}}, {"sigma", 6.0}}));
  EXPECT_EQ(c.prompt["3"]["inputs"]["images"], json::array({"10:1", 0}));
}

TEST(Workflow, AnUnknownNodeTypeNamesTheEditorsNode) {
  json wf = {{"nodes", {node(7, "CheckpointLoaderSimple", {"sd15.safetensors"})}}, {"links", json::array()}};
  wf["nodes"][0]["title"] = "My loader";
  Conversion c = convert(wf);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0].message, "UI node 7 ('My loader'): unknown node type 'CheckpointLoaderSimple'");
  EXPECT_EQ(c.errors[0].node_id, "7");
  EXPECT_EQ(convert(json{{"prompt", 1}}).errors.size(), 1u) << "not an editor workflow";
}

// What the fuzzer found, replayed: an editor workflow converts or is
// refused, never throws (fields of the wrong type read as absent).
TEST(Workflow, FuzzerFindingsConvertWithoutThrowing) {
  std::size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(COZY_FUZZ_REGRESSIONS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const json document = json::parse(in, nullptr, false);
    if (document.is_discarded() || !is_ui_workflow(document)) continue;
    EXPECT_NO_THROW(convert(document)) << entry.path();
    ++replayed;
  }
  EXPECT_GE(replayed, 1u);
  // Every field of the wrong type at once.
  json wf = {{"nodes", {{{"id", 1}, {"type", {1, 2}}, {"mode", "bypass"}, {"inputs", 3}, {"outputs", "x"},
                         {"widgets_values", {{"a", 1}}}},
                        {{"id", 2}, {"type", "Blur"}, {"mode", 1e300}, {"inputs", {{{"name", 5}, {"link", "x"}}}},
                         {"widgets_values", "s"}}}},
             {"links", {{1, "a", 1e300, 2, {}, "IMAGE"}, {{"id", 2}, {"origin_slot", "s"}}}}};
  EXPECT_NO_THROW(convert(wf));
}

}  // namespace
}  // namespace cozy::host
