// HelloTint alone, with the SDK's harness (cozy/testing.hpp): the plugin is
// loaded as the host loads it, the node run with the host's checks.
#include <cozy/testing.hpp>

#include <ATen/ATen.h>

#include <iostream>

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "FAILED: " << what << '\n';
    ++failures;
  }
}

}  // namespace

int main() {
  cozy::testing::Plugin plugin(HELLO_PLUGIN);
  const cozy::NodeDef& tint = plugin.node("HelloTint");
  cozy::testing::FakeContext ctx;

  // Gains per channel, clamped to [0, 1].
  at::Tensor grey = at::full({1, 3, 2, 2}, 0.5f);
  cozy::Outputs out = cozy::testing::run_node(tint, {{"image", grey}, {"red", 2.0}, {"blue", 0.0}}, ctx);
  const at::Tensor& tinted = out.at(0).as_tensor();
  check(tinted.select(1, 0).eq(1.0f).all().item<bool>(), "red doubled and clamped to 1");
  check(tinted.select(1, 1).eq(0.5f).all().item<bool>(), "green left at its default gain 1");
  check(tinted.select(1, 2).eq(0.0f).all().item<bool>(), "blue at gain 0");

  // What the host refuses, the harness refuses, with the host's words.
  auto refused = [&](const std::map<std::string, cozy::Value>& inputs, const std::string& expected) {
    try {
      cozy::testing::run_node(tint, inputs, ctx);
      check(false, "expected the error: " + expected);
    } catch (const cozy::Error& e) {
      check(std::string(e.what()).find(expected) != std::string::npos, std::string("message: ") + e.what());
    }
  };
  refused({{"image", grey}, {"red", 5.0}}, "input 'red': 5 is out of range [0, 4]");
  refused({{"red", 1.0}}, "input 'image': missing required input of type IMAGE");
  refused({{"image", at::zeros({1, 1, 2, 2})}}, "HelloTint needs a colour image");
  refused({{"image", at::zeros({2, 2})}}, "input 'image' is not an IMAGE");
  refused({{"image", grey}, {"alpha", 1.0}}, "node HelloTint has no input 'alpha'");
  refused({{"image", grey}, {"red", std::string("lots")}}, "input 'red' is declared FLOAT (a number) but is a value of type STRING");
  try {
    cozy::testing::Plugin missing("no-such-plugin.so");
    check(false, "a missing library is refused");
  } catch (const cozy::Error& e) {
    check(std::string(e.what()).find("cannot load no-such-plugin.so") != std::string::npos, e.what());
  }
  try {
    plugin.node("HelloNope");
    check(false, "an unknown node is refused");
  } catch (const cozy::Error& e) {
    check(std::string(e.what()) == "plugin hello has no node HelloNope", e.what());
  }

  if (failures == 0) std::cout << "test_hello: all checks passed\n";
  return failures == 0 ? 0 : 1;
}
