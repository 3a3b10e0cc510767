// cozy/error.hpp — exceptions a node throws to report a failure.
#pragma once

#include <cozy/version.hpp>

#include <stdexcept>
#include <string>

namespace cozy {

/// A failure with a message meant for the user. The host reports it with the
/// node's id and class_type; nodes that depend on the failed node are skipped.
class COZY_INTERFACE Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by `Context::check_cancelled()`; the host reports the run as
/// interrupted rather than failed.
class COZY_INTERFACE Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

}  // namespace cozy
