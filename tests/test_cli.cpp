// The `cozy` command line, end to end: exit codes, messages, outputs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the program with `args`, in `cwd` when given.
Result cozy(const std::string& args, const fs::path& cwd = {}) {
  fs::path err_file = fs::temp_directory_path() / ("cozy_cli_err_" + std::to_string(::getpid()));
  std::string command = std::string(COZY_BINARY) + " " + args + " 2>" + err_file.string();
  if (!cwd.empty()) command = "cd '" + cwd.string() + "' && " + command;
  Result r;
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp(err_file);
  fs::remove(err_file);
  return r;
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("cozy_cli_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_graph(const fs::path& dir, const std::string& text) {
  std::ofstream(dir / "graph.json") << text;
  return dir / "graph.json";
}

const char* kSmallGraph = R"({
  "1": {"class_type": "EmptyImage", "inputs": {"width": 5, "height": 3, "batch_size": 2}},
  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "small"}}})";

// Width of a PNG from its IHDR chunk.
uint32_t png_width(const fs::path& file) {
  std::string bytes = slurp(file);
  if (bytes.size() < 24) return 0;
  auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])); };
  return b(16) << 24 | b(17) << 16 | b(18) << 8 | b(19);
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* sub : {"", "run", "validate", "nodes", "plugins", "serve", "convert", "new-plugin"}) {
    Result r = cozy(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub << ": " << r.out;
  }
  EXPECT_NE(cozy("run --help").out.find("--set"), std::string::npos);
  EXPECT_NE(cozy("run --help").out.find("--jobs"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWith2) {
  EXPECT_EQ(cozy("").code, 2);
  EXPECT_EQ(cozy("frobnicate").code, 2);
  EXPECT_EQ(cozy("run").code, 2);
  EXPECT_EQ(cozy("run x.json --jobs -1").code, 2);
  EXPECT_EQ(cozy("run x.json --progress loud").code, 2);
  Result missing = cozy("run /nonexistent/graph.json");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("cannot read graph file /nonexistent/graph.json"), std::string::npos) << missing.err;
}

TEST(Cli, ValidateSaysValidOrListsEveryError) {
  fs::path dir = scratch("validate");
  Result ok = cozy("validate " + write_graph(dir, kSmallGraph).string());
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("valid (2 nodes)"), std::string::npos);

  Result bad = cozy("validate " + write_graph(dir, R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "bit_depth": "12"}}})").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("2 errors"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("node 1 (EmptyImage), input 'width': 0 is out of range [1, 16384]"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("node 2 (SaveImage), input 'bit_depth': '12' is not among the choices: 8, 16"),
            std::string::npos) << bad.err;

  Result malformed = cozy("validate " + write_graph(dir, "{\n  \"1\": }").string());
  EXPECT_EQ(malformed.code, 2);
  EXPECT_NE(malformed.err.find("malformed JSON at line 2, column 8"), std::string::npos) << malformed.err;
}

TEST(Cli, RunWritesImagesAndPrintsTheirPaths) {
  fs::path dir = scratch("run");
  Result r = cozy("run " + write_graph(dir, kSmallGraph).string() + " --output-dir " + (dir / "out").string() +
                  " --progress none");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "small_00001.png"));
  EXPECT_TRUE(fs::exists(dir / "out" / "small_00002.png"));
  EXPECT_NE(r.out.find((dir / "out" / "small_00002.png").string()), std::string::npos) << r.out;
  EXPECT_EQ(png_width(dir / "out" / "small_00001.png"), 5u);
}

// A 2 x 3 x 1024 x 768 batch (18 MiB) comes from the host's pool of large
// pages, or with --no-large-pages from LibTorch's allocator: the same files.
TEST(Cli, RunsWithAndWithoutLargePages) {
  fs::path dir = scratch("pages");
  fs::path graph = write_graph(dir, kSmallGraph);
  for (const char* pages : {"", " --no-large-pages"}) {
    const fs::path out = dir / (*pages ? "small" : "large");
    Result r = cozy("run " + graph.string() + " --set 1.width=1024 --set 1.height=768 --output-dir " + out.string() +
                    " --progress none" + pages);
    EXPECT_EQ(r.code, 0) << pages << ": " << r.err;
    EXPECT_EQ(png_width(out / "small_00002.png"), 1024u) << pages;
  }
  EXPECT_EQ(slurp(dir / "large" / "small_00001.png"), slurp(dir / "small" / "small_00001.png"));
}

