// The upload parser alone: what browsers and ComfyUI's clients send, and
// every malformed body refused with a reason.
#include "multipart.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace cozy::server {
namespace {

TEST(Multipart, TheBoundaryComesFromTheContentType) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=XyZ"), "XyZ");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data;boundary=\"a b\""), "a b");
  EXPECT_EQ(multipart_boundary("multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundary7MA4"),
            "----WebKitFormBoundary7MA4");
  EXPECT_FALSE(multipart_boundary("application/json"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary="));
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'x')));
}

TEST(Multipart, FieldsAndFilesAreParsed) {
  const std::string body =
      "preamble\r\n--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a \\\"b\\\".png\"\r\n"
      "Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--B\r\n"
      "content-disposition: form-data; name=subfolder\r\n\r\nsub\r\n--B\r\n"
      "Content-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--B--\r\nepilogue";
  std::string error;
  auto form = parse_multipart(body, "B", error);
  ASSERT_TRUE(form) << error;
  ASSERT_EQ(form->parts.size(), 3u);
  EXPECT_EQ(form->parts[0].name, "image");
  EXPECT_EQ(form->parts[0].filename, "a \"b\".png");
  EXPECT_EQ(form->parts[0].content_type, "image/png");
  EXPECT_EQ(form->parts[0].data, std::string_view("\x89PNG\r\n\x1a\n", 8)) << "binary data with CRLF inside";
  EXPECT_EQ(form->find("subfolder")->data, "sub");
  EXPECT_FALSE(form->find("subfolder")->filename);
  EXPECT_EQ(form->find("empty")->data, "");
  EXPECT_EQ(form->find("nope"), nullptr);
}

TEST(Multipart, AnEmptyPartMayShareItsBlankLineWithTheDelimiter) {
  std::string error;
  auto form = parse_multipart("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--B--", "B", error);
  ASSERT_TRUE(form) << error;
  EXPECT_EQ(form->find("a")->data, "");
}

TEST(Multipart, MalformedBodiesAreRefusedWithAReason) {
  const std::pair<std::string, std::string> cases[] = {
      {"no boundary at all", "multipart body without its opening boundary"},
      {"x--B\r\n\r\n", "multipart body without its opening boundary"},
      {"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", "multipart body without its closing boundary"},
      {"--Bjunk", "multipart boundary not followed by a line end"},
      {"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n--B--", "multipart part without the end of its headers"},
      {"--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--B--", "multipart part that is not form-data"},
      {"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--", "multipart part without a name"},
  };
  for (const auto& [body, expected] : cases) {
    std::string error;
    EXPECT_FALSE(parse_multipart(body, "B", error)) << body;
    EXPECT_EQ(error, expected) << body;
  }
}

// The inputs the fuzzer starts from parse; the inputs it found a problem
// with (kept as fuzz/regressions/multipart_*) are replayed here.
TEST(Multipart, TheFuzzersSeedsParseAndItsFindingsAreReplayed) {
  for (const auto& entry : std::filesystem::directory_iterator(COZY_FUZZ_REGRESSIONS)) {
    if (entry.path().filename().string().rfind("multipart_", 0) != 0) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const std::size_t newline = text.find('\n');
    std::string error;
    parse_multipart(newline == std::string::npos ? "" : std::string_view(text).substr(newline + 1),
                    multipart_boundary(text.substr(0, newline)).value_or("b"), error);
  }
  for (const auto& entry : std::filesystem::directory_iterator(COZY_FUZZ_SEEDS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const std::size_t newline = text.find('\n');
    auto boundary = multipart_boundary(text.substr(0, newline));
    ASSERT_TRUE(boundary) << entry.path();
    std::string error;
    EXPECT_TRUE(parse_multipart(std::string_view(text).substr(newline + 1), *boundary, error)) << entry.path() << error;
  }
}

}  // namespace
}  // namespace cozy::server
