#include "http.hpp"

#include "comfy.hpp"
#include "multipart.hpp"

#include <cozy/files.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/version.h>

#include <sys/sysinfo.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace cozy::server {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; '+' is a space in a query.
std::string decode(std::string_view text, bool query) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else if (query && text[i] == '+') {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> segments;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    segments.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

Reply error_reply(http::status status, const std::string& type, const std::string& message) {
  return json_reply(status, {{"error", comfy::error(type, message)}});
}

std::string content_type_of(const fs::path& file) {
  static const std::map<std::string, std::string> types = {
      {".png", "image/png"},       {".jpg", "image/jpeg"},          {".jpeg", "image/jpeg"},
      {".webp", "image/webp"},     {".gif", "image/gif"},           {".bmp", "image/bmp"},
      {".tif", "image/tiff"},      {".tiff", "image/tiff"},         {".svg", "image/svg+xml"},
      {".json", "application/json"}, {".js", "application/javascript; charset=utf-8"},
      {".mjs", "application/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".html", "text/html; charset=utf-8"}, {".txt", "text/plain; charset=utf-8"},
      {".csv", "text/csv; charset=utf-8"},  {".wasm", "application/wasm"},  {".woff2", "font/woff2"},
      {".woff", "font/woff"},      {".ttf", "font/ttf"},            {".ico", "image/x-icon"},
      {".map", "application/json"}, {".mp4", "video/mp4"},          {".webm", "video/webm"},
      {".mp3", "audio/mpeg"},      {".wav", "audio/wav"},           {".flac", "audio/flac"}};
  auto it = types.find(lower(file.extension().string()));
  return it == types.end() ? "application/octet-stream" : it->second;
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// host and port of "host:port", "[v6]:port" or "host".
std::pair<std::string, std::string> host_and_port(const std::string& text) {
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string::npos) return {text, ""};
    std::string port = close + 1 < text.size() && text[close + 1] == ':' ? text.substr(close + 2) : "";
    return {text.substr(1, close - 1), port};
  }
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || text.find(':') != colon) return {text, ""};
  return {text.substr(0, colon), text.substr(colon + 1)};
}

// A file name as the upload will store it: its last component, refused if
// empty, hidden, or holding control characters.
std::optional<std::string> clean_file_name(const std::string& given) {
  std::string name = given.substr(given.find_last_of("/\\") == std::string::npos ? 0 : given.find_last_of("/\\") + 1);
  if (name.empty() || name == "." || name == ".." || name.front() == '.' || name.size() > 255) return std::nullopt;
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return std::nullopt;
  return name;
}

