// One source, compiled once per way a plugin can fail to load (and once as a
// working plugin that hands out objects). COZY_TEST_<KIND> picks the way.
#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>

namespace {

void register_nodes(cozy::Registrar& r) {
#if defined(COZY_TEST_THROWS)
  (void)r;
  throw cozy::Error("the test plugin refuses to register");
#elif defined(COZY_TEST_DUPLICATE)
  cozy::NodeDef def;
  def.spec.class_type = "TestUnique";
  def.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs { return {}; };
  r.add(def);
  def.spec.class_type = "TestObjectSource";  // also registered by the "objects" plugin
  r.add(def);
#elif defined(COZY_TEST_OBJECTS)
  // An object whose code lives in this library: the host must keep the
  // library loaded while the object is alive.
  struct Greeter : cozy::Object {
    std::string type_name() const override { return "GREETER"; }
    virtual std::string greet() const { return "hello from the plugin"; }
  };
  cozy::NodeDef def;
  def.spec.class_type = "TestObjectSource";
  def.spec.outputs = {{"greeter", "GREETER"}};
  def.spec.output_node = true;
  def.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs { return {std::make_shared<Greeter>()}; };
  r.add(def);
  // A LibTorch error, with the C++ backtrace LibTorch puts in what().
  cozy::NodeDef torch_error = cozy::NodeDef::named("TestTorchError", "Test Torch Error", "test", "fails in LibTorch");
  torch_error.spec.output_node = true;
  torch_error.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs {
    at::Tensor a = at::zeros({2, 3}), b = at::zeros({4, 5});
    return {a.mm(b)};  // the shapes cannot be multiplied
  };
  r.add(torch_error);
  // Kills its own process, as the kernel's OOM killer would: a prompt that
  // no worker survives.
  cozy::NodeDef crash = cozy::NodeDef::named("TestCrash", "Test Crash", "test", "kills the process that runs it");
  crash.spec.output_node = true;
  crash.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs {
    std::raise(SIGKILL);
    return {};
  };
  r.add(crash);
#elif defined(COZY_TEST_MISTAKES)
  // One mistake in a declaration, chosen by COZY_TEST_MISTAKE when the host
  // loads the plugin: each test loads it with one.
  const std::string mistake = std::getenv("COZY_TEST_MISTAKE") ? std::getenv("COZY_TEST_MISTAKE") : "";
  using cozy::InputSpec;
  cozy::NodeDef def = cozy::NodeDef::named("Mistaken", "Mistaken", "test", "a node with one mistake");
  def.spec.inputs = {InputSpec::Link("image", cozy::types::IMAGE)};
  def.spec.outputs = {{"IMAGE", cozy::types::IMAGE}};
  def.run = [](const cozy::Inputs& in, cozy::Context&) -> cozy::Outputs { return {in["image"]}; };
  if (mistake == "default_out_of_range") def.spec.inputs.push_back(InputSpec::Float("strength", 2.0).range(0, 1));
  if (mistake == "min_above_max") def.spec.inputs.push_back(InputSpec::Int("count", 5).range(10, 1));
  if (mistake == "default_not_a_choice") {
    def.spec.inputs.push_back(InputSpec::Choice("mode", {"fast", "good"}));
    def.spec.inputs.back().default_value = std::string("best");
  }
  if (mistake == "empty_choice") def.spec.inputs.push_back(InputSpec::Choice("mode", {}));
  if (mistake == "two_inputs") def.spec.inputs.push_back(InputSpec::Float("image", 1.0));
  if (mistake == "two_outputs") def.spec.outputs.push_back({"IMAGE", cozy::types::MASK});
  if (mistake == "no_run") def.run = nullptr;
  if (mistake == "empty_class_type") def.spec.class_type = "";
  if (mistake == "quote_in_class_type") def.spec.class_type = "Bad\"Name";
  if (mistake == "several") {
    def.spec.inputs.push_back(InputSpec::Float("strength", 2.0).range(0, 1));
    def.run = nullptr;
  }
  if (mistake == "type_typo") def.spec.inputs.push_back(InputSpec::Link("mask", "IMAEG").optional());
  if (mistake == "wrong_output")  // declares an IMAGE, returns an INT: found when it runs
    def.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs { return {std::int64_t{7}}; };
  r.add(def);
#elif defined(COZY_TEST_MAKER)
  // A generator whose class only this library knows, seen by others through
  // the SDK's interfaces (Generator, SavableModel, FeedbackTunable).
  struct Made : cozy::Generator, cozy::SavableModel, cozy::FeedbackTunable {
    std::int64_t latent_size() const override { return 4; }
    std::int64_t num_classes() const override { return 0; }
    const std::vector<std::string>& class_names() const override { return names; }
    std::vector<std::int64_t> image_shape() const override { return {1, 2, 2}; }
    c10::Device device() const override { return c10::Device(c10::kCPU); }
    at::Tensor generate(const at::Tensor& z, const at::Tensor&) const override { return z.view({-1, 1, 2, 2}); }
    void save(const std::filesystem::path& file) const override { std::ofstream(file) << "made"; }
    std::shared_ptr<cozy::Generator> tune_on_feedback(const Request&, cozy::Context&) const override {
      return std::make_shared<Made>();
    }
    std::vector<std::string> names;
  };
  cozy::NodeDef def;
  def.spec.class_type = "TestMakeGenerator";
  def.spec.outputs = {{"GENERATOR", cozy::types::GENERATOR}};
  def.run = [](const cozy::Inputs&, cozy::Context&) -> cozy::Outputs {
    return {std::static_pointer_cast<cozy::Generator>(std::make_shared<Made>())};
  };
  r.add(def);
#elif defined(COZY_TEST_USER)
  // Casts what another plugin made to the SDK's interfaces.
  cozy::NodeDef def;
  def.spec.class_type = "TestUseGenerator";
  def.spec.inputs = {cozy::InputSpec::Link("generator", cozy::types::GENERATOR)};
  def.spec.outputs = {{"found", cozy::types::STRING}};
  def.spec.output_node = true;
  def.run = [](const cozy::Inputs& in, cozy::Context&) -> cozy::Outputs {
    auto generator = in.object<cozy::Generator>("generator");
    std::string found;
    if (std::dynamic_pointer_cast<cozy::SavableModel>(generator)) found += "savable ";
    if (std::dynamic_pointer_cast<cozy::FeedbackTunable>(generator)) found += "tunable ";
    found += std::to_string(generator->generate(at::zeros({1, 4}), at::Tensor()).numel());
    return {found};
  };
  r.add(def);
#else
  (void)r;
#endif
}

#if !defined(COZY_TEST_MISSING_ENTRY)
const cozy::PluginDescriptor* descriptor() {
  static const cozy::PluginDescriptor d{
      sizeof(cozy::PluginDescriptor),
#if defined(COZY_TEST_ABI_MAJOR)
      COZY_SDK_ABI_MAJOR + 1, 0,
#elif defined(COZY_TEST_ABI_MINOR)
      COZY_SDK_ABI_MAJOR, COZY_SDK_ABI_MINOR + 1,
#else
      COZY_SDK_ABI_MAJOR, COZY_SDK_ABI_MINOR,
#endif
#if defined(COZY_TEST_TORCH_VERSION)
      "0.0.1",
#else
      TORCH_VERSION,
#endif
#if defined(COZY_TEST_COMPILER_ABI)
      "some-other-compiler",
#else
      COZY_COMPILER_ABI,
#endif
      "test-plugin-" COZY_STRINGIFY(COZY_TEST_KIND_NAME), "9.9.9", &register_nodes};
  return &d;
}
BOOST_DLL_ALIAS(descriptor, cozy_plugin)
#else
// A shared library with code but no entry point.
extern "C" BOOST_SYMBOL_EXPORT int cozy_test_not_an_entry_point() { return 42; }
#endif

}  // namespace
