// A whole Cozy plugin: one node that tints an image.
#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

static void register_nodes(cozy::Registrar& registrar) {
  cozy::NodeDef tint;
  tint.spec.class_type = "HelloTint";
  tint.spec.display_name = "Hello Tint";
  tint.spec.category = "examples";
  tint.spec.description = "Multiplies each channel of an image by a gain (an out-of-tree example).";
  tint.spec.inputs = {cozy::InputSpec::Link("image", cozy::types::IMAGE),
                      cozy::InputSpec::Float("red", 1.0).range(0, 4).with_step(0.05),
                      cozy::InputSpec::Float("green", 1.0).range(0, 4).with_step(0.05),
                      cozy::InputSpec::Float("blue", 1.0).range(0, 4).with_step(0.05)};
  tint.spec.outputs = {{"IMAGE", cozy::types::IMAGE}};
  tint.run = [](const cozy::Inputs& in, cozy::Context&) -> cozy::Outputs {
    const at::Tensor& image = in.image("image");
    if (image.size(1) != 3) throw cozy::Error("HelloTint needs a colour image");
    at::Tensor gains = at::tensor({float(in.number("red")), float(in.number("green")), float(in.number("blue"))},
                                  image.options()).view({1, 3, 1, 1});
    return {(image * gains).clamp(0, 1)};
  };
  registrar.add(std::move(tint));
}

COZY_PLUGIN("hello", "1.0.0", register_nodes)
