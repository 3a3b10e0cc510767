// cozy/host/registry.hpp — node types, and the plugins they came from.
#pragma once

#include <cozy/host/validate.hpp>
#include <cozy/node.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cozy::host {

/// A node type the host can run. `library` keeps the plugin that made it
/// loaded; it is declared first so that `def` (whose code lives in the
/// library) is destroyed before the library can be unloaded.
struct RegisteredNode {
  std::shared_ptr<void> library;
  NodeDef def;
  std::string plugin;
};

/// The outcome of loading one plugin file, kept for `cozy plugins`.
struct PluginRecord {
  std::filesystem::path file;
  std::string name;     ///< from the descriptor, when it could be read
  std::string version;
  bool loaded = false;
  std::string error;    ///< why it was not loaded
  double load_ms = 0;
  std::vector<std::string> node_types;
};

class Registry : public SpecSource {
 public:
  Registry();
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Adds a node type compiled into the program (tests, benchmarks).
  /// Throws cozy::Error if the class_type exists.
  void add(NodeDef def, const std::string& plugin = "builtin");

  /// Loads one plugin file. Never throws: a failure is recorded, with the
  /// file and the reason, and returned.
  const PluginRecord& load_plugin(const std::filesystem::path& file);
  /// Loads every shared library in `folder` (sorted by name). A folder that
  /// does not exist is recorded as a failure.
  void load_folder(const std::filesystem::path& folder);

  const RegisteredNode* find(const std::string& class_type) const;
  const NodeSpec* find_spec(const std::string& class_type) const override;
  std::vector<std::string> class_types() const override;
  const std::vector<PluginRecord>& plugins() const { return plugins_; }
  /// Type names that no loaded node makes while some node takes them, or
  /// that no node takes while some node makes them (not the primitive
  /// types, which a graph can write, nor `*`): a typo in a spec, most often.
  /// "IMAEG: consumed by TypoType, made by no node; did you mean IMAGE?"
  std::vector<std::string> type_warnings() const;

 private:
  std::map<std::string, std::unique_ptr<RegisteredNode>> nodes_;
  std::vector<PluginRecord> plugins_;
};

/// The plugin folders, in the order the host searches them: the build's (or
/// installed) plugin folder, then each entry of COZY_PLUGIN_PATH, then `extra`.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& extra);

/// One node as ComfyUI's GET /object_info describes it.
/// With `folders`, a file input lists the files of its folder as choices.
nlohmann::json object_info(const NodeSpec& spec, const FileFolders* folders = nullptr);

}  // namespace cozy::host