TEST(Cli, SetOverridesALiteral) {
  fs::path dir = scratch("set");
  fs::path graph = write_graph(dir, kSmallGraph);
  Result r = cozy("run " + graph.string() + " --set 1.width=7 --set 2.filename_prefix=wide --output-dir " +
                  (dir / "out").string() + " --progress none");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(png_width(dir / "out" / "wide_00001.png"), 7u);

  Result bad = cozy("run " + graph.string() + " --set 1.width=0 --output-dir " + (dir / "out2").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("input 'width': 0 is out of range"), std::string::npos) << bad.err;
  Result no_node = cozy("run " + graph.string() + " --set 9.width=3");
  EXPECT_EQ(no_node.code, 2);
  EXPECT_NE(no_node.err.find("--set 9.width=3: there is no node 9"), std::string::npos) << no_node.err;
}

TEST(Cli, AnInvalidGraphRunsNothingAndWritesNothing) {
  fs::path dir = scratch("invalid");
  Result r = cozy("run " + write_graph(dir, R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 1]}}})").string() +
                  " --output-dir " + (dir / "out").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(Cli, AFailingNodeExitsWith1AndNamesTheNode) {
  fs::path dir = scratch("failing");
  std::ofstream(dir / "corrupt.png") << "not an image";  // validates (the file is there), fails when read
  Result r = cozy("run " + write_graph(dir, R"({
    "1": {"class_type": "LoadImage", "inputs": {"image": "corrupt.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    "3": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "independent"}}})").string() +
                  " --input-dir " + dir.string() + " --output-dir " + (dir / "out").string() + " --progress none");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: node 1 (LoadImage): cannot read image"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 node(s) skipped"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "independent_00001.png")) << "the independent branch finished";
}

TEST(Cli, ManyFilesArePrintedAsASummaryUnlessEveryPathIsAsked) {
  fs::path dir = scratch("many_files");
  const std::string graph = write_graph(dir, R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 12}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "many/pic"}}})").string();
  Result summary = cozy("run " + graph + " --output-dir " + (dir / "out").string() + " --progress none");
  ASSERT_EQ(summary.code, 0) << summary.err;
  EXPECT_EQ(summary.out, "wrote 12 files in " + (dir / "out" / "many").string() +
                             " (12); the first: pic_00001.png, pic_00002.png, pic_00003.png; --list-files prints every path\n");
  Result every = cozy("run " + graph + " --output-dir " + (dir / "out").string() + " --progress none --list-files");
  ASSERT_EQ(every.code, 0) << every.err;
  EXPECT_EQ(std::count(every.out.begin(), every.out.end(), '\n'), 12);
  EXPECT_NE(every.out.find((dir / "out" / "many" / "pic_00024.png").string()), std::string::npos) << every.out;
}

