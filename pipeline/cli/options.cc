#include "pipeline/cli/options.h"

#include <fmt/format.h>

#include <tbb/info.h>

#include <cstdio>

#include "engine/error.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {

Options::Options(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

Options& Options::value(const std::string& name, const std::string& metavar, const std::string& help,
                        std::optional<std::string> dflt) {
  decls_.push_back({name, metavar, help, true, std::move(dflt)});
  return *this;
}

Options& Options::flag(const std::string& name, const std::string& help) {
  decls_.push_back({name, "", help, false, std::nullopt});
  return *this;
}

Options& Options::positional(const std::string& name, const std::string& help, bool required) {
  positionals_.push_back({name, help, required});
  return *this;
}

std::string Options::help() const {
  std::string out = fmt::format("usage: qpipe {} {}\n\n{}\n", command_, synopsis_, description_);
  if (!positionals_.empty()) {
    out += "\narguments:\n";
    for (const auto& p : positionals_) out += fmt::format("  {:<24} {}\n", p.name, p.help);
  }
  out += "\noptions:\n";
  for (const auto& d : decls_) {
    std::string left = "--" + d.name + (d.takes_value ? " " + d.metavar : "");
    std::string dflt = d.dflt ? fmt::format(" (default: {})", *d.dflt) : "";
    out += fmt::format("  {:<24} {}{}\n", left, d.help, dflt);
  }
  out += fmt::format("  {:<24} {}\n", "--help", "show this help");
  return out;
}

bool Options::parse(const std::vector<std::string>& args) {
  std::vector<std::string> names;
  for (const auto& d : decls_) names.push_back("--" + d.name);
  std::size_t pos = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), val;
      bool inline_val = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        val = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_val = true;
      }
      const Decl* decl = nullptr;
      for (const auto& d : decls_)
        if (d.name == name) decl = &d;
      if (!decl)
        fail(ErrorKind::kUsage, "qpipe {}: unknown option '--{}'{}\n{}", command_, name, did_you_mean("--" + name, names),
             "(see --help)");
      if (!decl->takes_value) {
        if (inline_val) fail(ErrorKind::kUsage, "qpipe {}: option '--{}' takes no value", command_, name);
        switches_[name] = true;
        continue;
      }
      if (!inline_val) {
        if (i + 1 >= args.size()) fail(ErrorKind::kUsage, "qpipe {}: option '--{}' needs a value ({})", command_, name, decl->metavar);
        val = args[++i];
      }
      values_[name] = val;
      continue;
    }
    if (pos >= positionals_.size()) fail(ErrorKind::kUsage, "qpipe {}: unexpected argument '{}' (see --help)", command_, a);
    values_[positionals_[pos++].name] = a;
  }
  for (; pos < positionals_.size(); ++pos)
    if (positionals_[pos].required)
      fail(ErrorKind::kUsage, "qpipe {}: missing argument {} (see --help)", command_, positionals_[pos].name);
  return true;
}

bool Options::has(const std::string& name) const {
  if (values_.count(name)) return true;
  for (const auto& d : decls_)
    if (d.name == name && d.dflt) return true;
  return false;
}

std::optional<std::string> Options::get_optional(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  for (const auto& d : decls_)
    if (d.name == name && d.dflt) return d.dflt;
  return std::nullopt;
}

std::string Options::get(const std::string& name) const {
  auto v = get_optional(name);
  if (!v) fail(ErrorKind::kUsage, "qpipe {}: --{} is required (see --help)", command_, name);
  return *v;
}

int64_t Options::get_int(const std::string& name) const {
  const std::string v = get(name);
  try {
    std::size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    fail(ErrorKind::kUsage, "qpipe {}: --{} expects an integer, got '{}'", command_, name, v);
  }
}

bool Options::is_set(const std::string& name) const {
  auto it = switches_.find(name);
  return it != switches_.end() && it->second;
}

int thread_budget(const Options& opts) {
  const int64_t t = opts.get_int("threads");
  if (t < 0) fail(ErrorKind::kUsage, "--threads must be >= 0 (0 = all cores), got {}", t);
  return t == 0 ? tbb::info::default_concurrency() : static_cast<int>(t);
}

}  // namespace qpipe::cli
