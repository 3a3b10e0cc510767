// cozy/files.hpp — writing output files safely.
//
// Every file a node writes goes through `write_new_file`: the bytes go to a
// temporary name in the destination folder, then the file is linked to its
// final name only if that name is free. A failed run never leaves a
// half-written file, and never replaces an earlier output.
#pragma once

#include <cozy/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>

namespace cozy {

/// Resolves `relative` under `root`, refusing absolute paths and any path
/// that leaves `root` (e.g. "../x", "a/../../x"), with a message naming `what`.
inline std::filesystem::path path_inside(const std::filesystem::path& root, const std::string& relative,
                                         const std::string& what) {
  std::filesystem::path rel(relative);
  if (relative.empty()) throw Error(what + " is empty");
  if (rel.is_absolute() || rel.has_root_name())
    throw Error(what + " '" + relative + "' must be relative to " + root.string());
  std::filesystem::path joined = (root / rel).lexically_normal();
  std::filesystem::path base = root.lexically_normal();
  auto r = joined.lexically_relative(base);
  if (r.empty() || *r.begin() == "..")
    throw Error(what + " '" + relative + "' escapes the folder " + root.string());
  if (r == ".") throw Error(what + " '" + relative + "' names the folder itself, not a file in it");
  return joined;
}

/// Writes a new file at `target` by calling `write(temp_path)`, then links
/// the temporary file to `target`. Returns false (and leaves nothing behind)
/// if `target` already exists; throws if writing fails.
inline bool write_new_file(const std::filesystem::path& target,
                           const std::function<void(const std::filesystem::path&)>& write) {
  std::filesystem::create_directories(target.parent_path());
  std::random_device rd;
  // Same folder (so the link cannot cross file systems) and same extension
  // (writers such as OpenCV pick the format from it).
  std::filesystem::path temp = target.parent_path() / ("." + target.stem().string() + ".tmp" +
                                                       std::to_string(rd()) + target.extension().string());
  try {
    write(temp);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
  // link() fails with EEXIST instead of replacing, unlike rename().
  int rc = ::link(temp.c_str(), target.c_str());
  int err = errno;
  std::error_code ignored;
  std::filesystem::remove(temp, ignored);
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  throw Error("cannot create " + target.string() + ": " + std::strerror(err));
}

/// Writes `<folder>/<stem>_<NNNNN><ext>` with a counter above every one
/// already there (as ComfyUI numbers its outputs), never replacing a file.
/// Returns the path written.
inline std::filesystem::path write_numbered_file(const std::filesystem::path& folder, const std::string& stem,
                                                 const std::string& ext,
                                                 const std::function<void(const std::filesystem::path&)>& write) {
  long counter = 1;
  std::error_code ec;
  const std::string head = stem + "_";
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() <= head.size() + ext.size() || name.compare(0, head.size(), head) != 0) continue;
    if (name.compare(name.size() - ext.size(), ext.size(), ext) != 0) continue;
    std::string digits = name.substr(head.size(), name.size() - head.size() - ext.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    counter = std::max(counter, std::stol(digits) + 1);
  }
  for (int attempt = 0; attempt < 1000; ++attempt, ++counter) {
    char number[24];
    std::snprintf(number, sizeof number, "_%05ld", counter);
    std::filesystem::path target = folder / (stem + number + ext);
    if (write_new_file(target, write)) return target;
  }
  throw Error("no free file name for " + (folder / stem).string());
}

}  // namespace cozy