TEST(Cli, ALibTorchErrorIsOneSentenceAndItsBacktraceIsBehindVerbose) {
  fs::path dir = scratch("torch_error");
  const std::string graph = write_graph(dir, R"({"1": {"class_type": "TestTorchError"}})").string();
  const std::string args = "run " + graph + " --plugins " + COZY_TEST_PLUGIN_DIR + "/objects --progress none";
  Result plain = cozy(args);
  EXPECT_EQ(plain.code, 1);
  EXPECT_NE(plain.err.find("error: node 1 (TestTorchError): "), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("cannot be multiplied"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("Exception raised from"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("frame #"), std::string::npos) << plain.err;
  Result verbose = cozy(args + " --verbose");
  EXPECT_EQ(verbose.code, 1);
  EXPECT_NE(verbose.err.find("Exception raised from"), std::string::npos) << verbose.err;
}

TEST(Cli, ProgressJsonIsOneEventPerLine) {
  fs::path dir = scratch("json");
  Result r = cozy("run " + write_graph(dir, kSmallGraph).string() + " --output-dir " + (dir / "out").string() +
                  " --progress json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<std::string> types;
  while (std::getline(lines, line)) types.push_back(nlohmann::json::parse(line).at("type"));
  ASSERT_GE(types.size(), 2u);
  EXPECT_EQ(types.front(), "execution_start");
  EXPECT_EQ(types[types.size() - 2], "execution_success");
  EXPECT_EQ(types.back(), "executing") << "node null: the run is over";
  EXPECT_NE(std::find(types.begin(), types.end(), "executing"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "executed"), types.end());
}

TEST(Cli, UnknownDeviceIsAUsageError) {
  fs::path dir = scratch("device");
  fs::path graph = write_graph(dir, kSmallGraph);
  Result r = cozy("run " + graph.string() + " --device tpu");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--device must be auto, cpu, cuda or cuda:N"), std::string::npos) << r.err;
  EXPECT_EQ(cozy("run " + graph.string() + " --device cpu --output-dir " + (dir / "o").string()).code, 0);
  // On a machine without CUDA (CI's), asking for it is a usage error.
  Result cuda = cozy("run " + graph.string() + " --device cuda --output-dir " + (dir / "o").string());
  if (cuda.code == 2) {
    EXPECT_NE(cuda.err.find("--device cuda: this LibTorch has no CUDA, or no GPU is visible"), std::string::npos)
        << cuda.err;
  } else {
    EXPECT_EQ(cuda.code, 0) << "a machine with CUDA runs the graph there";
  }
}

TEST(Cli, NodesJsonHasTheShapeOfObjectInfo) {
  Result r = cozy("nodes --json");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json info = nlohmann::json::parse(r.out);
  const auto& save = info.at("SaveImage");
  EXPECT_EQ(save["input"]["required"]["images"], nlohmann::json::array({"IMAGE"}));
  EXPECT_EQ(save["input"]["optional"]["bit_depth"][0], nlohmann::json::array({"8", "16"}));
  EXPECT_EQ(save["input_order"]["required"], nlohmann::json::array({"images", "filename_prefix"}));
  EXPECT_EQ(save["input_order"]["optional"], nlohmann::json::array({"bit_depth"}));
  EXPECT_EQ(save["output_node"], true);
  EXPECT_EQ(save["category"], "image");
  EXPECT_EQ(info.at("LoadImage")["output"], nlohmann::json::array({"IMAGE", "MASK"}));
  EXPECT_EQ(info.at("LoadImage")["output_name"], nlohmann::json::array({"IMAGE", "MASK"}));

  Result one = cozy("nodes ImageGrid --json");
  EXPECT_EQ(nlohmann::json::parse(one.out).size(), 1u);
}

TEST(Cli, NodesDescribesOneNodeOrRefusesAnUnknownOne) {
  Result r = cozy("nodes ImageGrid");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("columns: INT = 0 in [0"), std::string::npos) << r.out;
  Result list = cozy("nodes");
  EXPECT_NE(list.out.find("SaveImage"), std::string::npos);
  Result unknown = cozy("nodes Nope");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown node type Nope; `cozy nodes` lists them all"), std::string::npos) << unknown.err;
  Result typo = cozy("nodes ImageGird");
  EXPECT_EQ(typo.code, 2);
  EXPECT_NE(typo.err.find("unknown node type ImageGird; did you mean: ImageGrid?"), std::string::npos) << typo.err;
}

TEST(Cli, PluginsListsTypeWarnings) {
  setenv("COZY_TEST_MISTAKE", "type_typo", 1);
  Result r = cozy(std::string("plugins --plugins ") + COZY_TEST_PLUGIN_DIR + "/mistakes");
  unsetenv("COZY_TEST_MISTAKE");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("warnings:\n  IMAEG: consumed by Mistaken, made by no node; did you mean IMAGE?"), std::string::npos)
      << r.out;
  EXPECT_EQ(cozy("plugins").out.find("warnings:"), std::string::npos) << "the shipped plugins have none";
}

TEST(Cli, NewPluginRefusesABadNameOrAnExistingFolder) {
  fs::path dir = scratch("new_plugin");
  Result bad = cozy("new-plugin 9lives --dir " + dir.string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("a plugin name is a letter then letters, digits or '_'"), std::string::npos) << bad.err;
  Result made = cozy("new-plugin my_filter --dir " + dir.string());
  ASSERT_EQ(made.code, 0) << made.err;
  for (const char* file : {"CMakeLists.txt", "src/my_filter.cpp", "tests/test_my_filter.cpp", "graphs/my_filter.json", "README.md"})
    EXPECT_TRUE(fs::exists(dir / "my_filter" / file)) << file;
  EXPECT_NE(slurp(dir / "my_filter" / "src" / "my_filter.cpp").find("\"MyFilterGain\""), std::string::npos);
  Result again = cozy("new-plugin my_filter --dir " + dir.string());
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("exists"), std::string::npos);
}

