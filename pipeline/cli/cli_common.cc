#include "pipeline/cli/cli_common.h"

#include <cstdlib>

#include "engine/error.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {

const StageRegistry& cli_registry() {
  static const StageRegistry reg = [] {
    StageRegistry r;
    register_builtin_stages(r);
    const char* t = std::getenv("QPIPE_ENABLE_TEST_STAGES");
    if (t && std::string(t) == "1") register_test_stages(r);
    return r;
  }();
  return reg;
}

std::optional<std::string> ParsedArgs::value(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

int ParsedArgs::int_value(const std::string& name, int fallback, int min) const {
  auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || x < min || x > (1 << 20)) {
    fail(ErrorKind::kUsage, "--{} expects an integer >= {}, got '{}'", name, min, *v);
  }
  return static_cast<int>(x);
}

double ParsedArgs::double_value(const std::string& name, double fallback, double min) const {
  auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || !(x >= min)) {
    fail(ErrorKind::kUsage, "--{} expects a number >= {}, got '{}'", name, min, *v);
  }
  return x;
}

ParsedArgs parse_args(const Args& args, const std::set<std::string>& value_options, const std::set<std::string>& flag_options,
                      const std::string& usage) {
  ParsedArgs p;
  std::vector<std::string> known;
  for (const auto& o : value_options) known.push_back("--" + o);
  for (const auto& o : flag_options) known.push_back("--" + o);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      p.help = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || a == "--") {
      p.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), val;
    bool has_val = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      val = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_val = true;
    }
    if (value_options.count(name)) {
      if (!has_val) {
        if (i + 1 >= args.size()) fail(ErrorKind::kUsage, "option --{} needs a value\n{}", name, usage);
        val = args[++i];
      }
      p.values[name] = val;
    } else if (flag_options.count(name) && !has_val) {
      p.flags.insert(name);
    } else {
      fail(ErrorKind::kUsage, "unknown option '{}'{}\n{}", a, did_you_mean("--" + name, known), usage);
    }
  }
  return p;
}

}  // namespace qpipe::cli
