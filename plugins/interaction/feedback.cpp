// Feedback on a batch steers the next: Feedback (scores from a node input or
// a JSON file), SaveLatents / LoadLatents (a round continues from the last),
// EvolveLatents (the next batch bred from the liked latents).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>

#include <cozy/sdk.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cozy::interaction {
namespace {

namespace fs = std::filesystem;

std::vector<std::int64_t> indices(const std::string& text, const std::string& what) {
  std::vector<std::int64_t> out;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw Error(what + ": '" + item + "' is not an image index (0, 1, 2, ...)");
    }
  }
  return out;
}

NodeDef feedback_node() {
  NodeDef d;
  d.spec.class_type = "Feedback";
  d.spec.display_name = "Feedback";
  d.spec.category = "interaction";
  d.spec.description =
      "What the user thought of the last batch: liked and disliked image indices (comma-separated, from 0), or "
      "scores (one number per image, > 0 liked, < 0 disliked), or a JSON file in the input folder holding "
      "{\"liked\": [...], \"disliked\": [...]} or {\"scores\": [...]} (what a UI writes).";
  d.spec.inputs = {InputSpec::Int("batch", 64).range(1, 1000000).help("images in the batch judged"),
                   InputSpec::String("liked", ""), InputSpec::String("disliked", ""),
                   InputSpec::String("scores", "").help("comma-separated numbers, one per image"),
                   InputSpec::String("file", "").help("a JSON file in the input folder; overrides the others")};
  d.spec.outputs = {{"FEEDBACK", types::FEEDBACK}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const std::int64_t n = in.integer("batch");
    auto fb = std::make_shared<Feedback>();
    fb->scores.assign(static_cast<std::size_t>(n), 0.0);
    std::vector<std::int64_t> liked, disliked;
    std::vector<double> scores;
    if (!in.string("file").empty()) {
      fs::path file(in.string("file"));
      if (file.is_relative()) file = ctx.input_dir() / file;
      std::ifstream stream(file);
      if (!stream) throw Error("feedback file not found: " + file.string());
      nlohmann::json j = nlohmann::json::parse(stream, nullptr, false);
      if (j.is_discarded() || !j.is_object()) throw Error("feedback file is not a JSON object: " + file.string());
      try {
        liked = j.value("liked", std::vector<std::int64_t>{});
        disliked = j.value("disliked", std::vector<std::int64_t>{});
        scores = j.value("scores", std::vector<double>{});
      } catch (const nlohmann::json::exception&) {
        throw Error("feedback file " + file.string() + ": liked, disliked and scores must be lists of numbers");
      }
    } else {
      liked = indices(in.string("liked"), "liked");
      disliked = indices(in.string("disliked"), "disliked");
      std::stringstream list(in.string("scores"));
      for (std::string item; std::getline(list, item, ',');) {
        try {
          scores.push_back(std::stod(item));
        } catch (const std::exception&) {
          throw Error("scores: '" + item + "' is not a number");
        }
      }
    }
    if (!scores.empty() && static_cast<std::int64_t>(scores.size()) != n)
      throw Error("scores has " + std::to_string(scores.size()) + " numbers for a batch of " + std::to_string(n));
    for (std::size_t i = 0; i < scores.size(); ++i) fb->scores[i] = scores[i];
    for (auto [list, value] : {std::pair{&liked, 1.0}, std::pair{&disliked, -1.0}})
      for (std::int64_t i : *list) {
        if (i < 0 || i >= n) throw Error("image " + std::to_string(i) + " is not in the batch of " + std::to_string(n));
        fb->scores[static_cast<std::size_t>(i)] = value;
      }
    return {std::static_pointer_cast<Object>(fb)};
  };
  return d;
}

