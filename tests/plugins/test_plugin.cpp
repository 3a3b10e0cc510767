// One source, compiled once per way a plugin can fail to load (and once as a
// working plugin that hands out objects). COZY_TEST_<KIND> picks the way.
#include <cozy/sdk.hpp>

#include <atomic>

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
