// `qpipe compare BASELINE.json CURRENT.json`: Markdown diff of two reports;
// exit code 7 (kRegression) on a drop beyond tolerance.

#include <cstdio>

#include "pipeline/cli/cli_common.h"
#include "pipeline/compare.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {
namespace {
const char* kUsage =
    "usage: qpipe compare BASELINE/report.json CURRENT/report.json [options]\n"
    "  --tolerance PP        allowed drop of overall accuracy, percentage points (default 0.5)\n"
    "  --class-tolerance PP  allowed drop of any per-class accuracy (default: not judged)\n"
    "  --sqnr-tolerance DB   allowed drop of any per-tensor SQNR (default: not judged)\n"
    "A folder argument means its report.json (e.g. reports/nightly/latest).\n"
    "exit codes: 0 no regression, 7 regression, 4 unreadable report\n";

nlohmann::json load_report(std::string path) {
  if (std::filesystem::is_directory(path)) path = (std::filesystem::path(path) / "report.json").string();
  nlohmann::json doc = read_json_file(path);
  check_report_document(doc, path);
  return doc;
}
}  // namespace

int cmd_compare(const Args& args) {
  ParsedArgs p = parse_args(args, {"tolerance", "class-tolerance", "sqnr-tolerance"}, {}, kUsage);
  if (p.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (p.positional.size() != 2) fail(ErrorKind::kUsage, "expected two report files\n{}", kUsage);
  CompareOptions opt;
  opt.tolerance_pp = p.double_value("tolerance", 0.5, 0);
  opt.class_tolerance_pp = p.double_value("class-tolerance", -1, 0);
  opt.sqnr_tolerance_db = p.double_value("sqnr-tolerance", -1, 0);
  nlohmann::json base = load_report(p.positional[0]);
  nlohmann::json cur = load_report(p.positional[1]);
  CompareResult r = compare_reports(base, cur, opt, p.positional[0], p.positional[1]);
  std::fputs(r.markdown.c_str(), stdout);
  return r.regression() ? exit_code(ErrorKind::kRegression) : 0;
}

}  // namespace qpipe::cli
