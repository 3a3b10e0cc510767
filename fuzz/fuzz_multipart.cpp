// libFuzzer target: any bytes as a multipart/form-data body (and, from its
// first line, a Content-Type) through the upload parser of `cozy serve`.
// Every part it returns must lie inside the body it was given.
#include "multipart.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first line is the Content-Type; the rest is the body.
  const std::size_t newline = input.find('\n');
  std::string_view content_type = newline == std::string_view::npos ? input : input.substr(0, newline);
  std::string_view body = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  std::optional<std::string> boundary = cozy::server::multipart_boundary(content_type);
  if (!boundary) boundary = "b";
  std::string error;
  std::optional<cozy::server::FormData> form = cozy::server::parse_multipart(body, *boundary, error);
  if (!form) {
    if (error.empty()) std::abort();  // a refusal always says why
    return 0;
  }
  for (const auto& part : form->parts) {
    if (part.name.empty()) std::abort();
    if (part.data.data() < body.data() || part.data.data() + part.data.size() > body.data() + body.size()) std::abort();
  }
  return 0;
}
