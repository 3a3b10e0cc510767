#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/version.hpp>

#include <torch/version.h>

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <algorithm>
#include <fstream>

namespace cozy::host {
namespace {

namespace fs = std::filesystem;

fs::path test_plugin(const std::string& kind) {
  return fs::path(COZY_TEST_PLUGIN_DIR) / kind / ("libcozy_test_" + kind + ".so");
}

std::string load_error(const std::string& kind, Registry& registry) {
  const PluginRecord& record = registry.load_plugin(test_plugin(kind));
  EXPECT_FALSE(record.loaded);
  EXPECT_EQ(record.file, test_plugin(kind));
  return record.error;
}

bool mapped(const std::string& library_name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(library_name) != std::string::npos) return true;
  return false;
}

TEST(PluginLoading, TheCorePluginLoadsWithItsNodes) {
  Registry registry;
  registry.load_folder(COZY_PLUGIN_DIR);
  auto core_record = std::find_if(registry.plugins().begin(), registry.plugins().end(),
                                  [](const PluginRecord& p) { return p.name == "core"; });
  ASSERT_NE(core_record, registry.plugins().end());
  const PluginRecord& core = *core_record;
  EXPECT_TRUE(core.loaded) << core.error;
  EXPECT_EQ(core.name, "core");
  EXPECT_GT(core.load_ms, 0.0);
  for (const char* type : {"Int", "Float", "String", "Boolean", "Seed", "LoadImage", "SaveImage", "PreviewImage",
                           "ImageGrid", "EmptyImage"})
    EXPECT_NE(registry.find(type), nullptr) << type;
}

TEST(PluginLoading, AFileThatIsNotALibrary) {
  fs::path dir = fs::temp_directory_path() / "cozy_not_a_plugin";
  fs::create_directories(dir);
  fs::path fake = dir / "libfake.so";
  std::ofstream(fake) << "this is not a shared library\n";
  Registry registry;
  const PluginRecord& record = registry.load_plugin(fake);
  EXPECT_FALSE(record.loaded);
  EXPECT_EQ(record.file, fake);
  EXPECT_NE(record.error.find("not a loadable shared library"), std::string::npos) << record.error;
}

TEST(PluginLoading, AMissingFile) {
  Registry registry;
  const PluginRecord& record = registry.load_plugin("/nonexistent/libcozy_nothing.so");
  EXPECT_FALSE(record.loaded);
  EXPECT_NE(record.error.find("not a loadable shared library"), std::string::npos) << record.error;
}

TEST(PluginLoading, ALibraryWithoutTheEntryPoint) {
  Registry registry;
  EXPECT_EQ(load_error("missing_entry", registry), "not a Cozy plugin: it exports no entry point 'cozy_plugin'");
}

TEST(PluginLoading, AnotherSdkMajorVersion) {
  Registry registry;
  EXPECT_EQ(load_error("abi_major", registry),
            "built for SDK ABI " + std::to_string(COZY_SDK_ABI_MAJOR + 1) + ".0, but the host has SDK ABI " +
                std::to_string(COZY_SDK_ABI_MAJOR) + "." + std::to_string(COZY_SDK_ABI_MINOR) + " (major versions differ)");
}

TEST(PluginLoading, ANewerSdkMinorVersion) {
  Registry registry;
  const std::string major = std::to_string(COZY_SDK_ABI_MAJOR) + ".";
  const std::string host = major + std::to_string(COZY_SDK_ABI_MINOR);
  const std::string newer = major + std::to_string(COZY_SDK_ABI_MINOR + 1);
  EXPECT_EQ(load_error("abi_minor", registry), "built for SDK ABI " + newer + ", newer than the host's SDK ABI " + host);
}

TEST(PluginLoading, AnotherLibTorchVersion) {
  Registry registry;
  EXPECT_EQ(load_error("torch_version", registry),
            std::string("built against LibTorch 0.0.1, but the host runs LibTorch ") + TORCH_VERSION);
}

TEST(PluginLoading, AnotherCompilerAbi) {
  Registry registry;
  EXPECT_EQ(load_error("compiler_abi", registry),
            std::string("built with compiler ABI some-other-compiler, but the host has ") + COZY_COMPILER_ABI);
}

TEST(PluginLoading, AnExceptionWhileRegistering) {
  Registry registry;
  EXPECT_EQ(load_error("throws", registry), "threw while registering its nodes: the test plugin refuses to register");
}

TEST(PluginLoading, ANodeTypeAnotherPluginRegisteredAddsNothing) {
  Registry registry;
  ASSERT_TRUE(registry.load_plugin(test_plugin("objects")).loaded);
  EXPECT_EQ(load_error("duplicate", registry),
            "registers node type TestObjectSource, which plugin 'test-plugin-objects' already registered");
  EXPECT_EQ(registry.find("TestUnique"), nullptr) << "a plugin that clashes adds none of its nodes";
}

TEST(PluginLoading, TheSamePluginTwiceIsRefusedTheSecondTime) {
  Registry registry;
  ASSERT_TRUE(registry.load_plugin(test_plugin("objects")).loaded);
  fs::path copy = fs::temp_directory_path() / "cozy_plugin_copy" / "libcozy_test_objects_copy.so";
  fs::create_directories(copy.parent_path());
  fs::copy_file(test_plugin("objects"), copy, fs::copy_options::overwrite_existing);
  const PluginRecord& second = registry.load_plugin(copy);
  EXPECT_FALSE(second.loaded);
  EXPECT_EQ(second.error, "plugin 'test-plugin-objects' is already loaded from " + test_plugin("objects").string());
}

TEST(PluginLoading, TheHostGoesOnAfterFailures) {
  fs::path dir = fs::temp_directory_path() / "cozy_mixed_plugins";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* kind : {"abi_major", "throws", "missing_entry", "objects", "torch_version"})
    fs::copy_file(test_plugin(kind), dir / test_plugin(kind).filename());
  std::ofstream(dir / "libgarbage.so") << "garbage";
  std::ofstream(dir / "README.txt") << "not a library name: ignored";
  Registry registry;
  registry.load_folder(dir);
  ASSERT_EQ(registry.plugins().size(), 6u);
  int loaded = 0;
  for (const auto& p : registry.plugins()) {
    loaded += p.loaded;
    if (!p.loaded) {
      EXPECT_FALSE(p.error.empty()) << p.file;
    }
  }
  EXPECT_EQ(loaded, 1);
  EXPECT_NE(registry.find("TestObjectSource"), nullptr);
}

