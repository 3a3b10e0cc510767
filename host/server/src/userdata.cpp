// The routes ComfyUI's frontend reads besides the prompt API: the user (one,
// "default", as ComfyUI without --multi-user), the settings, the user's
// files (saved workflows, templates, keybindings), translations, workflow
// templates of extensions. Files live under <user_dir>/default/, as in
// ComfyUI, so a user folder moves between the two.
#include "userdata.hpp"

#include "comfy.hpp"

#include <cozy/error.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <system_error>

namespace cozy::server {

namespace fs = std::filesystem;

namespace {

Reply error(http::status status, const std::string& type, const std::string& message) {
  return json_reply(status, {{"error", comfy::error(type, message)}});
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Written beside the target and renamed over it: a crash leaves the old file.
void write_text(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  fs::path temp = file;
  temp += ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) throw Error("cannot write " + file.string());
  }
  fs::rename(temp, file);
}

double seconds_since_epoch(fs::file_time_type t) {
  const auto system = std::chrono::time_point_cast<std::chrono::milliseconds>(
      t - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
  return static_cast<double>(system.time_since_epoch().count()) / 1000.0;
}

nlohmann::json file_info(const fs::path& file, const fs::path& root) {
  std::error_code ec;
  return {{"path", file.lexically_relative(root).generic_string()},
          {"size", static_cast<std::uint64_t>(fs::file_size(file, ec))},
          {"modified", seconds_since_epoch(fs::last_write_time(file, ec))}};
}

bool flag(const Request& r, const std::string& name, bool fallback) {
  const std::string v = r.query_value(name);
  if (v.empty()) return fallback;
  return v == "true" || v == "1";
}

}  // namespace

UserData::UserData(fs::path user_dir, std::map<std::string, fs::path> template_dirs)
    : root_(std::move(user_dir) / "default"), template_dirs_(std::move(template_dirs)) {}

nlohmann::json UserData::settings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return read_settings();
}

