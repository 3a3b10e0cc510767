// cozy/value.hpp — what travels along an edge.
//
// A Value holds one of: nothing, a BOOLEAN, an INT, a FLOAT, a STRING, a
// tensor (IMAGE, MASK, LATENT, ...), a list (from a `{"__value__": [...]}`
// literal), or a shared object (GENERATOR, VAE, DATASET, ...) seen through an
// abstract interface that derives from `cozy::Object`.
//
// Values are cheap to copy: tensors, lists and objects are reference counted.
// Plugins share objects only through interfaces declared in the SDK, never
// through each other's classes.
#pragma once

#include <cozy/error.hpp>
#include <cozy/literal.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace cozy {

/// Base of every object passed between nodes by reference.
class COZY_INTERFACE Object {
 public:
  virtual ~Object() = default;
  /// The edge type this object travels as, e.g. "GENERATOR".
  virtual std::string type_name() const = 0;
};
using ObjectPtr = std::shared_ptr<Object>;

class Value;
using List = std::vector<Value>;
using ListPtr = std::shared_ptr<const List>;

class Value {
 public:
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, std::string,
                               at::Tensor, ListPtr, ObjectPtr>;

  Value() = default;
  Value(bool b) : v_(b) {}
  Value(int i) : v_(std::int64_t{i}) {}
  Value(std::int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(at::Tensor t) : v_(std::move(t)) {}
  Value(List list) : v_(std::make_shared<const List>(std::move(list))) {}
  Value(ObjectPtr object) : v_(std::move(object)) {}
  template <class T, class = std::enable_if_t<std::is_base_of_v<Object, T>>>
  Value(std::shared_ptr<T> object) : v_(ObjectPtr(std::move(object))) {}

  bool empty() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_tensor() const { return std::holds_alternative<at::Tensor>(v_); }
  bool is_list() const { return std::holds_alternative<ListPtr>(v_); }
  bool is_object() const { return std::holds_alternative<ObjectPtr>(v_); }

  bool as_bool() const { return get<bool>("BOOLEAN"); }
  std::int64_t as_int() const { return get<std::int64_t>("INT"); }
  /// An INT is accepted where a FLOAT is expected, as in JSON.
  double as_float() const {
    if (is_int()) return static_cast<double>(std::get<std::int64_t>(v_));
    return get<double>("FLOAT");
  }
  const std::string& as_string() const { return get<std::string>("STRING"); }
  const at::Tensor& as_tensor() const { return get<at::Tensor>("tensor"); }
  const List& as_list() const { return *get<ListPtr>("list"); }
  const ObjectPtr& as_object() const { return get<ObjectPtr>("object"); }

  /// The object seen through interface `T`; throws if it is not one.
  template <class T>
  std::shared_ptr<T> as() const {
    auto typed = std::dynamic_pointer_cast<T>(as_object());
    if (!typed) throw Error("object of type " + as_object()->type_name() + " does not have the expected interface");
    return typed;
  }

  const Storage& storage() const { return v_; }
  /// A short name of what is held, for messages.
  std::string kind() const {
    static const char* names[] = {"nothing", "BOOLEAN", "INT", "FLOAT", "STRING", "tensor", "list", "object"};
    return names[v_.index()];
  }

 private:
  template <class T>
  const T& get(const char* wanted) const {
    if (const T* p = std::get_if<T>(&v_)) {
      if constexpr (std::is_same_v<T, ListPtr> || std::is_same_v<T, ObjectPtr>) {
        if (!*p) throw Error(std::string("null ") + wanted);
      }
      return *p;
    }
    throw Error(std::string("expected ") + wanted + ", got " + kind());
  }

  Storage v_;
};

/// A literal (a graph file's value or a spec's default) as a Value; an
/// empty Value for "no value".
inline Value to_value(const Literal& literal) {
  return std::visit(
      [](const auto& v) -> Value {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) return Value();
        else return Value(v);
      },
      literal);
}

}  // namespace cozy