TEST(PluginLoading, AMissingFolderIsReported) {
  Registry registry;
  registry.load_folder("/nonexistent/cozy/plugins");
  ASSERT_EQ(registry.plugins().size(), 1u);
  EXPECT_EQ(registry.plugins()[0].error, "plugin folder does not exist");
}

TEST(PluginLoading, AnObjectKeepsItsPluginLoaded) {
  ObjectPtr object;
  {
    auto registry = std::make_shared<Registry>();
    ASSERT_TRUE(registry->load_plugin(test_plugin("objects")).loaded);
    Executor executor(registry);
    ParseResult parsed = parse_graph(R"({"1": {"class_type": "TestObjectSource"}})");
    RunOptions options;
    options.use_cache = false;
    RunReport report = executor.run(*parsed.graph, options);
    ASSERT_TRUE(report.success);
    object = report.outputs.at("1").at(0).as_object();
  }
  // Registry and executor are gone; the object's code is still there.
  EXPECT_TRUE(mapped("libcozy_test_objects.so"));
  EXPECT_EQ(object->type_name(), "GREETER");
  object.reset();
  EXPECT_FALSE(mapped("libcozy_test_objects.so")) << "the plugin stays loaded after its last object is gone";
}

// An object made in one plugin is cast to the SDK's interfaces in another,
// both built with hidden visibility and loaded RTLD_LOCAL: the interfaces'
// type_info is exported (COZY_INTERFACE), so the casts find one identity.
TEST(PluginLoading, ObjectsCrossPluginsThroughTheSdksInterfaces) {
  auto registry = std::make_shared<Registry>();
  ASSERT_TRUE(registry->load_plugin(test_plugin("maker")).loaded);
  ASSERT_TRUE(registry->load_plugin(test_plugin("user")).loaded);
  Executor executor(registry);
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "TestMakeGenerator"},
                                       "2": {"class_type": "TestUseGenerator", "inputs": {"generator": ["1", 0]}}})");
  RunOptions options;
  RunReport report = executor.run(*parsed.graph, options);
  ASSERT_TRUE(report.success) << report.failures.at(0).message;
  EXPECT_EQ(report.outputs.at("2").at(0).as_string(), "savable tunable 4");

  // The interfaces' type_info is in each plugin's dynamic symbol table.
  void* maker = dlopen(test_plugin("maker").c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  ASSERT_NE(maker, nullptr);
  for (const char* symbol : {"_ZTIN4cozy12SavableModelE", "_ZTIN4cozy15FeedbackTunableE", "_ZTIN4cozy9GeneratorE",
                             "_ZTIN4cozy6ObjectE"})
    EXPECT_NE(dlsym(maker, symbol), nullptr) << symbol << " is not exported";
  dlclose(maker);
}

