// `cozy new-plugin NAME [--dir DIR]`.
#pragma once

#include <filesystem>
#include <string>

namespace cozy::cli {

/// Writes DIR/NAME/: CMakeLists.txt (find_package(Cozy)), src/NAME.cpp with
/// one node, tests/test_NAME.cpp with the SDK's harness, graphs/NAME.json
/// and a README. Prints each file; returns the exit code (2: a bad name or
/// the folder exists).
int new_plugin(const std::string& name, const std::filesystem::path& dir);

}  // namespace cozy::cli