bool same_bytes(const fs::path& file, std::string_view data) {
  std::error_code ec;
  if (fs::file_size(file, ec) != data.size() || ec) return false;
  std::ifstream in(file, std::ios::binary);
  std::string existing((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return existing == data;
}

void write_bytes(const fs::path& file, std::string_view data) {
  std::ofstream out(file, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw Error("cannot write " + file.string());
}

}  // namespace

std::string Request::bearer_token() const {
  std::string value = header("authorization");
  if (value.size() > 7 && lower(value.substr(0, 7)) == "bearer ") return value.substr(7);
  return {};
}

Reply json_reply(http::status status, const nlohmann::json& body, std::vector<std::pair<std::string, std::string>> headers) {
  Reply reply;
  reply.status = status;
  reply.body = body.dump();
  reply.headers = std::move(headers);
  return reply;
}

Request to_request(const http::request<http::string_body>& message) {
  Request request;
  request.method = message.method();
  const std::string target(message.target());
  const std::size_t question = target.find('?');
  request.raw_path = target.substr(0, question);
  request.path = decode(request.raw_path, false);
  if (question != std::string::npos) {
    std::string_view query = std::string_view(target).substr(question + 1);
    std::size_t start = 0;
    while (start <= query.size()) {
      std::size_t end = query.find('&', start);
      if (end == std::string_view::npos) end = query.size();
      std::string_view pair = query.substr(start, end - start);
      if (!pair.empty()) {
        std::size_t equals = pair.find('=');
        request.query.emplace(decode(pair.substr(0, equals), true),
                              equals == std::string_view::npos ? std::string() : decode(pair.substr(equals + 1), true));
      }
      start = end + 1;
    }
  }
  for (const auto& field : message) request.headers[lower(std::string(field.name_string()))] = std::string(field.value());
  request.body = message.body();
  return request;
}

void Routes::add(http::verb method, const std::string& pattern, Handler handler) {
  routes_.push_back({method, split_path(pattern), handler});
  routes_.push_back({method, split_path("/api" + pattern), std::move(handler)});
}

Reply Routes::dispatch(const Request& request) const {
  // Split before decoding: "/userdata/workflows%2Fa.json" is two segments.
  std::vector<std::string> segments = split_path(request.raw_path.empty() ? request.path : request.raw_path);
  if (!request.raw_path.empty())
    for (std::string& segment : segments) segment = decode(segment, false);
  bool path_known = false;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    PathParams params;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const std::string& want = route.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        if (segments[i].empty()) match = false;
        else params[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    path_known = true;
    const http::verb method = request.method == http::verb::head ? http::verb::get : request.method;
    if (route.method == method) return route.handler(request, params);
  }
  if (path_known)
    return error_reply(http::status::method_not_allowed, "method_not_allowed",
                       std::string(http::to_string(request.method)) + " is not allowed on " + request.path);
  if (fallback_) return fallback_(request);
  return error_reply(http::status::not_found, "not_found", "no route " + request.path);
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& longer = a.size() >= b.size() ? a : b;
  for (std::size_t i = 0; i < longer.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool origin_allowed(const Request& request) {
  const std::string host = lower(request.header("host")), origin = lower(request.header("origin"));
  if (host.empty() || origin.empty()) return true;
  std::size_t scheme = origin.find("://");
  std::string origin_authority = scheme == std::string::npos ? origin : origin.substr(scheme + 3);
  origin_authority = origin_authority.substr(0, origin_authority.find('/'));
  auto [host_name, host_port] = host_and_port(host);
  auto [origin_name, origin_port] = host_and_port(origin_authority);
  if (!is_loopback_host(host_name)) return true;  // ComfyUI limits the check to a loopback Host
  if (origin_name.empty()) return false;          // "null" or garbage from a browser
  if (origin_port.empty() || host_port.empty()) return host_name == origin_name;
  return host_name == origin_name && host_port == origin_port;
}

std::string confined_path_problem(const fs::path& root, const std::string& name) {
  if (name.empty()) return "is empty";
  const fs::path relative(name);
  if (relative.is_absolute() || relative.has_root_name()) return "is an absolute path";
  for (const auto& part : relative)
    if (part == "..") return "leaves its folder";
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(root, ec);
  if (ec) return "cannot be resolved";
  const fs::path resolved = fs::weakly_canonical(root / relative, ec);
  if (ec) return "cannot be resolved";
  const fs::path inside = resolved.lexically_relative(base);
  if (inside.empty() || *inside.begin() == "..") return "leads out of its folder through a symbolic link";
  return {};
}

Reply file_reply(const fs::path& root, const std::string& subfolder, const std::string& filename, bool subpaths) {
  if (filename.empty()) return error_reply(http::status::bad_request, "bad_filename", "filename is missing");
  if (filename.front() == '/' || filename.find("..") != std::string::npos ||
      (!subpaths && filename.find_first_of("/\\") != std::string::npos))
    return error_reply(http::status::bad_request, "bad_filename", "filename must be a plain name inside its folder");
  if (!subfolder.empty()) {
    if (std::string problem = confined_path_problem(root, subfolder); !problem.empty())
      return error_reply(http::status::forbidden, "forbidden_path", "subfolder " + problem);
  }
  const std::string relative = subfolder.empty() ? filename : subfolder + "/" + filename;
  if (std::string problem = confined_path_problem(root, relative); !problem.empty())
    return error_reply(http::status::forbidden, "forbidden_path", "'" + relative + "' " + problem);
  const fs::path file = root / relative;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return error_reply(http::status::not_found, "not_found", "no file '" + relative + "'");
  std::ifstream in(file, std::ios::binary);
  Reply reply;
  reply.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  reply.content_type = content_type_of(file);
  reply.headers.push_back({"Content-Disposition", "filename=\"" + file.filename().string() + "\""});
  return reply;
}

Reply upload_reply(const Request& request, bool mask, const fs::path& input_dir, const fs::path& output_dir,
                   const fs::path& temp_dir) {
  auto boundary = multipart_boundary(request.header("content-type"));
  if (!boundary)
    return error_reply(http::status::bad_request, "bad_multipart", "an upload is multipart/form-data with a boundary");
  std::string problem;
  std::optional<FormData> form = parse_multipart(request.body, *boundary, problem);
  if (!form) return error_reply(http::status::bad_request, "bad_multipart", problem);
  const FormPart* image = form->find("image");
  if (!image || !image->filename)
    return error_reply(http::status::bad_request, "bad_multipart", "the form has no file field 'image'");
  auto field = [&](const char* name) { return form->find(name) ? std::string(form->find(name)->data) : std::string(); };
  const std::string type = field("type").empty() ? "input" : field("type");
  const fs::path* root = type == "input" ? &input_dir : type == "output" ? &output_dir : type == "temp" ? &temp_dir : nullptr;
  if (!root) return error_reply(http::status::bad_request, "bad_type", "type is input, output or temp");
  const std::string subfolder = field("subfolder");
  if (!subfolder.empty())
    if (std::string p = confined_path_problem(*root, subfolder); !p.empty())
      return error_reply(http::status::forbidden, "forbidden_path", "subfolder " + p);
  std::optional<std::string> name = clean_file_name(*image->filename);
  if (!name) return error_reply(http::status::bad_request, "bad_filename", "the file's name is empty, hidden or unprintable");
  const fs::path folder = subfolder.empty() ? *root : *root / subfolder;
  fs::create_directories(folder);
  if (std::string p = confined_path_problem(*root, (subfolder.empty() ? "" : subfolder + "/") + *name); !p.empty())
    return error_reply(http::status::forbidden, "forbidden_path", "'" + *name + "' " + p);

  std::string data(image->data);
  if (mask) {
    // The mask's alpha put on the original image (ComfyUI's mask editor).
    nlohmann::json ref = nlohmann::json::parse(field("original_ref"), nullptr, false);
    if (ref.is_discarded() || !ref.is_object() || !ref.contains("filename") || !ref["filename"].is_string())
      return error_reply(http::status::bad_request, "bad_original_ref", "original_ref is {filename, subfolder, type}");
    const std::string ref_type = ref.value("type", "output");
    const fs::path* ref_root = ref_type == "input" ? &input_dir : ref_type == "output" ? &output_dir
                               : ref_type == "temp" ? &temp_dir : nullptr;
    if (!ref_root) return error_reply(http::status::bad_request, "bad_type", "original_ref's type is input, output or temp");
    const std::string ref_sub = ref.value("subfolder", "");
    const std::string ref_name = (ref_sub.empty() ? "" : ref_sub + "/") + ref["filename"].get<std::string>();
    if (std::string p = confined_path_problem(*ref_root, ref_name); !p.empty())
      return error_reply(http::status::forbidden, "forbidden_path", "original_ref " + p);
    cv::Mat original = cv::imread((*ref_root / ref_name).string(), cv::IMREAD_UNCHANGED);
    std::vector<unsigned char> bytes(data.begin(), data.end());
    cv::Mat mask_image = bytes.empty() ? cv::Mat() : cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    if (original.empty()) return error_reply(http::status::not_found, "not_found", "no image " + ref_name);
    if (mask_image.empty()) return error_reply(http::status::bad_request, "bad_image", "the mask is not an image");
    if (original.depth() != CV_8U) original.convertTo(original, CV_8U, 1.0 / 257);
    if (original.channels() == 1) cv::cvtColor(original, original, cv::COLOR_GRAY2BGRA);
    else if (original.channels() == 3) cv::cvtColor(original, original, cv::COLOR_BGR2BGRA);
    cv::Mat alpha;
    if (mask_image.channels() == 4) cv::extractChannel(mask_image, alpha, 3);
    else if (mask_image.channels() == 1) alpha = mask_image;
    else cv::cvtColor(mask_image, alpha, cv::COLOR_BGR2GRAY);
    if (alpha.depth() != CV_8U) alpha.convertTo(alpha, CV_8U, 1.0 / 257);
    if (alpha.size() != original.size()) cv::resize(alpha, alpha, original.size(), 0, 0, cv::INTER_NEAREST);
    cv::insertChannel(alpha, original, 3);
    std::vector<unsigned char> png;
    cv::imencode(".png", original, png);
    data.assign(png.begin(), png.end());
  }

  const std::string overwrite = field("overwrite");
  std::string stored = *name;
  if (overwrite == "true" || overwrite == "1") {
    // Written beside, then renamed over: a reader never sees half a file.
    const fs::path temp = folder / ("." + stored + ".upload");
    write_bytes(temp, data);
    fs::rename(temp, folder / stored);
  } else {
    const fs::path stem = fs::path(stored).stem(), ext = fs::path(stored).extension();
    for (int i = 1;; ++i) {
      const fs::path target = folder / stored;
      if (fs::exists(target) && same_bytes(target, data)) break;  // the same file again: keep the one there
      if (write_new_file(target, [&](const fs::path& temp) { write_bytes(temp, data); })) break;
      if (i > 10000) return error_reply(http::status::conflict, "no_free_name", "no free name for " + *name);
      stored = stem.string() + " (" + std::to_string(i) + ")" + ext.string();
    }
  }
  return json_reply(http::status::ok, {{"name", stored}, {"subfolder", subfolder}, {"type", type}});
}

nlohmann::json system_stats(const c10::Device& device) {
  struct sysinfo info {};
  sysinfo(&info);
  const double unit = static_cast<double>(info.mem_unit);
  const double ram_total = static_cast<double>(info.totalram) * unit;
  const double ram_free = static_cast<double>(info.freeram + info.bufferram) * unit;
  return {{"system",
           {{"os", "posix"},
            {"ram_total", ram_total},
            {"ram_free", ram_free},
            {"comfyui_version", std::string("cozy ") + COZY_VERSION},
            {"python_version", ""},
            {"pytorch_version", TORCH_VERSION},
            {"embedded_python", false},
            {"argv", nlohmann::json::array()}}},
          {"devices",
           {{{"name", device.str()},
             {"type", device.is_cuda() ? "cuda" : "cpu"},
             {"index", device.has_index() ? nlohmann::json(device.index()) : nlohmann::json(nullptr)},
             {"vram_total", device.is_cpu() ? ram_total : 0.0},
             {"vram_free", device.is_cpu() ? ram_free : 0.0},
             {"torch_vram_total", 0},
             {"torch_vram_free", 0}}}}};
}

}  // namespace cozy::server
