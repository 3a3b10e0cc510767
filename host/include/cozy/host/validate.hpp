// cozy/host/validate.hpp — every check a graph passes before anything runs.
#pragma once

#include <cozy/host/graph.hpp>
#include <cozy/spec.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cozy::host {

/// Where the validator looks up node types (the host's registry; a fixed
/// table in the fuzzer and in tests).
class SpecSource {
 public:
  virtual ~SpecSource() = default;
  virtual const NodeSpec* find_spec(const std::string& class_type) const = 0;
  /// Every known class_type, sorted (for suggestions in messages).
  virtual std::vector<std::string> class_types() const = 0;
};

/// The run's folders by name ("models", "input"), for inputs that name a
/// file in one of them (InputSpec::file_folder).
using FileFolders = std::map<std::string, std::filesystem::path>;

/// The files under `folder` (recursively, as paths relative to it, sorted)
/// whose names end in one of `extensions` (all files if none).
std::vector<std::string> list_files(const std::filesystem::path& folder, const std::vector<std::string>& extensions);

/// Collects every error in one pass: unknown class_type, missing required
/// input, unknown input name, link to a missing node or output index, type
/// mismatch on an edge, literal of the wrong JSON type, out of range or not
/// among the choices, cycles (naming the nodes on each), no output node.
/// With `folders`, also a file input naming no file in its folder.
std::vector<Issue> validate(const Graph& graph, const SpecSource& specs, const FileFolders* folders = nullptr);

/// A file input's value as ComfyUI's frontend may write it, "name.png
/// [output]", without the annotation when it names `folder`.
std::string strip_folder_annotation(const std::string& name, const std::string& folder);

/// Removes the inputs a known node type does not declare, as ComfyUI ignores
/// them (exports carry `upload` on LoadImage, other versions other names);
/// returns one warning (type unknown_input) per input removed. `cozy run`,
/// `validate` and `serve` call it before `validate`, which alone would refuse
/// them.
std::vector<Issue> drop_unknown_inputs(Graph& graph, const SpecSource& specs);

/// For each input of `spec`, the value the node gives it, or nullptr.
/// Names the spec does not know are appended to `unknown` (if given).
/// Linear in the number of inputs, however many a node type declares.
std::vector<const InputValue*> match_inputs(const GraphNode& node, const NodeSpec& spec,
                                            std::vector<std::string>* unknown = nullptr);

/// Edits (insert, delete, replace; letters compared case-blind) from a to b.
std::size_t edit_distance(const std::string& a, const std::string& b);
/// The names of `known` close enough to `name` to suggest ("did you mean").
std::vector<std::string> similar_names(const std::string& name, const std::vector<std::string>& known);

/// True when an output of type `from` may feed an input of type `to`.
inline bool types_compatible(const std::string& from, const std::string& to) {
  return from == to || from == types::ANY || to == types::ANY;
}

}  // namespace cozy::host
