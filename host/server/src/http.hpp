// What the route handlers of `cozy serve` see: a request reduced to what
// they read, a reply, and the one table that maps routes to handlers. Also
// the checks every request passes (token, origin) and the helpers that
// confine files to their folders.
#pragma once

#include <boost/beast/http.hpp>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cozy::server {

namespace http = boost::beast::http;

struct Request {
  http::verb method = http::verb::get;
  std::string path;                           ///< percent-decoded, without the query
  std::string raw_path;                       ///< as sent: a route's segments are split on its '/', then decoded
  std::multimap<std::string, std::string> query;  ///< percent-decoded
  std::map<std::string, std::string> headers;     ///< names in lower case
  std::string body;

  std::string query_value(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  }
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  /// The token of `Authorization: Bearer <token>`, or "".
  std::string bearer_token() const;
};

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

Reply json_reply(http::status status, const nlohmann::json& body,
                 std::vector<std::pair<std::string, std::string>> headers = {});

Request to_request(const http::request<http::string_body>& message);

using PathParams = std::map<std::string, std::string>;
using Handler = std::function<Reply(const Request&, const PathParams&)>;

/// Routes by method and path pattern ("/history/{prompt_id}"). Each route
/// answers with and without the "/api" prefix, as ComfyUI's do.
class Routes {
 public:
  void add(http::verb method, const std::string& pattern, Handler handler);
  /// For GET paths no route takes (static files).
  void fallback(std::function<Reply(const Request&)> handler) { fallback_ = std::move(handler); }
  /// The matching route's reply; 405 for a known path with another method.
  Reply dispatch(const Request& request) const;

 private:
  struct Route {
    http::verb method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
  std::function<Reply(const Request&)> fallback_;
};

/// Tokens compared in time that does not depend on where they differ.
bool constant_time_equal(const std::string& a, const std::string& b);

/// ComfyUI's rule: a browser request to a loopback Host whose Origin names
/// another host is refused (a web page cannot queue prompts on a user's
/// machine behind their back).
bool origin_allowed(const Request& request);

/// Why `name` (relative, under `root`) may not be read or written: absolute,
/// leaves the folder by "..", or by a symbolic link that leads out. "" when
/// it stays inside.
std::string confined_path_problem(const std::filesystem::path& root, const std::string& name);

/// A file under `root`/`subfolder` (GET /view, static files), with its
/// Content-Type; 400, 403 or 404 as JSON when it may not be or is not there.
/// Without `subpaths`, `filename` must be a bare name.
Reply file_reply(const std::filesystem::path& root, const std::string& subfolder, const std::string& filename,
                 bool subpaths = false);

/// POST /upload/image and /upload/mask (multipart/form-data: image,
/// subfolder, type, overwrite; a mask also original_ref).
Reply upload_reply(const Request& request, bool mask, const std::filesystem::path& input_dir,
                   const std::filesystem::path& output_dir, const std::filesystem::path& temp_dir);

/// GET /system_stats.
nlohmann::json system_stats(const c10::Device& device);

}  // namespace cozy::server
