// The metrics plugin: the project's classifier (TrainClassifier,
// LoadClassifier) and the measurements made with it: test accuracy,
// conditional accuracy of a class-conditional generator, FID on the
// classifier's features, precision and recall, and a memorisation check.
#include "classifier.hpp"
#include "measures.hpp"
#include "data_parallel.hpp"
#include "training.hpp"

#include <cozy/sdk.hpp>

#include <fstream>
#include <map>
#include <sstream>

namespace cozy::metrics {
namespace {

namespace fs = std::filesystem;
constexpr std::int64_t kBatch = 500;

// The first `limit` images of a data set (0: all) as a CPU tensor.
std::pair<at::Tensor, at::Tensor> first_examples(const Dataset& data, std::int64_t limit) {
  const std::int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  return data.batch(at::arange(n, at::kLong));
}

void check_shape(const std::vector<std::int64_t>& want, const at::Tensor& images, const std::string& what) {
  if (images.dim() != 4 || images.size(1) != want[0] || images.size(2) != want[1] || images.size(3) != want[2])
    throw Error(what + " are " + c10::str(images.sizes()) + "; the classifier takes [N, " + std::to_string(want[0]) +
                ", " + std::to_string(want[1]) + ", " + std::to_string(want[2]) + "]");
}

at::Tensor features_of(const Classifier& c, const at::Tensor& images, const std::string& what) {
  check_shape(c.image_shape(), images, what);
  return training::batched(images, kBatch, c.device(), [&](const at::Tensor& x) { return c.features(x); });
}

at::Tensor predictions(const Classifier& c, const at::Tensor& images) {
  check_shape(c.image_shape(), images, "the images");
  return training::batched(images, kBatch, c.device(), [&](const at::Tensor& x) { return c.logits(x).argmax(1); });
}

// Reports a measurement to the user and returns it as the node's JSON output.
std::string report(Context& ctx, const nlohmann::json& j) {
  ctx.log(LogLevel::info, j.dump());
  return j.dump();
}

double round4(double v) { return std::round(v * 1e4) / 1e4; }

NodeDef node(const char* type, const char* display, const char* description) {
  return NodeDef::named(type, display, "metrics", description);
}

NodeDef train_classifier() {
  NodeDef d = node("TrainClassifier", "Train Classifier",
                   "Trains the project's CNN classifier (two conv blocks, a 128-feature layer, dropout; Adam, "
                   "cross-entropy) on a data set. With a test set, reports its accuracy after every epoch. Writes "
                   "<name>_log.csv and .png under the output folder. Deterministic for a seed on the CPU. "
      "Over several ranks (cozy run --nproc, torchrun: docs/distributed.md) each rank takes `batch` images of "
      "every global batch, gradients are averaged over the ranks and rank 0 alone writes files.");
  d.spec.inputs = {InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Link("test_dataset", types::DATASET).optional(),
                   InputSpec::Int("epochs", 5).range(1, 1000),
                   InputSpec::Int("batch", 128).range(1, 4096),
                   InputSpec::Float("lr", 1e-3).range(1e-6, 1).with_step(1e-4),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Int("width", 32).range(4, 256),
                   InputSpec::Int("features", 128).range(8, 4096),
                   InputSpec::String("name", "classifier").help("prefix of the files written")};
  d.spec.outputs = {{"CLASSIFIER", types::CLASSIFIER}, {"summary", types::STRING}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto data = in.object<Dataset>("dataset");
    std::shared_ptr<Dataset> test = in.has("test_dataset") ? in.object<Dataset>("test_dataset") : nullptr;
    const auto shape = data->image_shape();
    if (shape[1] != shape[2]) throw Error("the classifier needs square images");
    ClassifierOptions o;
    o.channels = shape[0];
    o.image_size = shape[1];
    o.classes = static_cast<int64_t>(data->class_names().size());
    o.width = in.integer("width");
    o.features = in.integer("features");
    const int64_t epochs = in.integer("epochs"), batch = std::min(in.integer("batch"), data->size());
    const std::string name = in.string("name");
    const fs::path out_dir = path_inside(ctx.output_dir(), name, "name").parent_path();
    const c10::Device device = ctx.device();

    at::Generator gen = seeded_generator(in.integer("seed"));
    torch::manual_seed(static_cast<uint64_t>(in.integer("seed")));  // weight init and dropout
    ClassifierNet net(o);
    net->to(device);
    training::DataParallel dp(ctx);
    dp.broadcast(*net);  // every rank starts from rank 0's weights
    if (dp.active()) torch::manual_seed(static_cast<uint64_t>(in.integer("seed")) * 1000003 + static_cast<uint64_t>(dp.rank()));  // dropout: each rank its own
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(in.number("lr")));
    std::shared_ptr<CnnClassifier> result;
    auto snapshot = [&] { return std::make_shared<CnnClassifier>(net, data->class_names(), classifier_metadata(o, data->class_names())); };
    std::pair<at::Tensor, at::Tensor> test_set;
    if (test) test_set = first_examples(*test, 0);

    training::LossLog log("epoch", {"train_loss", "test_accuracy"});
    const int64_t per_epoch = dp.steps(data->size(), batch), total = epochs * per_epoch;
    if (per_epoch == 0)
      throw Error("the data set has " + std::to_string(data->size()) + " images, fewer than a batch of " +
                  std::to_string(batch) + " on each of " + std::to_string(dp.world()) + " ranks");
    training::Clock clock;
    double accuracy = std::nan("");
    for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
      net->train();
      at::Tensor order = at::randperm(data->size(), gen, at::kLong);
      double loss_sum = 0;
      for (int64_t s = 0; s < per_epoch; ++s) {
        ctx.check_cancelled();
        auto [images, labels] = data->batch(dp.shard(order, s, batch));
        opt.zero_grad();
        at::Tensor loss = torch::cross_entropy_loss(net->forward(images.to(device)), labels.to(device));
        loss.backward();
        dp.average_gradients(*net);
        opt.step();
        dp.broadcast_buffers(*net);  // BatchNorm normalises by each rank's batch; its running statistics are rank 0's
        loss_sum += loss.item<double>();
        const int64_t step = (epoch - 1) * per_epoch + s + 1;
        std::ostringstream text;
        text.precision(3);
        text << "epoch " << epoch << "/" << epochs << " loss " << loss.item<float>()
             << clock.rate(step * batch, total * batch);
        ctx.progress(step, total, text.str());
      }
      loss_sum = dp.sum(loss_sum) / dp.world();
      net->eval();
      result = snapshot();
      if (test) accuracy = (predictions(*result, test_set.first) == test_set.second).to(at::kDouble).mean().item<double>();
      log.add(epoch, {loss_sum / double(per_epoch), accuracy});
      ctx.log(LogLevel::info, "epoch " + std::to_string(epoch) + ": train loss " + std::to_string(loss_sum / double(per_epoch)) +
                                  (test ? ", test accuracy " + std::to_string(accuracy) : std::string()));
    }
    if (dp.writes()) log.write(ctx, out_dir, fs::path(name).filename().string() + "_log");
    nlohmann::json meta = classifier_metadata(o, data->class_names());
    meta.update({{"dataset", data->describe()}, {"epochs", epochs}, {"seed", in.integer("seed")},
                 {"seconds", round4(clock.seconds())}});
    if (test) meta["test_accuracy"] = round4(accuracy);
    result = std::make_shared<CnnClassifier>(net, data->class_names(), meta);
    std::ostringstream summary;
    summary << "classifier trained " << epochs << " epochs on " << data->describe();
    if (test) summary << "; test accuracy " << accuracy;
    return {std::static_pointer_cast<Classifier>(result), summary.str()};
  };
  return d;
}