TEST(Cli, PluginsListsLoadedAndFailedWithReasons) {
  Result r = cozy(std::string("plugins --plugins ") + COZY_TEST_PLUGIN_DIR + "/throws");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("loaded:\n  "), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("\n  comfy 0.1.0"), r.out.find("\n  core 0.1.0")) << r.out;  // by name
  EXPECT_NE(r.out.find("\n  core 0.1.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ms "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failed:\n  " + std::string(COZY_TEST_PLUGIN_DIR) + "/throws/libcozy_test_throws.so"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("threw while registering its nodes"), std::string::npos) << r.out;

  // A broken plugin does not stop the host from running graphs.
  fs::path dir = scratch("broken_plugin");
  Result run = cozy("run " + write_graph(dir, kSmallGraph).string() + " --plugins " + COZY_TEST_PLUGIN_DIR +
                    "/throws --output-dir " + (dir / "out").string());
  EXPECT_EQ(run.code, 0);
  EXPECT_NE(run.err.find("warning: plugin"), std::string::npos);

  Result env = cozy(std::string("plugins --json"));
  std::vector<std::string> names;
  for (const auto& plugin : nlohmann::json::parse(env.out)) names.push_back(plugin["name"]);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << nlohmann::json(names).dump();
  EXPECT_NE(std::find(names.begin(), names.end(), "core"), names.end());
}

TEST(Cli, PluginPathComesFromTheEnvironmentToo) {
  Result r = cozy(std::string("plugins"));
  EXPECT_EQ(r.out.find("test-plugin-objects"), std::string::npos);
  setenv("COZY_PLUGIN_PATH", (std::string(COZY_TEST_PLUGIN_DIR) + "/objects").c_str(), 1);
  Result with_env = cozy("plugins");
  unsetenv("COZY_PLUGIN_PATH");
  EXPECT_NE(with_env.out.find("test-plugin-objects"), std::string::npos) << with_env.out;
}

// graphs/train_gan.json in its short form: a few steps on a small subset.
TEST(Cli, TrainGanGraphRunsInShortForm) {
  fs::path dir = scratch("train_gan");
  Result r = cozy(std::string("run ") + COZY_SOURCE_DIR + "/graphs/train_gan.json --set 1.subset=256 --set 2.epochs=0 --set 2.steps=3" +
                  " --set 2.width=8 --set 2.checkpoint_every=2 --set 4.batch=10 --output-dir " + (dir / "out").string() +
                  " --models-dir " + (dir / "models").string() + " --progress none --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "fashion_cdcgan_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "train_gan" / "fashion_cdcgan_step2_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "train_gan" / "fashion_cdcgan_losses_00001.csv"));
  EXPECT_TRUE(fs::exists(dir / "out" / "train_gan" / "samples_00001.png"));
}

TEST(Cli, ShippedMainGraphRuns) {
  fs::path dir = scratch("main_graph");
  Result r = cozy(std::string("run ") + COZY_SOURCE_DIR + "/graphs/contact_sheet.json --input-dir " + COZY_SOURCE_DIR +
                  "/input --output-dir " + (dir / "out").string() + " --progress none");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "contact_sheet_00001.png"));
  Result sheet = cozy(std::string("run ") + COZY_SOURCE_DIR + "/graphs/fashion_sheet.json --output-dir " +
                     (dir / "out").string() + " --progress none");
  EXPECT_EQ(sheet.code, 0) << sheet.err;
  EXPECT_EQ(png_width(dir / "out" / "fashion_mnist_sheet_00001.png"), 2u * (8 * 28 + 9 * 2));
  // The README's main job: the shipped generator, 10 images of each class.
  Result main_job = cozy(std::string("run ") + COZY_SOURCE_DIR + "/graphs/sample.json --models-dir " + COZY_SOURCE_DIR +
                         "/models --output-dir " + (dir / "out").string() + " --progress none");
  EXPECT_EQ(main_job.code, 0) << main_job.err;
  EXPECT_EQ(png_width(dir / "out" / "fashion_samples_00001.png"), 2u * (10 * 28 + 11 * 2));
}

}  // namespace

