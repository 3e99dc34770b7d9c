#include "engine/error.h"

namespace qpipe {

const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kUsage: return "usage error";
    case ErrorKind::kSpec: return "spec error";
    case ErrorKind::kInput: return "input error";
    case ErrorKind::kUnsupported: return "unsupported model";
    case ErrorKind::kGateFailed: return "gate failed";
    case ErrorKind::kRegression: return "regression";
    case ErrorKind::kRuntime: return "runtime error";
    case ErrorKind::kInterrupted: return "interrupted";
  }
  return "error";
}

}  // namespace qpipe
