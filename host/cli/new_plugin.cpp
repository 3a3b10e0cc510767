// `cozy new-plugin NAME`: a plugin project that builds against the
// installed SDK and passes its own test as written, the way GStreamer's
// element-maker starts an element.
#include "new_plugin.hpp"

#include <cctype>
#include <fstream>
#include <iostream>
#include <map>

namespace cozy::cli {
namespace {

namespace fs = std::filesystem;

// "my_filter" -> "MyFilter"
std::string camel(const std::string& name) {
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '_' || c == '-') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

std::string fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string mark = "@" + key + "@";
    for (std::size_t at = text.find(mark); at != std::string::npos; at = text.find(mark, at + value.size()))
      text.replace(at, mark.size(), value);
  }
  return text;
}

const char* kCMakeLists = R"(# The @NAME@ plugin for Cozy, built against the installed SDK:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=/where/cozy/is/installed
#   cmake --build build && ctest --test-dir build
#   cozy run graphs/@NAME@.json --plugins build
cmake_minimum_required(VERSION 3.25)
project(@NAME@ LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)

find_package(Cozy REQUIRED)
cozy_add_plugin(@NAME@ src/@NAME@.cpp)

# Each node alone, with the SDK's test harness (cozy/testing.hpp).
enable_testing()
add_executable(test_@NAME@ tests/test_@NAME@.cpp)
target_link_libraries(test_@NAME@ PRIVATE Cozy::testing)
target_compile_definitions(test_@NAME@ PRIVATE PLUGIN_FILE="$<TARGET_FILE:@NAME@>")
add_dependencies(test_@NAME@ @NAME@)
add_test(NAME @NAME@ COMMAND test_@NAME@)
)";

const char* kSource = R"(// The @NAME@ plugin: one node, @CLASS@, that multiplies an image by a gain.
// Add nodes to register_nodes; docs/plugin-guide.md in Cozy's sources says
// what a spec can declare and what a node may ask of its context.
#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

namespace {

cozy::NodeDef gain() {
  cozy::NodeDef def = cozy::NodeDef::named("@CLASS@", "@CLASS@", "@NAME@", "Multiplies an image by a gain, clamped to [0, 1].");
  def.spec.inputs = {cozy::InputSpec::Link("image", cozy::types::IMAGE),
                     cozy::InputSpec::Float("gain", 1.0).range(0, 4).with_step(0.05).help("1 leaves the image as it is")};
  def.spec.outputs = {{"IMAGE", cozy::types::IMAGE}};
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> cozy::Outputs {
    const at::Tensor& image = in.image("image");  // checked: float32 [B, C, H, W], C = 1 or 3
    ctx.log(cozy::LogLevel::debug, "gain " + std::to_string(in.number("gain")));
    return {(image * in.number("gain")).clamp(0, 1)};
  };
  return def;
}

void register_nodes(cozy::Registrar& r) { r.add(gain()); }

}  // namespace

COZY_PLUGIN("@NAME@", "0.1.0", register_nodes)
)";

const char* kTest = R"(// @CLASS@ alone, with the SDK's harness: the plugin is loaded as the host
// loads it and the node run with the host's checks.
#include <cozy/testing.hpp>

#include <ATen/ATen.h>

#include <iostream>

namespace {
int failures = 0;
void check(bool ok, const std::string& what) {
  if (ok) return;
  std::cerr << "FAILED: " << what << '\n';
  ++failures;
}
}  // namespace

int main() {
  cozy::testing::Plugin plugin(PLUGIN_FILE);
  const cozy::NodeDef& node = plugin.node("@CLASS@");
  cozy::testing::FakeContext ctx;

  at::Tensor image = at::full({1, 3, 2, 2}, 0.25f);
  cozy::Outputs out = cozy::testing::run_node(node, {{"image", image}, {"gain", 2.0}}, ctx);
  check(out.at(0).as_tensor().eq(0.5f).all().item<bool>(), "0.25 times 2 is 0.5");
  out = cozy::testing::run_node(node, {{"image", image}}, ctx);
  check(out.at(0).as_tensor().equal(image), "the default gain 1 leaves the image as it is");
  try {
    cozy::testing::run_node(node, {{"image", image}, {"gain", 9.0}}, ctx);
    check(false, "a gain out of range is refused");
  } catch (const cozy::Error& e) {
    check(std::string(e.what()).find("out of range") != std::string::npos, e.what());
  }
  if (failures == 0) std::cout << "test_@NAME@: all checks passed\n";
  return failures == 0 ? 0 : 1;
}
)";

const char* kGraph = R"({
  "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 4210752}},
  "2": {"class_type": "@CLASS@", "inputs": {"image": ["1", 0], "gain": 2.0}},
  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "@NAME@"}}
}
)";

const char* kReadme = R"(# @NAME@: a Cozy plugin

Made by `cozy new-plugin @NAME@`. One node, `@CLASS@`, in `src/@NAME@.cpp`;
its test in `tests/test_@NAME@.cpp` runs it alone with the SDK's harness
(`cozy/testing.hpp`); `graphs/@NAME@.json` uses it.

    cmake -S . -B build -DCMAKE_PREFIX_PATH=/where/cozy/is/installed
    cmake --build build && ctest --test-dir build
    cozy nodes @CLASS@ --plugins build
    cozy run graphs/@NAME@.json --plugins build

To install it, copy `build/libcozy_@NAME@.so` into a folder on
`COZY_PLUGIN_PATH`.
)";

}  // namespace

int new_plugin(const std::string& name, const std::filesystem::path& parent) {
  bool valid = !name.empty() && std::isalpha(static_cast<unsigned char>(name[0]));
  for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!valid) {
    std::cerr << "error: a plugin name is a letter then letters, digits or '_' (it names a C++ target and a "
                 "library), not '" << name << "'\n";
    return 2;
  }
  const fs::path dir = parent / name;
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    std::cerr << "error: " << dir.string() << " exists; choose another name or --dir\n";
    return 2;
  }
  const std::map<std::string, std::string> values = {{"NAME", name}, {"CLASS", camel(name) + "Gain"}};
  const std::pair<const char*, const char*> files[] = {{"CMakeLists.txt", kCMakeLists},
                                                       {"src/@NAME@.cpp", kSource},
                                                       {"tests/test_@NAME@.cpp", kTest},
                                                       {"graphs/@NAME@.json", kGraph},
                                                       {"README.md", kReadme}};
  for (const auto& [path, text] : files) {
    const fs::path file = dir / fill(path, values);
    fs::create_directories(file.parent_path(), ec);
    std::ofstream out(file);
    out << fill(text, values);
    if (!out) {
      std::cerr << "error: cannot write " << file.string() << '\n';
      return 1;
    }
    std::cout << file.string() << '\n';
  }
  std::cout << "next: cmake -S " << dir.string() << " -B " << (dir / "build").string()
            << " -DCMAKE_PREFIX_PATH=<where Cozy is installed> && cmake --build " << (dir / "build").string()
            << " && ctest --test-dir " << (dir / "build").string() << '\n';
  return 0;
}

}  // namespace cozy::cli
