#include "multipart.hpp"

#include <algorithm>
#include <cctype>

namespace cozy::server {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The value of `key=` in a header's parameters ("form-data; name="a"; filename="b.png""),
// unquoted; nullopt if absent.
std::optional<std::string> parameter(std::string_view header, std::string_view key) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t semicolon = header.find(';', pos);
    if (semicolon == std::string_view::npos) return std::nullopt;
    std::size_t start = semicolon + 1;
    while (start < header.size() && (header[start] == ' ' || header[start] == '\t')) ++start;
    std::size_t equals = header.find('=', start);
    if (equals == std::string_view::npos) return std::nullopt;
    std::string name = lower(trim(header.substr(start, equals - start)));
    std::size_t value_start = equals + 1;
    std::string value;
    std::size_t end = value_start;
    if (value_start < header.size() && header[value_start] == '"') {
      end = value_start + 1;
      while (end < header.size() && header[end] != '"') {
        if (header[end] == '\\' && end + 1 < header.size()) ++end;
        value += header[end++];
      }
      if (end < header.size()) ++end;  // the closing quote
    } else {
      end = header.find(';', value_start);
      if (end == std::string_view::npos) end = header.size();
      value = std::string(trim(header.substr(value_start, end - value_start)));
    }
    if (name == key) return value;
    pos = end;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  std::size_t semicolon = content_type.find(';');
  if (lower(trim(content_type.substr(0, semicolon))) != "multipart/form-data") return std::nullopt;
  auto boundary = parameter(content_type, "boundary");
  // RFC 2046: 1 to 70 characters.
  if (!boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  return boundary;
}

std::optional<FormData> parse_multipart(std::string_view body, std::string_view boundary, std::string& error) {
  const std::string delimiter = "--" + std::string(boundary);
  FormData form;
  // The first delimiter may follow a preamble; every later one follows CRLF.
  std::size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos || (pos != 0 && (pos < 2 || body.substr(pos - 2, 2) != "\r\n"))) {
    error = "multipart body without its opening boundary";
    return std::nullopt;
  }
  const std::string next_delimiter = "\r\n" + delimiter;
  pos += delimiter.size();
  for (;;) {
    if (body.substr(pos, 2) == "--") return form;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") {
      error = "multipart boundary not followed by a line end";
      return std::nullopt;
    }
    pos += 2;
    FormPart part;
    std::size_t data_start;
    if (body.substr(pos, 2) == "\r\n") {  // a part without headers
      data_start = pos + 2;
    } else {
      const std::size_t headers_end = body.find("\r\n\r\n", pos);
      const std::size_t next = body.find(next_delimiter, pos);
      if (headers_end == std::string_view::npos || (next != std::string_view::npos && next < headers_end)) {
        error = next == std::string_view::npos ? "multipart body without its closing boundary"
                                               : "multipart part without the end of its headers";
        return std::nullopt;
      }
      std::string_view headers = body.substr(pos, headers_end - pos);
      std::size_t line_start = 0;
      while (line_start <= headers.size()) {
        std::size_t line_end = headers.find("\r\n", line_start);
        if (line_end == std::string_view::npos) line_end = headers.size();
        std::string_view line = headers.substr(line_start, line_end - line_start);
        std::size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
          std::string name = lower(trim(line.substr(0, colon)));
          std::string_view value = trim(line.substr(colon + 1));
          if (name == "content-disposition") {
            if (lower(trim(value.substr(0, value.find(';')))) != "form-data") {
              error = "multipart part that is not form-data";
              return std::nullopt;
            }
            if (auto n = parameter(value, "name")) part.name = *n;
            if (auto f = parameter(value, "filename")) part.filename = *f;
          } else if (name == "content-type") {
            part.content_type = std::string(value);
          }
        }
        line_start = line_end + 2;
      }
      data_start = headers_end + 4;
    }
    // The line end before a delimiter belongs to it; an empty part's may be
    // the blank line that ended its headers.
    const std::size_t part_end = body.find(next_delimiter, data_start - 2);
    if (part_end == std::string_view::npos) {
      error = "multipart body without its closing boundary";
      return std::nullopt;
    }
    if (part.name.empty()) {
      error = "multipart part without a name";
      return std::nullopt;
    }
    part.data = part_end > data_start ? body.substr(data_start, part_end - data_start) : body.substr(data_start, 0);
    form.parts.push_back(std::move(part));
    pos = part_end + next_delimiter.size();
  }
}

}  // namespace cozy::server