nlohmann::json UserData::read_settings() const {
  const fs::path file = root_ / "comfy.settings.json";
  if (!fs::exists(file)) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(read_text(file), nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

void UserData::write_settings(const nlohmann::json& settings) const {
  write_text(root_ / "comfy.settings.json", settings.dump(4));
}

// `name` confined to the user's folder, or why not.
std::string UserData::problem(const std::string& name) const {
  if (name.empty()) return "no file name";
  return confined_path_problem(root_, name);  // root_ is made with the routes
}

void UserData::add_routes(Routes& routes) {
  // The folders the frontend lists at start (as ComfyUI's first run leaves them).
  for (const char* dir : {"workflows", "subgraphs"}) fs::create_directories(root_ / dir);
  routes.add(http::verb::get, "/users", [](const Request&, const PathParams&) {
    return json_reply(http::status::ok, {{"storage", "server"}, {"migrated", true}});
  });
  routes.add(http::verb::post, "/users", [](const Request&, const PathParams&) {
    return error(http::status::bad_request, "single_user", "Cozy serves one user (\"default\"); there are no others to create");
  });

  routes.add(http::verb::get, "/settings", [this](const Request&, const PathParams&) {
    return json_reply(http::status::ok, settings());
  });
  routes.add(http::verb::post, "/settings", [this](const Request& r, const PathParams&) {
    nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return error(http::status::bad_request, "bad_json", "POST /settings takes an object");
    std::lock_guard<std::mutex> lock(mutex_);
    nlohmann::json all = read_settings();
    all.update(body);
    write_settings(all);
    return json_reply(http::status::ok, nullptr);
  });
  routes.add(http::verb::get, "/settings/{id}", [this](const Request&, const PathParams& p) {
    nlohmann::json all = settings();
    auto it = all.find(p.at("id"));
    return json_reply(http::status::ok, it == all.end() ? nlohmann::json(nullptr) : *it);
  });
  routes.add(http::verb::post, "/settings/{id}", [this](const Request& r, const PathParams& p) {
    nlohmann::json value = nlohmann::json::parse(r.body, nullptr, false);
    if (value.is_discarded()) return error(http::status::bad_request, "bad_json", "the setting's value is not JSON");
    std::lock_guard<std::mutex> lock(mutex_);
    nlohmann::json all = read_settings();
    all[p.at("id")] = value;
    write_settings(all);
    return json_reply(http::status::ok, nullptr);
  });

  // GET /userdata?dir=workflows&recurse=true&split=false&full_info=true
  routes.add(http::verb::get, "/userdata", [this](const Request& r, const PathParams&) {
    const std::string dir = r.query_value("dir");
    if (dir.empty()) return error(http::status::bad_request, "bad_query", "GET /userdata needs ?dir=");
    if (std::string why = problem(dir); !why.empty()) return error(http::status::forbidden, "forbidden", "'" + dir + "' " + why);
    const fs::path folder = root_ / dir;
    if (!fs::is_directory(folder)) return error(http::status::not_found, "not_found", "no folder " + dir);
    const bool recurse = flag(r, "recurse", false), full = flag(r, "full_info", false), split = flag(r, "split", false);
    std::vector<fs::path> files;
    auto take = [&](const fs::directory_entry& e) {
      if (e.is_regular_file() && e.path().extension() != ".partial") files.push_back(e.path());
    };
    if (recurse)
      for (const auto& e : fs::recursive_directory_iterator(folder)) take(e);
    else
      for (const auto& e : fs::directory_iterator(folder)) take(e);
    std::sort(files.begin(), files.end());
    nlohmann::json list = nlohmann::json::array();
    for (const fs::path& f : files) {
      const std::string relative = f.lexically_relative(folder).generic_string();
      if (full) {
        list.push_back(file_info(f, folder));
      } else if (split) {
        nlohmann::json parts = nlohmann::json::array({relative});
        for (const auto& part : f.lexically_relative(folder)) parts.push_back(part.string());
        list.push_back(parts);
      } else {
        list.push_back(relative);
      }
    }
    return json_reply(http::status::ok, list);
  });
  routes.add(http::verb::get, "/userdata/{file}", [this](const Request&, const PathParams& p) {
    const std::string& name = p.at("file");
    if (std::string why = problem(name); !why.empty()) return error(http::status::forbidden, "forbidden", "'" + name + "' " + why);
    return file_reply(root_, "", name, /*subpaths=*/true);
  });
  routes.add(http::verb::post, "/userdata/{file}", [this](const Request& r, const PathParams& p) {
    const std::string& name = p.at("file");
    if (std::string why = problem(name); !why.empty()) return error(http::status::forbidden, "forbidden", "'" + name + "' " + why);
    const fs::path file = root_ / name;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!flag(r, "overwrite", true) && fs::exists(file))
      return error(http::status::conflict, "file_exists", name + " exists (overwrite=false)");
    if (fs::is_directory(file)) return error(http::status::bad_request, "is_folder", name + " is a folder");
    write_text(file, r.body);
    return json_reply(http::status::ok, flag(r, "full_info", false) ? file_info(file, root_)
                                                                    : nlohmann::json(file.lexically_relative(root_).generic_string()));
  });
  routes.add(http::verb::delete_, "/userdata/{file}", [this](const Request&, const PathParams& p) {
    const std::string& name = p.at("file");
    if (std::string why = problem(name); !why.empty()) return error(http::status::forbidden, "forbidden", "'" + name + "' " + why);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!fs::is_regular_file(root_ / name)) return error(http::status::not_found, "not_found", "no file " + name);
    fs::remove(root_ / name);
    Reply reply;
    reply.status = http::status::no_content;
    return reply;
  });
  routes.add(http::verb::post, "/userdata/{file}/move/{dest}", [this](const Request& r, const PathParams& p) {
    const std::string &from = p.at("file"), &to = p.at("dest");
    for (const std::string& name : {from, to})
      if (std::string why = problem(name); !why.empty()) return error(http::status::forbidden, "forbidden", "'" + name + "' " + why);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!fs::is_regular_file(root_ / from)) return error(http::status::not_found, "not_found", "no file " + from);
    if (!flag(r, "overwrite", false) && fs::exists(root_ / to))
      return error(http::status::conflict, "file_exists", to + " exists (overwrite=false)");
    fs::create_directories((root_ / to).parent_path());
    fs::rename(root_ / from, root_ / to);
    return json_reply(http::status::ok, flag(r, "full_info", false) ? file_info(root_ / to, root_) : nlohmann::json(to));
  });

  // Translations of extensions' node names (none: Cozy's are in English).
  routes.add(http::verb::get, "/i18n", [](const Request&, const PathParams&) {
    return json_reply(http::status::ok, nlohmann::json::object());
  });
  // Workflow templates that extensions ship: {"cozy": ["feedback_loop", ...]}.
  routes.add(http::verb::get, "/workflow_templates", [this](const Request&, const PathParams&) {
    nlohmann::json all = nlohmann::json::object();
    for (const auto& [name, dir] : template_dirs_) {
      std::vector<std::string> names;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
      std::sort(names.begin(), names.end());
      if (!names.empty()) all[name] = names;
    }
    return json_reply(http::status::ok, all);
  });
  routes.add(http::verb::get, "/workflow_templates/{module}/{file}", [this](const Request&, const PathParams& p) {
    auto it = template_dirs_.find(p.at("module"));
    if (it == template_dirs_.end()) return error(http::status::not_found, "not_found", "no templates of " + p.at("module"));
    return file_reply(it->second, "", p.at("file"));
  });
}

}  // namespace cozy::server