// The other training graphs in their short form, and the graphs that use the
// shipped models, on small numbers of images.
TEST(Cli, ModelGraphsRunInShortForm) {
  fs::path dir = scratch("model_graphs");
  const std::string common = " --output-dir " + (dir / "out").string() + " --models-dir " + (dir / "models").string() +
                             " --progress none --threads 1";
  const std::string graphs = std::string(COZY_SOURCE_DIR) + "/graphs/";
  Result cls = cozy("run " + graphs + "train_classifier.json --set 1.subset=256 --set 3.epochs=1 --set 3.width=8" + common);
  ASSERT_EQ(cls.code, 0) << cls.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "fashion_classifier_00001.pt"));
  EXPECT_NE(cls.err.find("\"metric\":\"accuracy\""), std::string::npos) << "the accuracy is printed: " << cls.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "train_classifier" / "metrics_00001.json"));
  Result vae = cozy("run " + graphs + "train_vae.json --set 1.subset=256 --set 2.subset=100 --set 3.epochs=1" + common);
  ASSERT_EQ(vae.code, 0) << vae.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "fashion_vae_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "train_vae" / "reconstructions_00001.png"));
  Result critic = cozy("run " + graphs + "train_critic.json --set 1.subset=256 --set 3.epochs=1" + common);
  ASSERT_EQ(critic.code, 0) << critic.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "fashion_critic_00001.pt"));
  Result dcgan = cozy("run " + graphs + "train_dcgan.json --set 1.subset=256 --set 2.epochs=0 --set 2.steps=3" + common);
  ASSERT_EQ(dcgan.code, 0) << dcgan.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "fashion_dcgan_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "train_dcgan" / "samples_00001.png"));
}

TEST(Cli, GraphsOfTheShippedModelsRunInShortForm) {
  fs::path dir = scratch("shipped_graphs");
  const std::string common = " --output-dir " + (dir / "out").string() + " --models-dir " + COZY_SOURCE_DIR +
                             "/models --progress none";
  const std::string graphs = std::string(COZY_SOURCE_DIR) + "/graphs/";
  Result eval = cozy("run " + graphs + "evaluate.json --set 4.subset=300 --set 5.subset=300 --set 6.subset=2000" +
                     " --set 7.batch=300 --set 8.batch=300 --set 10.count=300 --set 13.per_class=10" +
                     " --set 16.limit=300 --set 17.limit=100" + common);
  ASSERT_EQ(eval.code, 0) << eval.err;
  nlohmann::json metrics = nlohmann::json::parse(std::ifstream(dir / "out" / "evaluate" / "metrics_00001.json"));
  for (const char* key : {"accuracy", "conditional_accuracy", "fid", "fid_", "precision_recall", "memorization",
                          "accuracy_"})
    EXPECT_TRUE(metrics.contains(key)) << key << " missing from " << metrics.dump();
  Result interp = cozy("run " + graphs + "interpolate.json" + common);
  ASSERT_EQ(interp.code, 0) << interp.err;
  EXPECT_EQ(png_width(dir / "out" / "interpolate" / "gan_sneakers_00001.png"), 10u * 30 + 2);
  Result recon = cozy("run " + graphs + "vae_reconstruct.json" + common);
  ASSERT_EQ(recon.code, 0) << recon.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "vae_reconstruct_00001.png"));
  // transfer.json writes a model: into a scratch models folder holding copies of the shipped ones.
  fs::create_directories(dir / "models");
  for (const char* f : {"fashion_cdcgan_00001.pt", "fashion_classifier_00001.pt"})
    fs::copy_file(fs::path(COZY_SOURCE_DIR) / "models" / f, dir / "models" / f);
  Result transfer = cozy("run " + graphs + "transfer.json --set 1.subset=128 --set 2.subset=100 --set 3.steps=2" +
                         " --set 4.steps=2 --set 4.width=8 --set 5.batch=100 --set 6.batch=100 --output-dir " +
                         (dir / "out").string() + " --models-dir " + (dir / "models").string() + " --progress none");
  ASSERT_EQ(transfer.code, 0) << transfer.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "transfer" / "sneaker_gan_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "transfer" / "metrics_00001.json"));
  // The layout-to-image model: trained briefly into the scratch models folder...
  Result layout_gan = cozy("run " + graphs + "train_layout_gan.json --set 2.count=40 --set 3.steps=10 --set 3.batch=8" +
                           " --set 3.width=8 --set 6.count=4 --set 7.count=4 --output-dir " + (dir / "out").string() +
                           " --models-dir " + (dir / "models").string() + " --progress none");
  ASSERT_EQ(layout_gan.code, 0) << layout_gan.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "layout_pix2pix_00001.pt"));
  nlohmann::json layout_metrics =
      nlohmann::json::parse(std::ifstream(dir / "out" / "train_layout_gan" / "metrics_00001.json"));
  EXPECT_TRUE(layout_metrics.contains("scene_fidelity")) << layout_metrics.dump();
  // ...and the shipped one judged beside ComposeScene.
  Result layouts = cozy("run " + graphs + "evaluate_layouts.json --set 4.count=3 --set 5.count=3 --set 6.count=2" +
                        " --input-dir " + COZY_SOURCE_DIR + "/input" + common);
  ASSERT_EQ(layouts.code, 0) << layouts.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "evaluate_layouts" / "two_objects_00001.png"));
}