NodeDef load_classifier_node() {
  NodeDef d = node("LoadClassifier", "Load Classifier",
                   "A classifier from a Cozy checkpoint: a file name in the models folder, or an absolute path. Its "
                   "weights go to the run's device.");
  d.spec.inputs = {InputSpec::String("checkpoint").files_in("models", {".pt"}).help("e.g. fashion_classifier_00001.pt")};
  d.spec.outputs = {{"CLASSIFIER", types::CLASSIFIER}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    return {std::static_pointer_cast<Classifier>(load_classifier(checkpoint::model_path(ctx, in.string("checkpoint")), ctx.device()))};
  };
  return d;
}

NodeDef accuracy() {
  NodeDef d = node("ClassifierAccuracy", "Classifier Accuracy",
                   "The fraction of a labelled data set the classifier gets right, overall and per class. With "
                   "images, those are classified against the data set's labels instead (for example the VAE's "
                   "reconstructions of the data set: do they keep their class?).");
  d.spec.inputs = {InputSpec::Link("classifier", types::CLASSIFIER), InputSpec::Link("dataset", types::DATASET),
                   InputSpec::Int("limit", 0).range(0, 1e9).help("use the first N examples; 0: all"),
                   InputSpec::Link("images", types::IMAGE).optional().help("the data set's first N images, remade")};
  d.spec.outputs = {{"accuracy", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto c = in.object<Classifier>("classifier");
    auto data = in.object<Dataset>("dataset");
    auto [images, labels] = first_examples(*data, in.integer("limit"));
    if (in.has("images")) {
      const at::Tensor& remade = in.image("images");
      if (remade.size(0) > labels.size(0)) throw Error("more images than the data set has labels");
      images = remade;
      labels = labels.narrow(0, 0, remade.size(0));
    }
    at::Tensor right = predictions(*c, images) == labels;
    const double acc = right.to(at::kDouble).mean().item<double>();
    nlohmann::json per_class = nlohmann::json::object();
    for (std::size_t k = 0; k < data->class_names().size(); ++k) {
      at::Tensor mask = labels == static_cast<int64_t>(k);
      if (mask.any().item<bool>())
        per_class[data->class_names()[k]] = round4(right.masked_select(mask).to(at::kDouble).mean().item<double>());
    }
    return {acc, report(ctx, {{"metric", "accuracy"}, {"accuracy", round4(acc)}, {"images", images.size(0)},
                              {"dataset", data->describe()}, {"remade_images", in.has("images")},
                              {"per_class", per_class}})};
  };
  return d;
}

NodeDef classify_images() {
  NodeDef d = node("ClassifyImages", "Classify Images",
                   "The class the classifier gives each image of a batch, as a comma-separated list of class names "
                   "(shown in the node), and the share of the batch each class has (JSON).");
  d.spec.inputs = {InputSpec::Link("classifier", types::CLASSIFIER), InputSpec::Link("images", types::IMAGE)};
  d.spec.outputs = {{"classes", types::STRING}, {"shares", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto c = in.object<Classifier>("classifier");
    const at::Tensor predicted = predictions(*c, in.image("images")).to(at::kCPU);
    const auto& names = c->class_names();
    std::string list;
    std::map<std::string, double> shares;
    const auto n = predicted.size(0);
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(predicted[i].item<int64_t>());
      const std::string name = k < names.size() ? names[k] : std::to_string(k);
      list += (i ? "," : "") + name;
      shares[name] += 1.0 / static_cast<double>(n);
    }
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, share] : shares) j[name] = round4(share);
    ctx.show_text(list);
    return {list, j.dump()};
  };
  return d;
}

