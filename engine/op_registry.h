#pragma once
// The explicit op table (STYLE.md 3): ONNX op_type -> prepare function. Every
// kernel file exposes a `Prepared prepare_<op>(...)` declared in
// engine/kernels/kernels.h and listed once in op_registry.cc. Registering a
// name twice is an error; an unknown op is reported by Session with the list
// of supported ops.

#include <map>
#include <string>
#include <vector>

#include "engine/kernel.h"

namespace qpipe {

class OpRegistry {
 public:
  static const OpRegistry& instance();
  // nullptr when the op is not supported.
  PrepareFn find(const std::string& op_type) const;
  std::vector<std::string> supported_ops() const;

 private:
  OpRegistry();
  void add(const std::string& op_type, PrepareFn fn);
  std::map<std::string, PrepareFn> table_;
};

}  // namespace qpipe