// Specs are checked when a plugin loads: one mistake a plugin, each with its
// message naming the node and the input; the plugin loads no node.
std::string mistake_error(const char* mistake) {
  setenv("COZY_TEST_MISTAKE", mistake, 1);
  Registry registry;
  const PluginRecord& record = registry.load_plugin(test_plugin("mistakes"));
  unsetenv("COZY_TEST_MISTAKE");
  EXPECT_FALSE(record.loaded) << mistake;
  EXPECT_TRUE(registry.class_types().empty());
  return record.error;
}

TEST(PluginLoading, EveryMistakeInASpecIsRefusedWithItsReason) {
  const std::string prefix = "declares its nodes wrongly: node Mistaken";
  EXPECT_EQ(mistake_error("default_out_of_range"), prefix + ", input 'strength' has default 2 outside its range [0, 1]");
  EXPECT_EQ(mistake_error("min_above_max"),
            prefix + ", input 'count' has min 10 above max 1; node Mistaken, input 'count' has default 5 outside its "
                     "range [10, 1]");
  EXPECT_EQ(mistake_error("default_not_a_choice"), prefix + ", input 'mode' has default 'best', which is not among its choices");
  EXPECT_EQ(mistake_error("empty_choice"), prefix + ", input 'mode' is a choice without options");
  EXPECT_EQ(mistake_error("two_inputs"), prefix + ", input 'image' is declared twice (inputs 0 and 1)");
  EXPECT_EQ(mistake_error("two_outputs"), prefix + ", output 'IMAGE' is declared twice (outputs 0 and 1)");
  EXPECT_EQ(mistake_error("no_run"), prefix + " has no run function");
  EXPECT_EQ(mistake_error("empty_class_type"), "declares its nodes wrongly: node (no class_type) has an empty class_type");
  EXPECT_EQ(mistake_error("quote_in_class_type"),
            "declares its nodes wrongly: node Bad\"Name has class_type 'Bad\"Name' with a control character, quote or "
            "backslash");
  EXPECT_EQ(mistake_error("several"),
            prefix + " has no run function; node Mistaken, input 'strength' has default 2 outside its range [0, 1]");
}

TEST(PluginLoading, ATypeNameNoNodeMakesIsAWarningWithASuggestion) {
  setenv("COZY_TEST_MISTAKE", "type_typo", 1);
  Registry registry;
  registry.load_folder(COZY_PLUGIN_DIR);
  ASSERT_TRUE(registry.load_plugin(test_plugin("mistakes")).loaded) << "a type name is not a mistake the host can know";
  unsetenv("COZY_TEST_MISTAKE");
  const std::vector<std::string> warnings = registry.type_warnings();
  EXPECT_NE(std::find(warnings.begin(), warnings.end(), "IMAEG: consumed by Mistaken, made by no node; did you mean IMAGE?"),
            warnings.end())
      << ::testing::PrintToString(warnings);
}

TEST(PluginLoading, AValueThatDoesNotFitItsOutputFailsTheNodeThatReturnedIt) {
  setenv("COZY_TEST_MISTAKE", "wrong_output", 1);
  auto registry = std::make_shared<Registry>();
  registry->load_folder(COZY_PLUGIN_DIR);
  ASSERT_TRUE(registry->load_plugin(test_plugin("mistakes")).loaded);
  unsetenv("COZY_TEST_MISTAKE");
  Executor executor(registry);
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "EmptyImage"},
                                       "2": {"class_type": "Mistaken", "inputs": {"image": ["1", 0]}},
                                       "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}})");
  RunOptions options;
  options.output_dir = fs::temp_directory_path() / "cozy_wrong_output";
  RunReport report = executor.run(*parsed.graph, options);
  ASSERT_EQ(report.failures.size(), 1u);
  EXPECT_EQ(report.failures[0].node_id, "2");
  EXPECT_EQ(report.failures[0].message, "output 0 'IMAGE' is declared IMAGE (a tensor) but is a value of type INT");
  EXPECT_EQ(report.skipped, std::vector<std::string>{"3"}) << "SaveImage is not blamed";
  fs::remove_all(options.output_dir);
}

