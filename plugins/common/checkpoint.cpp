#include "checkpoint.hpp"

#include <cozy/error.hpp>

namespace cozy::checkpoint {

namespace fs = std::filesystem;

nlohmann::json metadata(const std::string& kind) { return {{"format", kFormat}, {"version", 1}, {"kind", kind}}; }

void save(const fs::path& file, const nlohmann::json& meta,
          const std::function<void(torch::serialize::OutputArchive&)>& write) {
  torch::serialize::OutputArchive archive;
  write(archive);
  archive.write("metadata", c10::IValue(meta.dump()));
  archive.save_to(file.string());
}

void write_module(torch::serialize::OutputArchive& archive, const std::string& name, const torch::nn::Module& module) {
  torch::serialize::OutputArchive sub;
  module.save(sub);
  archive.write(name, sub);
}

bool Reader::read_module(const std::string& name, torch::nn::Module& module) {
  torch::serialize::InputArchive sub;
  if (!archive.try_read(name, sub)) return false;
  try {
    module.load(sub);
  } catch (const c10::Error& e) {
    throw Error("checkpoint " + file.string() + " does not match its metadata (" + name +
                "): " + e.what_without_backtrace());
  }
  return true;
}

bool Reader::read_archive(const std::string& name, torch::serialize::InputArchive& out) {
  return archive.try_read(name, out);
}

namespace {
bool load_archive(const fs::path& file, c10::Device device, torch::serialize::InputArchive& archive) {
  try {
    archive.load_from(file.string(), device);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}
}  // namespace

std::optional<Reader> open_if_cozy(const fs::path& file, c10::Device device, const std::string& kind,
                                   const std::string& what) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error("checkpoint not found: " + file.string());
  Reader r;
  r.file = file;
  if (!load_archive(file, device, r.archive))
    throw Error("not a checkpoint (corrupt, or not written by torch::save): " + file.string());
  c10::IValue text;
  if (!r.archive.try_read("metadata", text)) return std::nullopt;
  if (!text.isString()) throw Error("not a Cozy checkpoint (no metadata): " + file.string());
  try {
    r.metadata = nlohmann::json::parse(text.toStringRef());
  } catch (const std::exception&) {
    throw Error("corrupt checkpoint metadata in " + file.string());
  }
  if (!r.metadata.is_object() || r.metadata.value("format", "") != kFormat)
    throw Error("not a Cozy checkpoint: " + file.string());
  const std::string found = r.metadata.value("kind", "");
  if (found != kind) throw Error(file.string() + " holds a " + found + " model, not " + what);
  return r;
}

Reader open(const fs::path& file, c10::Device device, const std::string& kind, const std::string& what) {
  std::optional<Reader> r = open_if_cozy(file, device, kind, what);
  if (!r) throw Error("not a Cozy checkpoint (no metadata): " + file.string());
  return std::move(*r);
}

fs::path model_path(const Context& ctx, const std::string& name) {
  fs::path file(name);
  return file.is_relative() ? ctx.model_dir() / file : file;
}

fs::path resume_path(const Context& ctx, const std::string& name) {
  fs::path file(name);
  if (file.is_absolute()) return file;
  std::error_code ec;
  for (const fs::path& dir : {ctx.model_save_dir(), ctx.output_dir()})
    if (fs::exists(dir / file, ec)) return dir / file;
  return ctx.model_dir() / file;
}

}  // namespace cozy::checkpoint
