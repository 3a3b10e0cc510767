// cozy/spec.hpp — what a node declares about itself.
//
// A spec is everything a user (or a UI, or the validator) needs to know about
// a node without running it: its inputs with their types, defaults, ranges and
// choices, its outputs, and two flags that change how the host treats it:
//
//  - `output_node`: the graph is executed backwards from these nodes; a graph
//    without one is invalid.
//  - `pure`: same inputs give the same outputs, so the host may serve results
//    from its cache. A node that reads a file that can change, or draws
//    randomness without a seed input, sets `pure = false`.
//
// Torch-free: this header is shared with the validator and its fuzzer.
#pragma once

#include <cozy/literal.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cozy {

/// Type names on edges. An edge is legal when the names match, or when
/// either side is `*` (ANY). Plugins may use further names; these are the
/// ones the SDK documents conventions for (see docs/graph-format.md).
namespace types {
inline constexpr const char* ANY = "*";
inline constexpr const char* INT = "INT";
inline constexpr const char* FLOAT = "FLOAT";
inline constexpr const char* STRING = "STRING";
inline constexpr const char* BOOLEAN = "BOOLEAN";
/// float32 [B, C, H, W] in [0, 1], C = 1 or 3, on the run's device; C = 4
/// (RGBA, straight alpha) only between the nodes that say they take it
/// (Inputs::image_or_rgba: ComfyUI's compositing nodes, SaveImage, PreviewImage).
inline constexpr const char* IMAGE = "IMAGE";
/// float32 [B, 1, H, W] in [0, 1], on the run's device.
inline constexpr const char* MASK = "MASK";
/// float32 [B, D] or [B, C, H, W], on the run's device.
inline constexpr const char* LATENT = "LATENT";
inline constexpr const char* GENERATOR = "GENERATOR";
inline constexpr const char* DISCRIMINATOR = "DISCRIMINATOR";
inline constexpr const char* VAE = "VAE";
inline constexpr const char* CLASSIFIER = "CLASSIFIER";
inline constexpr const char* DATASET = "DATASET";
inline constexpr const char* LAYOUT = "LAYOUT";
inline constexpr const char* FEEDBACK = "FEEDBACK";
/// A region in pixels, as ComfyUI's BOUNDING_BOX: a graph file writes it as
/// the object {"x": 0, "y": 0, "width": 512, "height": 512} (a key left out
/// takes that value); it reaches a node as a list of four INTs, x, y, width,
/// height.
inline constexpr const char* BOUNDING_BOX = "BOUNDING_BOX";

/// The four types a graph file can write as a scalar literal.
inline bool is_primitive(const std::string& type) {
  return type == INT || type == FLOAT || type == STRING || type == BOOLEAN;
}
/// The types an editor shows as a widget on the node (a literal in a graph
/// file): the four primitives and BOUNDING_BOX (an object literal).
inline bool is_widget(const std::string& type) { return is_primitive(type) || type == BOUNDING_BOX; }
}  // namespace types

/// One input of a node. Build it with the named constructors and chain the
/// setters:  `InputSpec::Int("seed", 0).range(0, 1 << 30).help("...")`.
struct InputSpec {
  std::string name;
  std::string type;
  bool required = true;
  Literal default_value;            ///< monostate: the user must give one
  std::optional<double> min, max;   ///< inclusive bounds, INT and FLOAT only
  std::optional<double> step;       ///< UI hint for INT and FLOAT
  std::vector<std::string> choices; ///< non-empty: a STRING among these (a COMBO)
  std::string tooltip;
  bool multiline = false;           ///< UI hint for STRING
  /// Non-empty ("models" or "input"): a STRING naming a file in that folder
  /// of the run (or an absolute path). The host lists the folder's files
  /// with these extensions as the choices, and validation checks the file.
  std::string file_folder;
  std::vector<std::string> file_extensions;
  bool is_choice = false;           ///< made by Choice(): `choices` must not be empty
  /// Further options for an editor, as the text of a JSON object that
  /// object_info merges into this input's options, e.g.
  /// `{"control_after_generate": true}`, `{"display": "color"}`,
  /// `{"advanced": true}`. The host checks it is an object when it loads
  /// the plugin; it never changes what the node computes.
  std::string ui;