// Generator class k -> classifier class, by name when both have names.
std::vector<int64_t> class_map(const Generator& g, const Classifier& c) {
  std::vector<int64_t> map;
  for (int64_t k = 0; k < g.num_classes(); ++k) {
    const auto& names = c.class_names();
    auto it = std::find(names.begin(), names.end(), g.class_names().at(static_cast<std::size_t>(k)));
    if (it != names.end()) {
      map.push_back(it - names.begin());
    } else if (g.num_classes() == c.num_classes()) {
      map.push_back(k);
    } else {
      throw Error("the generator's class '" + g.class_names()[static_cast<std::size_t>(k)] +
                  "' is not one of the classifier's classes");
    }
  }
  return map;
}

NodeDef conditional_accuracy() {
  NodeDef d = node("ConditionalAccuracy", "Conditional Accuracy",
                   "For a class-conditional generator: the fraction of its samples that the classifier labels as "
                   "the class asked for, overall and per class (per_class samples of each class, from a seed).");
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR), InputSpec::Link("classifier", types::CLASSIFIER),
                   InputSpec::Int("per_class", 100).range(1, 100000), InputSpec::Int("seed", 0).range(0, 2147483647)};
  d.spec.outputs = {{"accuracy", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto g = in.object<Generator>("generator");
    auto c = in.object<Classifier>("classifier");
    if (g->num_classes() == 0) throw Error("the generator is unconditional: conditional accuracy needs classes");
    const std::vector<int64_t> map = class_map(*g, *c);
    const int64_t per = in.integer("per_class"), n = per * g->num_classes();
    at::Generator gen = seeded_generator(in.integer("seed"));
    at::Tensor z = at::randn({n, g->latent_size()}, gen, at::kFloat);
    at::Tensor labels = at::arange(g->num_classes(), at::kLong).repeat_interleave(per);
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < n; i += kBatch) {
      const int64_t m = std::min(kBatch, n - i);
      at::Tensor images = g->generate(z.narrow(0, i, m), labels.narrow(0, i, m));
      parts.push_back(c->logits(images.to(c->device())).argmax(1).cpu());
    }
    at::Tensor predicted = at::cat(parts);
    at::Tensor wanted = at::tensor(map, at::kLong).index_select(0, labels);
    at::Tensor right = predicted == wanted;
    const double acc = right.to(at::kDouble).mean().item<double>();
    nlohmann::json per_class = nlohmann::json::object();
    for (int64_t k = 0; k < g->num_classes(); ++k)
      per_class[g->class_names()[static_cast<std::size_t>(k)]] =
          round4(right.narrow(0, k * per, per).to(at::kDouble).mean().item<double>());
    return {acc, report(ctx, {{"metric", "conditional_accuracy"}, {"accuracy", round4(acc)}, {"images", n},
                              {"per_class", per_class}})};
  };
  return d;
}

