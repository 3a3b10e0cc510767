// ComfyUI's JSON, built in one place: the shapes its clients read.
#pragma once

#include "store.hpp"

#include <cozy/host/executor.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cozy::server::comfy {

/// An error in the shape ComfyUI answers everywhere:
/// {"type", "message", "details", "extra_info"}.
nlohmann::json error(const std::string& type, const std::string& message, const std::string& details = "",
                     const nlohmann::json& extra_info = nlohmann::json::object());

/// The body of a 400 answer to POST /prompt: {"error": {...}, "node_errors": {id: {errors, dependent_outputs,
/// class_type}}}. `graph` may be null (the prompt did not parse); `output_nodes`
/// are its output nodes' ids.
nlohmann::json validation_failure(const std::vector<host::Issue>& issues, const host::Graph* graph,
                                  const std::vector<std::string>& output_nodes);

/// {"exec_info": {"queue_remaining": N}} (GET /prompt, the `status` event's "status").
nlohmann::json queue_info(std::size_t remaining);

/// A finished prompt as GET /history shows it.
nlohmann::json history_item(const QueuedPrompt& prompt, const host::Graph* graph, const host::RunReport& report,
                            const std::vector<nlohmann::json>& messages, bool success, double started_ms,
                            double finished_ms);

/// A queued prompt as ComfyUI's jobs API lists it (`status` pending or
/// in_progress); with `detail`, also its workflow (GET /jobs/{id}).
nlohmann::json job(const QueuedPrompt& prompt, const std::string& status, bool detail);
/// A finished prompt as ComfyUI's jobs API lists it (completed, failed or cancelled).
nlohmann::json job_from_history(const std::string& prompt_id, const nlohmann::json& item, bool detail);

/// GET /object_info's entry for one node type.
nlohmann::json node_info(const host::RegisteredNode& node, const host::FileFolders& folders);

}  // namespace cozy::server::comfy