  static InputSpec Int(std::string name, std::int64_t def) {
    return make(std::move(name), types::INT, Literal{def});
  }
  static InputSpec Float(std::string name, double def) {
    return make(std::move(name), types::FLOAT, Literal{def});
  }
  static InputSpec String(std::string name, std::string def = {}) {
    return make(std::move(name), types::STRING, Literal{std::move(def)});
  }
  static InputSpec Boolean(std::string name, bool def) {
    return make(std::move(name), types::BOOLEAN, Literal{def});
  }
  /// A STRING restricted to `options`; the first is the default.
  static InputSpec Choice(std::string name, std::vector<std::string> options) {
    InputSpec in = make(std::move(name), types::STRING, Literal{});
    if (!options.empty()) in.default_value = options.front();
    in.choices = std::move(options);
    in.is_choice = true;
    return in;
  }
  /// An input that must come over an edge (IMAGE, GENERATOR, ...): no default.
  static InputSpec Link(std::string name, std::string type) {
    return make(std::move(name), std::move(type), Literal{});
  }

  InputSpec& range(double lo, double hi) { min = lo; max = hi; return *this; }
  InputSpec& with_step(double s) { step = s; return *this; }
  InputSpec& help(std::string text) { tooltip = std::move(text); return *this; }
  InputSpec& optional() { required = false; return *this; }
  InputSpec& multiline_text() { multiline = true; return *this; }
  InputSpec& with_ui(std::string json_object) { ui = std::move(json_object); return *this; }
  InputSpec& files_in(std::string folder, std::vector<std::string> extensions) {
    file_folder = std::move(folder);
    file_extensions = std::move(extensions);
    return *this;
  }

 private:
  static InputSpec make(std::string name, std::string type, Literal def) {
    InputSpec in;
    in.name = std::move(name);
    in.type = std::move(type);
    in.default_value = std::move(def);
    return in;
  }
};

/// One output of a node: a name for people and a type for the validator.
/// `is_list` (ComfyUI's OUTPUT_IS_LIST): the node returns a list Value here,
/// and each element travels on its own: a node downstream runs once per
/// element (see NodeSpec::input_is_list).
struct OutputSpec {
  std::string name;
  std::string type;
  bool is_list = false;
};

/// Everything the host knows about a node type before running it.
///
/// Lists, as ComfyUI runs them: what travels on an edge is a list of values,
/// one long unless a node says otherwise. A node runs once per element of its
/// longest input list (a shorter list repeats its last element; an empty one
/// means the node does not run) and each output collects one value per run.
/// A node with `input_is_list` runs once and receives every input as a list
/// Value (a literal as a list of one); an output with `is_list` returns a
/// list Value whose elements are spread.
struct NodeSpec {
  std::string class_type;    ///< unique key, as in ComfyUI's `class_type`
  std::string display_name;  ///< empty: class_type is shown
  std::string category;      ///< slash-separated, e.g. "image/postprocess"
  std::string description;
  std::vector<InputSpec> inputs;
  std::vector<OutputSpec> outputs;
  bool output_node = false;
  bool pure = true;
  bool input_is_list = false;  ///< ComfyUI's INPUT_IS_LIST: run once on the whole lists
  /// Further node-level entries for an editor's object_info, as the text of a
  /// JSON object (e.g. `{"deprecated": true}`); checked at load like InputSpec::ui.
  std::string ui;

  /// Index of the input called `name`, or -1.
  int input_index(const std::string& input_name) const {
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].name == input_name) return static_cast<int>(i);
    return -1;
  }
};

}  // namespace cozy
