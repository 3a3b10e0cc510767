// A SpecSource over a fixed table of node types: what validation and
// conversion tests (and the fuzzer) look types up in, without plugins.
#pragma once

#include <cozy/host/validate.hpp>

#include <map>
#include <string>
#include <vector>

namespace cozy::host {

class TableSpecs : public SpecSource {
 public:
  const NodeSpec* find_spec(const std::string& type) const override {
    auto it = specs_.find(type);
    return it == specs_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> class_types() const override {
    std::vector<std::string> out;
    for (const auto& [k, v] : specs_) out.push_back(k);
    return out;
  }
  void add(NodeSpec s) { specs_[s.class_type] = std::move(s); }

 private:
  std::map<std::string, NodeSpec> specs_;
};

}  // namespace cozy::host