NodeDef evolve() {
  NodeDef d;
  d.spec.class_type = "EvolveLatents";
  d.spec.display_name = "Evolve Latents";
  d.spec.category = "interaction";
  d.spec.description =
      "The next batch bred from the liked latents of the last: each child mixes two parents chosen in proportion "
      "to their scores (uniform crossover: each entry from one parent or the other), then mutates: (1 - m) child + "
      "m fresh noise, with m = mutation, renormalised to the noise's scale. With no liked image the batch is fresh "
      "noise. For a class-conditional generator, give it: its latents carry the class weights after z "
      "(GANSample's LATENT); a child takes one parent's classes whole, and mutates to a random class with "
      "probability mutation / 2.";
  d.spec.inputs = {InputSpec::Link("latent", types::LATENT),
                   InputSpec::Link("feedback", types::FEEDBACK),
                   InputSpec::Link("generator", types::GENERATOR).optional(),
                   InputSpec::Int("batch", 64).range(1, 1000000),
                   InputSpec::Float("mutation", 0.25).range(0, 1).with_step(0.05),
                   InputSpec::Int("seed", 0).range(0, 2147483647)};
  d.spec.outputs = {{"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    at::Tensor latent = in.tensor("latent").to(at::kCPU, at::kFloat);
    const auto& scores = in.object<Feedback>("feedback")->scores;
    if (latent.dim() != 2 || latent.size(0) != static_cast<std::int64_t>(scores.size()))
      throw Error("the feedback judges " + std::to_string(scores.size()) + " images but the latents are " +
                  c10::str(latent.sizes()));
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(in.integer("seed")));
    const std::int64_t n = in.integer("batch"), dim = latent.size(1);
    const double m = in.number("mutation");
    at::Tensor weights = at::tensor(scores, at::kDouble).clamp_min(0);
    at::Tensor noise = at::randn({n, dim}, gen, at::kFloat);
    if (weights.sum().item<double>() <= 0) return {noise.to(ctx.device())};
    std::int64_t classes = 0;
    if (in.has("generator")) {
      auto g = in.object<Generator>("generator");
      classes = g->num_classes();
      if (classes > 0 && dim != g->latent_size() + classes)
        throw Error("the latents are " + c10::str(latent.sizes()) + ": a class-conditional generator's carry z and " +
                    std::to_string(classes) + " class weights, [N, " + std::to_string(g->latent_size() + classes) +
                    "]");
    }
    const std::int64_t zdim = dim - classes;
    at::Tensor a = latent.index_select(0, at::multinomial(weights, n, true, gen));
    at::Tensor b = latent.index_select(0, at::multinomial(weights, n, true, gen));
    at::Tensor take_a = at::rand({n, zdim}, gen, at::kFloat) < 0.5;
    at::Tensor child = at::where(take_a, a.narrow(1, 0, zdim), b.narrow(1, 0, zdim));
    at::Tensor fresh = noise.narrow(1, 0, zdim);
    at::Tensor mutated = child * (1 - m) + fresh * m;
    // Mixing two independent Gaussians shrinks the norm: scale back to the parents'.
    mutated = mutated * (child.norm(2, 1, true) / mutated.norm(2, 1, true).clamp_min(1e-6));
    if (classes > 0) {
      at::Tensor from_a = at::rand({n, 1}, gen, at::kFloat) < 0.5;
      at::Tensor kind = at::where(from_a, a.narrow(1, zdim, classes), b.narrow(1, zdim, classes));
      at::Tensor jump = at::rand({n, 1}, gen, at::kFloat) < m / 2;
      at::Tensor random_class =
          at::one_hot(at::randint(classes, {n}, gen, at::TensorOptions(at::kLong)), classes).to(at::kFloat);
      mutated = at::cat({mutated, at::where(jump, random_class, kind)}, 1);
    }
    return {mutated.to(ctx.device())};
  };
  return d;
}

NodeDef save_latents() {
  NodeDef d;
  d.spec.class_type = "SaveLatents";
  d.spec.display_name = "Save Latents";
  d.spec.category = "interaction";
  d.spec.description =
      "Writes latents as <prefix>_<counter>.pt under the output folder (a tensor torch::load and "
      "Python's torch.jit.load read), so that the next round can continue from them.";
  d.spec.inputs = {InputSpec::Link("latent", types::LATENT), InputSpec::String("filename_prefix", "latents")};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    at::Tensor latent = in.tensor("latent").to(at::kCPU);
    fs::path target = path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    ctx.add_file(write_numbered_file(target.parent_path(), target.filename().string(), ".pt",
                                     [&](const fs::path& temp) {
                                       torch::serialize::OutputArchive archive;
                                       archive.write("latent", latent);
                                       archive.save_to(temp.string());
                                     }),
                 "output");
    return {};
  };
  return d;
}

NodeDef load_latents() {
  NodeDef d;
  d.spec.class_type = "LoadLatents";
  d.spec.display_name = "Load Latents";
  d.spec.category = "interaction";
  d.spec.description = "Latents written by SaveLatents: a file in the input folder, or an absolute path.";
  d.spec.inputs = {InputSpec::String("file", "latents_00001.pt").files_in("input", {".pt"})};
  d.spec.outputs = {{"LATENT", types::LATENT}};
  d.spec.pure = false;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    fs::path file(in.string("file"));
    if (file.is_relative()) file = ctx.input_dir() / file;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw Error("latents file not found: " + file.string());
    torch::serialize::InputArchive archive;
    at::Tensor latent;
    try {
      archive.load_from(file.string());
      archive.read("latent", latent);
    } catch (const c10::Error&) {
      throw Error("not a latents file written by SaveLatents: " + file.string());
    }
    return {latent.to(ctx.device())};
  };
  return d;
}

}  // namespace

void register_feedback_nodes(Registrar& r) {
  r.add(feedback_node());
  r.add(evolve());
  r.add(save_latents());
  r.add(load_latents());
}

}  // namespace cozy::interaction
