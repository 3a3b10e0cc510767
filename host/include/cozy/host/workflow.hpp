// cozy/host/workflow.hpp — workflows as ComfyUI's editor saves them (nodes,
// links, widgets_values), turned into the API format the host runs.
#pragma once

#include <cozy/host/graph.hpp>
#include <cozy/host/validate.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cozy::host {

/// True when `document` is an editor workflow (`nodes` and `links`), not the
/// API format.
bool is_ui_workflow(const nlohmann::json& document);

struct Conversion {
  nlohmann::json prompt = nlohmann::json::object();  ///< the API format
  std::vector<Issue> errors;   ///< each names the editor's node id and title
  std::vector<std::string> warnings;
};

/// The API form of an editor workflow, as the frontend's own conversion
/// makes it: widgets_values become inputs in the order the node type
/// declares its widget inputs (the control_after_generate value after a
/// seed and the upload button's value after an image choice are skipped;
/// `widgets_values_named`, where the editor wrote it, wins), links become
/// [node, output]; PrimitiveNode gives its value to the inputs it feeds,
/// Reroute passes its link on; muted nodes (mode 2) are left out, with the
/// inputs they fed; a bypassed node (mode 4) hands each consumer its own
/// input of the same type; Note and MarkdownNote are ignored; subgraphs
/// (definitions.subgraphs) are flattened, their nodes named
/// "<instance id>:<inner id>" as ComfyUI does. A `_meta.title` keeps each
/// node's title.
Conversion convert_ui_workflow(const nlohmann::json& workflow, const SpecSource& specs);

}  // namespace cozy::host
