// One source, compiled once per way a plugin can fail to load (and once as a
// working plugin that hands out objects). COZY_TEST_<KIND> picks the way.
#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <atomic>
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
