// cozy/version.hpp — versions a plugin is checked against when it loads.
#pragma once

/// The SDK's binary interface. A host refuses a plugin whose major differs
/// from its own or whose minor is newer (it may use things the host lacks).
#define COZY_SDK_ABI_MAJOR 3
#define COZY_SDK_ABI_MINOR 1

/// Marks a class that objects cross plugins as: its type_info and vtable are
/// exported, so a dynamic_cast between two plugins built apart (each with
/// hidden visibility, loaded RTLD_LOCAL) finds one identity for the class.
#if defined(_WIN32)
#define COZY_INTERFACE
#else
#define COZY_INTERFACE __attribute__((visibility("default")))
#endif

#define COZY_STRINGIFY_IMPL(x) #x
#define COZY_STRINGIFY(x) COZY_STRINGIFY_IMPL(x)

/// Compiler, C++ ABI generation and standard library ABI: two binaries with
/// different tags cannot safely pass std::string or std::function across.
#if defined(__clang__)
#define COZY_COMPILER_FAMILY "itanium"
#elif defined(__GNUC__)
#define COZY_COMPILER_FAMILY "itanium"
#elif defined(_MSC_VER)
#define COZY_COMPILER_FAMILY "msvc-" COZY_STRINGIFY(_MSC_VER)
#endif
#if defined(__GXX_ABI_VERSION)
#define COZY_CXXABI "-cxxabi" COZY_STRINGIFY(__GXX_ABI_VERSION)
#else
#define COZY_CXXABI ""
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define COZY_STDLIB_ABI "-glibcxx" COZY_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define COZY_STDLIB_ABI "-libcxx" COZY_STRINGIFY(_LIBCPP_ABI_VERSION)
#else
#define COZY_STDLIB_ABI ""
#endif
#define COZY_COMPILER_ABI COZY_COMPILER_FAMILY COZY_CXXABI COZY_STDLIB_ABI