TEST(PluginLoading, TheShippedPluginsHaveNoTypeWarnings) {
  Registry registry;
  registry.load_folder(COZY_PLUGIN_DIR);
  EXPECT_EQ(registry.type_warnings(), std::vector<std::string>{});
}

TEST(PluginLoading, SearchPathTakesEnvironmentThenExtraFoldersOnce) {
  setenv("COZY_PLUGIN_PATH", "/tmp/a:/tmp/b::/tmp/a", 1);
  auto folders = plugin_search_path({"/tmp/c", "/tmp/b"});
  unsetenv("COZY_PLUGIN_PATH");
  std::vector<fs::path> tail(folders.end() - 3, folders.end());
  EXPECT_EQ(tail, (std::vector<fs::path>{"/tmp/a", "/tmp/b", "/tmp/c"}));
}

TEST(ObjectInfo, HasTheShapeOfComfyUIsObjectInfo) {
  NodeSpec spec;
  spec.class_type = "Blur";
  spec.display_name = "Gaussian Blur";
  spec.category = "image/filter";
  spec.description = "blurs";
  spec.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Float("sigma", 1.0).range(0, 100).with_step(0.1),
                 InputSpec::Choice("mode", {"reflect", "zero"}), InputSpec::Link("mask", types::MASK).optional()};
  spec.outputs = {{"IMAGE", types::IMAGE}};
  nlohmann::json info = object_info(spec);
  EXPECT_EQ(info["input"]["required"]["image"], nlohmann::json::array({"IMAGE"}));
  EXPECT_EQ(info["input"]["required"]["sigma"][0], "FLOAT");
  EXPECT_EQ(info["input"]["required"]["sigma"][1]["default"], 1.0);
  EXPECT_EQ(info["input"]["required"]["sigma"][1]["max"], 100.0);
  EXPECT_EQ(info["input"]["required"]["mode"][0], nlohmann::json::array({"reflect", "zero"}));
  EXPECT_EQ(info["input"]["optional"]["mask"][0], "MASK");
  EXPECT_EQ(info["input_order"]["required"], nlohmann::json::array({"image", "sigma", "mode"}));
  EXPECT_EQ(info["input_order"]["optional"], nlohmann::json::array({"mask"}));
  EXPECT_EQ(info["output"], nlohmann::json::array({"IMAGE"}));
  EXPECT_EQ(info["output_name"], nlohmann::json::array({"IMAGE"}));
  EXPECT_EQ(info["name"], "Blur");
  EXPECT_EQ(info["display_name"], "Gaussian Blur");
  EXPECT_EQ(info["category"], "image/filter");
  EXPECT_EQ(info["description"], "blurs");
  EXPECT_EQ(info["output_node"], false);
  EXPECT_EQ(info["output_is_list"], nlohmann::json::array({false}));
  EXPECT_EQ(info["is_input_list"], false);
}

// What a spec says for an editor only (ComfyUI's control_after_generate,
// display, deprecated...) is merged into object_info; lists are declared.
TEST(ObjectInfo, CarriesEditorOptionsAndLists) {
  NodeSpec spec;
  spec.class_type = "Seeds";
  spec.inputs = {InputSpec::Int("seed", 0).with_ui(R"({"control_after_generate": true})")};
  spec.outputs = {{"INT", types::INT, /*is_list=*/true}};
  spec.input_is_list = true;
  spec.ui = R"({"deprecated": true})";
  nlohmann::json info = object_info(spec);
  EXPECT_EQ(info["input"]["required"]["seed"][1]["control_after_generate"], true);
  EXPECT_EQ(info["input"]["required"]["seed"][1]["default"], 0);
  EXPECT_EQ(info["output_is_list"], nlohmann::json::array({true}));
  EXPECT_EQ(info["is_input_list"], true);
  EXPECT_EQ(info["deprecated"], true);

  Registry registry;
  NodeDef def;
  def.spec = spec;
  def.spec.inputs[0].ui = "{control_after_generate: true}";
  def.run = [](const Inputs&, Context&) -> Outputs { return {Value(List{})}; };
  try {
    registry.add(def);
    ADD_FAILURE() << "a spec with ui options that are not JSON was added";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "node Seeds, input 'seed' has ui options that are not a JSON object: {control_after_generate: true}");
  }
}

}  // namespace
}  // namespace cozy::host
