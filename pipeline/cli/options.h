#pragma once
// A small command-line option parser for qpipe's subcommands: declared flags
// (--name VALUE or --name=VALUE, boolean switches), positionals, --help text,
// and kUsage errors naming the bad option with a "did you mean".

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qpipe::cli {

class Options {
 public:
  Options(std::string command, std::string synopsis, std::string description);
  // A flag taking a value; `metavar` is shown in help.
  Options& value(const std::string& name, const std::string& metavar, const std::string& help,
                 std::optional<std::string> dflt = std::nullopt);
  // A boolean switch.
  Options& flag(const std::string& name, const std::string& help);
  Options& positional(const std::string& name, const std::string& help, bool required = true);

  // Returns false when --help was given (help already printed to stdout).
  bool parse(const std::vector<std::string>& args);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // value or default; kUsage error when absent
  std::optional<std::string> get_optional(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  bool is_set(const std::string& name) const;  // switch given
  std::string help() const;

 private:
  struct Decl {
    std::string name, metavar, help;
    bool takes_value = true;
    std::optional<std::string> dflt;
  };
  struct Pos {
    std::string name, help;
    bool required;
  };
  std::string command_, synopsis_, description_;
  std::vector<Decl> decls_;
  std::vector<Pos> positionals_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> switches_;
};

// The thread budget from --threads (0 = all cores); kUsage error when negative.
int thread_budget(const Options& opts);

}  // namespace qpipe::cli
