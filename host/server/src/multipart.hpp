// multipart/form-data (RFC 7578), as browsers and ComfyUI's clients send
// uploads. Torch-free and Beast-free: fuzz/fuzz_multipart.cpp drives it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cozy::server {

struct FormPart {
  std::string name;
  std::optional<std::string> filename;  ///< set for a file field
  std::string content_type;
  std::string_view data;  ///< into the body given to parse_multipart
};

struct FormData {
  std::vector<FormPart> parts;
  const FormPart* find(std::string_view name) const {
    for (const auto& p : parts)
      if (p.name == name) return &p;
    return nullptr;
  }
};

/// The boundary of a `multipart/form-data; boundary=...` content type, or
/// nullopt when the type is another or has no usable boundary.
std::optional<std::string> multipart_boundary(std::string_view content_type);

/// Parses `body`. Returns nullopt with `error` set when it is malformed (no
/// opening boundary, a part without headers' end, no closing boundary, a
/// part without a name). The parts' data point into `body`.
std::optional<FormData> parse_multipart(std::string_view body, std::string_view boundary, std::string& error);

}  // namespace cozy::server