// The interaction issue's three graphs: the two-object scene, a recorded
// editing session replayed, one round of feedback (which writes a model:
// into a scratch models folder holding copies of the shipped ones).
TEST(Cli, InteractionGraphsRun) {
  fs::path dir = scratch("interaction_graphs");
  fs::create_directories(dir / "models");
  for (const char* f :
       {"fashion_cdcgan_00001.pt", "fashion_classifier_00001.pt", "fashion_critic_00001.pt", "layout_pix2pix_00001.pt"})
    fs::copy_file(fs::path(COZY_SOURCE_DIR) / "models" / f, dir / "models" / f);
  const std::string common = " --output-dir " + (dir / "out").string() + " --models-dir " + (dir / "models").string() +
                             " --input-dir " + COZY_SOURCE_DIR + "/input --progress none --threads 1";
  const std::string graphs = std::string(COZY_SOURCE_DIR) + "/graphs/";
  Result scene = cozy("run " + graphs + "layout_scene.json" + common);
  ASSERT_EQ(scene.code, 0) << scene.err;
  EXPECT_EQ(png_width(dir / "out" / "layout_scene_00001.png"), 3u * 256 + 4 * 4);
  EXPECT_TRUE(fs::exists(dir / "out" / "layout_scene_layout_00001.json"));
  EXPECT_NE(scene.err.find("\"metric\":\"layout_fidelity\""), std::string::npos) << scene.err;
  Result replay = cozy("run " + graphs + "interaction_replay.json" + common);
  ASSERT_EQ(replay.code, 0) << replay.err;
  EXPECT_EQ(png_width(dir / "out" / "interaction_replay_00001.png"), 2u * 256 + 3 * 4);
  Result round = cozy("run " + graphs + "feedback_round.json --set 10.steps=2" + common);
  ASSERT_EQ(round.code, 0) << round.err;
  EXPECT_TRUE(fs::exists(dir / "models" / "feedback_round" / "feedback_gan_00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "out" / "feedback_round" / "batches_00001.png"));
  EXPECT_TRUE(fs::exists(dir / "out" / "feedback_round" / "fine_tuned_00001.png"));
  EXPECT_TRUE(fs::exists(dir / "out" / "feedback_round" / "latents_00001.pt"));
}

// An input the node type does not declare is ignored with a warning, as
// ComfyUI ignores it (its exports carry `upload` on LoadImage).
TEST(Cli, AnUnknownInputIsAWarning) {
  fs::path dir = scratch("unknown_input");
  const std::string graph = R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 5, "height": 3, "batch_size": 1, "upload": "image"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "u"}}})";
  Result r = cozy("run " + write_graph(dir, graph).string() + " --output-dir " + (dir / "out").string() +
                  " --progress none");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: node 1 (EmptyImage), input 'upload': unknown input, ignored"), std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "u_00001.png"));
}

