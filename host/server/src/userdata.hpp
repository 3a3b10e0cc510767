// The user's side of ComfyUI's frontend protocol: /users, /settings,
// /userdata, /i18n, /workflow_templates (see userdata.cpp).
#pragma once

#include "http.hpp"

#include <filesystem>
#include <map>
#include <mutex>
#include <string>

namespace cozy::server {

class UserData {
 public:
  /// Files under `user_dir`/default; `template_dirs` maps an extension's
  /// name to its folder of workflow templates (*.json).
  UserData(std::filesystem::path user_dir, std::map<std::string, std::filesystem::path> template_dirs);
  /// Registers the routes; `this` must outlive `routes`.
  void add_routes(Routes& routes);
  nlohmann::json settings() const;

 private:
  nlohmann::json read_settings() const;
  void write_settings(const nlohmann::json& settings) const;
  std::string problem(const std::string& name) const;

  std::filesystem::path root_;
  std::map<std::string, std::filesystem::path> template_dirs_;
  mutable std::mutex mutex_;  ///< settings read-modify-write, moves
};

}  // namespace cozy::server
