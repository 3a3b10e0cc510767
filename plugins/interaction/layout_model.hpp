// A learned layout-to-image generator (LAYOUT_MODEL edges): the interface
// the interaction nodes use, without LibTorch's nn headers.
#pragma once

#include <cozy/layout.hpp>
#include <cozy/models.hpp>
#include <string>
#include <vector>

namespace cozy::interaction {

class LayoutModel : public Object, public SavableModel {
 public:
  std::string type_name() const override { return "LAYOUT_MODEL"; }
  /// The side of the square images it makes (and of the maps it reads).
  virtual std::int64_t size() const = 0;
  /// The object classes its class map knows, in order.
  virtual const std::vector<std::string>& class_names() const = 0;
  /// The image [1, 3, size, size] in [0, 1] for `layout`, on `device`.
  virtual at::Tensor generate(const Layout& layout, c10::Device device) const = 0;
};

}  // namespace cozy::interaction