// A workflow saved by ComfyUI's editor validates, runs and converts as it is.
TEST(Cli, EditorWorkflowsRunAndConvert) {
  fs::path dir = scratch("editor_workflow");
  const std::string workflow = std::string(COZY_SOURCE_DIR) + "/web/cozy/templates/feedback_loop.json";
  Result valid = cozy("validate " + workflow + " --input-dir " + COZY_SOURCE_DIR + "/input --models-dir " +
                      COZY_SOURCE_DIR + "/models");
  EXPECT_EQ(valid.code, 0) << valid.err;
  Result run = cozy("run " + workflow + " --input-dir " + COZY_SOURCE_DIR + "/input --models-dir " + COZY_SOURCE_DIR +
                    "/models --output-dir " + (dir / "out").string() + " --progress none --threads 1");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "feedback_loop" / "latents_00001.pt"));
  Result converted = cozy("convert " + workflow + " " + (dir / "api.json").string());
  ASSERT_EQ(converted.code, 0) << converted.err;
  nlohmann::json api = nlohmann::json::parse(std::ifstream(dir / "api.json"));
  nlohmann::json original = nlohmann::json::parse(std::ifstream(std::string(COZY_SOURCE_DIR) + "/graphs/feedback_loop.json"));
  for (const auto& [id, node] : original.items()) {
    EXPECT_EQ(api[id]["class_type"], node["class_type"]) << id;
    EXPECT_EQ(api[id]["inputs"], node["inputs"]) << id;
  }
  // Errors name the editor's node; an API graph is not an editor workflow.
  std::ofstream(dir / "bad.json") << R"({"nodes": [{"id": 4, "type": "KSampler", "title": "Sampler",
                                         "inputs": [], "widgets_values": []}], "links": []})";
  Result bad = cozy("run " + (dir / "bad.json").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("UI node 4 ('Sampler'): unknown node type 'KSampler'"), std::string::npos) << bad.err;
  Result not_ui = cozy("convert " + std::string(COZY_SOURCE_DIR) + "/graphs/sample.json " + (dir / "x.json").string());
  EXPECT_EQ(not_ui.code, 2);
  EXPECT_NE(not_ui.err.find("is not a workflow saved by ComfyUI's editor"), std::string::npos) << not_ui.err;
}

// With the default folders, a graph that makes a model reads the shipped
// models and writes its model into the output folder, not among them.
TEST(Cli, AModelAGraphMakesGoesToTheUsersFolder) {
  fs::path dir = scratch("model_save");
  auto listing = [] {
    std::vector<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(fs::path(COZY_SOURCE_DIR) / "models"))
      names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  const std::vector<std::string> before = listing();
  Result round = cozy("run graphs/feedback_round.json --set 10.steps=1 --output-dir " + (dir / "out").string() +
                          " --progress none --threads 1",
                      COZY_SOURCE_DIR);
  ASSERT_EQ(round.code, 0) << round.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "feedback_round" / "feedback_gan_00001.pt"));
  EXPECT_EQ(listing(), before) << "the shipped models folder is left as it was";
}

// Load nodes name a file in the models folder: listed as choices, checked
// before anything runs.
TEST(Cli, ModelFileInputsAreListedAndChecked) {
  fs::path dir = scratch("model_files");
  fs::create_directories(dir / "models" / "sub");
  std::ofstream(dir / "models" / "a.pt") << "x";
  std::ofstream(dir / "models" / "sub" / "b.pt") << "x";
  std::ofstream(dir / "models" / "notes.txt") << "x";
  Result info = cozy("nodes LoadVAE --json --models-dir " + (dir / "models").string());
  ASSERT_EQ(info.code, 0) << info.err;
  nlohmann::json j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["LoadVAE"]["input"]["required"]["checkpoint"][0], nlohmann::json({"a.pt", "sub/b.pt"}));
  EXPECT_EQ(j["LoadVAE"]["input"]["required"]["checkpoint"][1]["file_folder"], "models");

  Result run = cozy(std::string("run ") + COZY_SOURCE_DIR + "/graphs/sample.json --models-dir " +
                    (dir / "models").string() + " --output-dir " + (dir / "out").string() + " --progress none");
  EXPECT_EQ(run.code, 2) << "a missing model is a validation error";
  EXPECT_NE(run.err.find("'fashion_cdcgan_00001.pt' is not a file in the models folder " + (dir / "models").string() +
                         "; files there: a.pt, sub/b.pt"),
            std::string::npos)
      << run.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
  Result check = cozy(std::string("validate ") + COZY_SOURCE_DIR + "/graphs/sample.json --models-dir " + COZY_SOURCE_DIR +
                      "/models");
  EXPECT_EQ(check.code, 0) << check.err;
}

