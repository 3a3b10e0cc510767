// Layouts and interaction logs as JSON (docs/interaction.md has both formats).
#pragma once

#include <array>
#include <cozy/layout.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace cozy::interaction {

/// "#rgb", "#rrggbb", "rgb(r, g, b)" (0-255) or a colour name; Error otherwise.
std::array<double, 3> parse_color(const std::string& text);
std::string color_text(const std::array<double, 3>& rgb);

/// Checks a shape: known kind and texture, positive sizes and scale.
/// Errors name the shape.
void check_shape(const LayoutShape& shape);

LayoutShape shape_from_json(const nlohmann::json& j, const std::string& where);
nlohmann::json shape_to_json(const LayoutShape& shape);

/// {"format": "cozy-layout", "version": 1, "background": ..., "shapes": [...]}
Layout layout_from_json(const nlohmann::json& j);
nlohmann::json layout_to_json(const Layout& layout);

/// Applies an interaction log ({"format": "cozy-interaction-log",
/// "operations": [...]}, or the operations array alone) to `layout`.
/// Errors name the operation (its index and kind) and the shape.
void replay(Layout& layout, const nlohmann::json& log);

}  // namespace cozy::interaction