NodeDef fid() {
  NodeDef d = node("FID", "Fréchet Distance (FID)",
                   "Fréchet distance between the images and a reference data set, on the classifier's penultimate "
                   "features, in float64 (lower is closer). With floor_dataset, also the FID of those real images "
                   "against the reference: the value two real sets of that size give, to read the first against.");
  d.spec.inputs = {InputSpec::Link("classifier", types::CLASSIFIER), InputSpec::Link("images", types::IMAGE),
                   InputSpec::Link("reference", types::DATASET),
                   InputSpec::Link("floor_dataset", types::DATASET).optional(),
                   InputSpec::Int("limit", 0).range(0, 1e9).help("use the first N reference images; 0: all")};
  d.spec.outputs = {{"fid", types::FLOAT}, {"floor", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto c = in.object<Classifier>("classifier");
    auto ref = in.object<Dataset>("reference");
    at::Tensor fake = features_of(*c, in.image("images"), "the images");
    at::Tensor real = features_of(*c, first_examples(*ref, in.integer("limit")).first, "the reference images");
    const double value = frechet_distance(fake, real);
    nlohmann::json j = {{"metric", "fid"}, {"fid", round4(value)}, {"images", fake.size(0)},
                        {"reference", ref->describe()}, {"reference_images", real.size(0)}};
    double floor = std::nan("");
    if (in.has("floor_dataset")) {
      auto other = in.object<Dataset>("floor_dataset");
      floor = frechet_distance(features_of(*c, first_examples(*other, fake.size(0)).first, "the floor images"), real);
      j["floor"] = round4(floor);
      j["floor_dataset"] = other->describe();
    }
    return {value, floor, report(ctx, j)};
  };
  return d;
}

NodeDef precision_recall() {
  NodeDef d = node("PrecisionRecall", "Precision and Recall",
                   "Improved precision and recall (Kynkäänniemi et al. 2019) on the classifier's features: precision "
                   "is the fraction of generated images inside the real images' k-nearest-neighbour manifold (are "
                   "they realistic?), recall the fraction of real images inside the generated images' manifold "
                   "(is the variety covered?).");
  d.spec.inputs = {InputSpec::Link("classifier", types::CLASSIFIER), InputSpec::Link("images", types::IMAGE),
                   InputSpec::Link("reference", types::DATASET), InputSpec::Int("k", 3).range(1, 100),
                   InputSpec::Int("limit", 5000).range(10, 1e7).help("at most this many images of each set")};
  d.spec.outputs = {{"precision", types::FLOAT}, {"recall", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto c = in.object<Classifier>("classifier");
    auto ref = in.object<Dataset>("reference");
    const int64_t limit = in.integer("limit"), k = in.integer("k");
    const at::Tensor& images = in.image("images");
    at::Tensor fake = features_of(*c, images.narrow(0, 0, std::min(limit, images.size(0))), "the images");
    at::Tensor real = features_of(*c, first_examples(*ref, limit).first, "the reference images");
    const double precision = manifold_coverage(fake, real, knn_radii(real, k));
    const double recall = manifold_coverage(real, fake, knn_radii(fake, k));
    return {precision, recall,
            report(ctx, {{"metric", "precision_recall"}, {"precision", round4(precision)}, {"recall", round4(recall)},
                         {"k", k}, {"images", fake.size(0)}, {"reference_images", real.size(0)},
                         {"reference", ref->describe()}})};
  };
  return d;
}

NodeDef memorization() {
  NodeDef d = node("Memorization", "Memorisation Check",
                   "Does a generator copy its training images? For each generated image, the pixel distance to the "
                   "nearest training image; the same for held-out test images. A ratio of medians (generated / test) "
                   "well below 1, or many generated images closer than almost every test image (copies), points to "
                   "memorisation.");
  d.spec.inputs = {InputSpec::Link("images", types::IMAGE), InputSpec::Link("train", types::DATASET),
                   InputSpec::Link("test", types::DATASET),
                   InputSpec::Int("limit", 1000).range(10, 1e6).help("generated and test images compared")};
  d.spec.outputs = {{"ratio", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto train = in.object<Dataset>("train");
    auto test = in.object<Dataset>("test");
    const int64_t limit = in.integer("limit");
    const at::Tensor& all = in.image("images");
    at::Tensor fake = all.narrow(0, 0, std::min(limit, all.size(0))).to(at::kCPU, at::kFloat);
    at::Tensor pool = first_examples(*train, 0).first;
    at::Tensor held = first_examples(*test, limit).first;
    if (fake.sizes().slice(1) != pool.sizes().slice(1))
      throw Error("the images are " + c10::str(fake.sizes()) + " but the training images " + c10::str(pool.sizes()));
    at::Tensor d_fake = nearest_distance(fake, pool), d_test = nearest_distance(held, pool);
    const double m_fake = d_fake.median().item<double>(), m_test = d_test.median().item<double>();
    const double ratio = m_fake / std::max(m_test, 1e-12);
    const double near = at::quantile(d_test, 0.01).item<double>();
    const double copies = (d_fake < near).to(at::kDouble).mean().item<double>();
    return {ratio, report(ctx, {{"metric", "memorization"}, {"median_generated_to_train", round4(m_fake)},
                                {"median_test_to_train", round4(m_test)}, {"ratio", round4(ratio)},
                                {"closer_than_1pct_of_test", round4(copies)}, {"images", fake.size(0)}})};
  };
  return d;
}

NodeDef save_metrics() {
  NodeDef d = node("SaveMetrics", "Save Metrics",
                   "Collects the reports of metric nodes (their STRING outputs) into one JSON file "
                   "<prefix>_<counter>.json under the output folder.");
  d.spec.inputs = {InputSpec::String("filename_prefix", "metrics")};
  for (int i = 1; i <= 8; ++i) d.spec.inputs.push_back(InputSpec::Link("report" + std::to_string(i), types::STRING).optional());
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    nlohmann::json all = nlohmann::json::object();
    for (int i = 1; i <= 8; ++i) {
      const std::string name = "report" + std::to_string(i);
      if (!in.has(name)) continue;
      nlohmann::json j = nlohmann::json::parse(in.string(name), nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) throw Error(name + " is not a JSON object (connect a metric's report)");
      std::string key = j.value("metric", name);
      while (all.contains(key)) key += "_";
      all[key] = j;
    }
    fs::path target = path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    const std::string text = all.dump(2) + "\n";
    ctx.add_file(write_numbered_file(target.parent_path(), target.filename().string(), ".json",
                                     [&](const fs::path& temp) { std::ofstream(temp) << text; }),
                 "output");
    return {};
  };
  return d;
}

void register_nodes(Registrar& r) {
  r.add(train_classifier());
  r.add(load_classifier_node());
  r.add(accuracy());
  r.add(classify_images());
  r.add(conditional_accuracy());
  r.add(fid());
  r.add(precision_recall());
  r.add(memorization());
  r.add(save_metrics());
}

}  // namespace
}  // namespace cozy::metrics

COZY_PLUGIN("metrics", "0.1.0", cozy::metrics::register_nodes)
