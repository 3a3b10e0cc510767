// Tone and colour: tensor operations on the run's device.
#include "common.hpp"

namespace cozy::postprocess {
namespace {

// PIL's ImageEnhance: blend(degenerate, image, factor) = degenerate + factor (image - degenerate).
at::Tensor enhance(const at::Tensor& image, const at::Tensor& degenerate, double factor) {
  if (factor == 1.0) return image;  // exactly the input, not within rounding
  return (degenerate + factor * (image - degenerate)).clamp(0, 1);
}

InputSpec factor_input() {
  return InputSpec::Float("factor", 1.0).range(0, 10).with_step(0.01).help("1 leaves the image unchanged");
}

// Three channels for formulas that need colour; a grey image is repeated.
at::Tensor as_rgb(const at::Tensor& image) { return image.size(1) == 3 ? image : image.expand({-1, 3, -1, -1}); }

}  // namespace

void register_tone(Registrar& r) {
  {
    NodeDef d = filter("Brightness", "Brightness", "tone",
                       "PIL's ImageEnhance.Brightness: blends with black, out = factor x image, clamped to [0, 1].");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      return {enhance(image, at::zeros_like(image), in.number("factor"))};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Contrast", "Contrast", "tone",
                       "PIL's ImageEnhance.Contrast: blends with the mean grey of each image (mean of the BT.601 "
                       "luma), out = m + factor (image - m), clamped.");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      at::Tensor mean = luma(image).mean({1, 2, 3}, /*keepdim=*/true);
      return {enhance(image, mean.expand_as(image), in.number("factor"))};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Saturation", "Saturation", "tone",
                       "PIL's ImageEnhance.Color: blends with the greyscale image (BT.601 luma), out = L + factor "
                       "(image - L), clamped. A grey image is unchanged.");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      if (image.size(1) == 1) return {image};
      return {enhance(image, luma(image).expand_as(image), in.number("factor"))};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Gamma", "Gamma", "tone",
                       "out = image ^ (1 / gamma): gamma above 1 brightens the mid-tones, as in GIMP's levels.");
    d.spec.inputs.push_back(InputSpec::Float("gamma", 1.0).range(0.01, 10).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      double gamma = in.number("gamma");
      if (gamma == 1.0) return {image};
      return {image.clamp(0, 1).pow(1.0 / gamma)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Levels", "Levels", "tone",
                       "out = clamp((image - black) / (white - black), 0, 1) ^ (1 / gamma). With auto, black and "
                       "white are the low and high percentiles of each image's luma.");
    d.spec.inputs.push_back(InputSpec::Float("black", 0.0).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Float("white", 1.0).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Float("gamma", 1.0).range(0.01, 10).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Boolean("auto", false).help("black and white from percentiles"));
    d.spec.inputs.push_back(InputSpec::Float("low_percentile", 1.0).range(0, 50).with_step(0.1));
    d.spec.inputs.push_back(InputSpec::Float("high_percentile", 99.0).range(50, 100).with_step(0.1));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      const int64_t b = image.size(0);
      at::Tensor black, white;
      if (in.boolean("auto")) {
        at::Tensor flat = luma(image).reshape({b, -1});
        at::Tensor q = at::tensor({in.number("low_percentile") / 100.0, in.number("high_percentile") / 100.0},
                                  image.options());
        at::Tensor bounds = at::quantile(flat, q, /*dim=*/1);  // [2, B]
        black = bounds[0].view({b, 1, 1, 1});
        white = bounds[1].view({b, 1, 1, 1});
      } else {
        black = at::full({1, 1, 1, 1}, in.number("black"), image.options());
        white = at::full({1, 1, 1, 1}, in.number("white"), image.options());
      }
      at::Tensor span = (white - black).clamp_min(1e-6);
      at::Tensor out = ((image - black) / span).clamp(0, 1);
      double gamma = in.number("gamma");
      if (gamma != 1.0) out = out.pow(1.0 / gamma);
      return {out};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("HueShift", "Hue Shift", "colour",
                       "Rotates the hue (HSV, H in degrees, as OpenCV's float HSV) by `degrees`. A grey image is "
                       "unchanged.");
    d.spec.inputs.push_back(InputSpec::Float("degrees", 0.0).range(-360, 360).with_step(1));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      double degrees = in.number("degrees");
      if (image.size(1) == 1 || degrees == 0) return {image};
      at::Tensor hsv = rgb_to_hsv(image.clamp(0, 1));
      at::Tensor h = at::remainder(hsv.select(1, 0) + degrees, 360.0);
      return {hsv_to_rgb(at::stack({h, hsv.select(1, 1), hsv.select(1, 2)}, 1)).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("ColorBalance", "Color Balance", "colour",
                       "Per-channel gains: out = (r x red, g x green, b x blue), clamped. A grey image takes the mean "
                       "of the three gains.");
    for (const char* c : {"red", "green", "blue"})
      d.spec.inputs.push_back(InputSpec::Float(c, 1.0).range(0, 4).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      double r = in.number("red"), g = in.number("green"), b = in.number("blue");
      if (image.size(1) == 1) return {(image * ((r + g + b) / 3.0)).clamp(0, 1)};
      at::Tensor gains = at::tensor({float(r), float(g), float(b)}, image.options()).view({1, 3, 1, 1});
      return {(image * gains).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Invert", "Invert", "colour", "out = 1 - image.");
    d.run = [](const Inputs& in, Context&) -> Outputs { return {1.0 - image_input(in, "image")}; };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Grayscale", "Grayscale", "colour",
                       "BT.601 luma, 0.299 R + 0.587 G + 0.114 B (OpenCV's RGB2GRAY, PIL's \"L\"). One channel, or "
                       "three equal ones with keep_channels.");
    d.spec.inputs.push_back(InputSpec::Boolean("keep_channels", false));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      at::Tensor grey = luma(image);
      if (in.boolean("keep_channels")) grey = grey.expand({-1, 3, -1, -1}).contiguous();
      return {grey};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Threshold", "Threshold", "tone",
                       "out = 1 where the value is above the threshold, else 0, per channel (OpenCV's "
                       "THRESH_BINARY); with luma, on the luma and one channel out.");
    d.spec.inputs.push_back(InputSpec::Float("threshold", 0.5).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Boolean("luma", false));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      if (in.boolean("luma")) image = luma(image);
      return {image.gt(in.number("threshold")).to(at::kFloat)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Sepia", "Sepia", "colour",
                       "The classic sepia matrix (R' = .393 R + .769 G + .189 B, G' = .349 R + .686 G + .168 B, "
                       "B' = .272 R + .534 G + .131 B), blended with the image by strength, clamped. Always three "
                       "channels out.");
    d.spec.inputs.push_back(InputSpec::Float("strength", 1.0).range(0, 1).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = as_rgb(image_input(in, "image"));
      at::Tensor m = at::tensor({0.393f, 0.769f, 0.189f, 0.349f, 0.686f, 0.168f, 0.272f, 0.534f, 0.131f},
                                image.options()).view({3, 3});
      at::Tensor sepia = at::einsum("oc,bchw->bohw", {m, image}).clamp(0, 1);
      double s = in.number("strength");
      return {(image + s * (sepia - image)).clamp(0, 1).contiguous()};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
