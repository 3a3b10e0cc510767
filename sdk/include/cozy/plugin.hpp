// cozy/plugin.hpp — the one entry point of a plugin library.
//
//     static void register_nodes(cozy::Registrar& r) { r.add(make_my_node()); }
//     COZY_PLUGIN("my-plugin", "1.0.0", register_nodes)
//
// The macro exports `cozy_plugin` (a Boost.DLL alias) returning a descriptor
// of plain C data. The host reads the descriptor and checks the SDK ABI
// version, the LibTorch version and the compiler ABI tag *before* it calls
// anything else in the library; only then does it call `register_nodes`.
// Every call into a plugin is wrapped by the host: an exception thrown while
// registering marks the plugin failed, and the host goes on with the others.
#pragma once

#include <cozy/node.hpp>
#include <cozy/version.hpp>

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>
#include <torch/version.h>

#include <cstdint>

namespace cozy {

/// Collects the node types of one plugin.
class COZY_INTERFACE Registrar {
 public:
  virtual ~Registrar() = default;
  virtual void add(NodeDef def) = 0;
};

using RegisterFunction = void (*)(Registrar&);

/// Plain C data, so the host can read it before trusting the plugin's C++.
/// New fields are only ever appended; `size` tells the host which exist.
struct PluginDescriptor {
  std::uint32_t size;            ///< sizeof(PluginDescriptor) of the plugin
  std::uint32_t sdk_abi_major;
  std::uint32_t sdk_abi_minor;
  const char* torch_version;     ///< TORCH_VERSION the plugin was built with
  const char* compiler_abi;      ///< COZY_COMPILER_ABI the plugin was built with
  const char* name;
  const char* version;
  RegisterFunction register_nodes;
};

using DescriptorFunction = const PluginDescriptor* (*)();

/// The exported symbol name the host looks for.
inline constexpr const char* kPluginEntryPoint = "cozy_plugin";

}  // namespace cozy

#define COZY_PLUGIN(NAME, VERSION, REGISTER)                                               \
  namespace {                                                                              \
  const ::cozy::PluginDescriptor* cozy_plugin_descriptor_impl() {                          \
    static const ::cozy::PluginDescriptor descriptor{                                      \
        sizeof(::cozy::PluginDescriptor), COZY_SDK_ABI_MAJOR, COZY_SDK_ABI_MINOR,          \
        TORCH_VERSION, COZY_COMPILER_ABI, NAME, VERSION, &REGISTER};                       \
    return &descriptor;                                                                    \
  }                                                                                        \
  }                                                                                        \
  BOOST_DLL_ALIAS(cozy_plugin_descriptor_impl, cozy_plugin)