namespace {

// A workflow saved by ComfyUI's editor from ComfyUI's own image nodes (a
// primitive for a widget, a reroute, a bypassed blur, a muted preview, a
// note) runs as it is and as the API form `cozy convert` writes, and writes
// what ComfyUI would: red, scaled to 32 x 24, inverted, is cyan.
// ComfyUI's BOUNDING_BOX widget (an object in widgets_values, or a link
// from PrimitiveBoundingBox) and its lists: RebatchImages' list of 3 batches
// runs ImageQuantize and SaveImage once per batch.
TEST(Cli, AWorkflowWithBoundingBoxesAndListsRunsInEitherFormat) {
  fs::path dir = scratch("comfy_lists");
  const std::string workflow = std::string(COZY_SOURCE_DIR) + "/tests/data/comfy/workflows/lists_and_boxes.json";
  Result converted = cozy("convert " + workflow + " " + (dir / "api.json").string());
  ASSERT_EQ(converted.code, 0) << converted.err;
  nlohmann::json api = nlohmann::json::parse(std::ifstream(dir / "api.json"));
  EXPECT_EQ(api["2"]["inputs"]["crop_region"], nlohmann::json({{"x", 4}, {"y", 2}, {"width", 20}, {"height", 10}}));
  EXPECT_EQ(api["7"]["inputs"]["crop_region"], nlohmann::json::array({"6", 0}));
  EXPECT_EQ(api["3"]["inputs"]["batch_size"], 2);
  for (const std::string& graph : {workflow, (dir / "api.json").string()}) {
    const fs::path out = dir / (graph == workflow ? "from_ui" : "from_api");
    Result run = cozy("run " + graph + " --output-dir " + out.string() + " --progress json --threads 1");
    ASSERT_EQ(run.code, 0) << run.err;
    int saves = 0;
    std::istringstream lines(run.out + run.err);
    for (std::string line; std::getline(lines, line);) {
      nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
      if (event.is_object() && event.value("type", "") == "executed" && event["data"]["node"] == "5") {
        ++saves;
        EXPECT_EQ(event["data"]["output"]["images"].size(), 5u) << "five frames from three runs";
      }
    }
    EXPECT_EQ(saves, 1) << "one executed event for the three runs";
    for (const char* name : {"frames", "box"})
      for (int i = 1; i <= 5; ++i) {
        char file[32];
        std::snprintf(file, sizeof file, "%s_%05d.png", name, i);
        cv::Mat png = cv::imread((out / "lists" / file).string(), cv::IMREAD_UNCHANGED);
        ASSERT_FALSE(png.empty()) << graph << ": " << file;
        EXPECT_EQ(png.cols, name[0] == 'f' ? 20 : 3) << file;
        EXPECT_EQ(png.rows, name[0] == 'f' ? 10 : 3) << file;
        EXPECT_EQ(png.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 255, 0)) << file;
      }
    EXPECT_FALSE(fs::exists(out / "lists" / "frames_00006.png"));
  }
}

TEST(Cli, AComfyUIImageWorkflowRunsInEitherFormat) {
  fs::path dir = scratch("comfy_workflow");
  const std::string workflow = std::string(COZY_SOURCE_DIR) + "/tests/data/comfy/workflows/image_nodes.json";
  Result valid = cozy("validate " + workflow);
  EXPECT_EQ(valid.code, 0) << valid.err;
  Result converted = cozy("convert " + workflow + " " + (dir / "api.json").string());
  ASSERT_EQ(converted.code, 0) << converted.err;
  nlohmann::json api = nlohmann::json::parse(std::ifstream(dir / "api.json"));
  EXPECT_FALSE(api.contains("3")) << "the bypassed blur is left out";
  EXPECT_FALSE(api.contains("9")) << "the muted preview is left out";
  EXPECT_FALSE(api.contains("12")) << "notes are not nodes";
  EXPECT_EQ(api["2"]["inputs"]["width"], 32) << "the primitive's value";
  EXPECT_EQ(api["2"]["inputs"]["height"], 0);
  EXPECT_EQ(api["4"]["inputs"]["image"], nlohmann::json::array({"2", 0})) << "the blur bypassed";
  EXPECT_EQ(api["6"]["inputs"]["images"], nlohmann::json::array({"4", 0})) << "the reroute resolved";
  for (const std::string& graph : {workflow, (dir / "api.json").string()}) {
    const fs::path out = dir / (graph == workflow ? "from_ui" : "from_api");
    Result run = cozy("run " + graph + " --output-dir " + out.string() + " --progress none --threads 1");
    ASSERT_EQ(run.code, 0) << run.err;
    cv::Mat png = cv::imread((out / "comfy_ui" / "inverted_00001.png").string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(png.empty()) << graph;
    EXPECT_EQ(png.cols, 32);
    EXPECT_EQ(png.rows, 24);
    EXPECT_EQ(png.at<cv::Vec3b>(10, 10), cv::Vec3b(255, 255, 0)) << "cyan, in OpenCV's BGR";
  }
}

}  // namespace
