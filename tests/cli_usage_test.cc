// Command-line usage of the `qpipe` binary: --help on every command exits 0
// with a usage text on stdout; an unknown option, a missing or malformed value
// is a usage error (exit code 2, engine/error.h kUsage) with a did-you-mean
// suggestion where one is close.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/process.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using testing::run_process;

testing::ProcessResult qpipe(std::vector<std::string> args) {
  args.insert(args.begin(), testing::qpipe_bin());
  return run_process(args);
}

void expect_usage_error(const testing::ProcessResult& r, const std::vector<std::string>& mentions) {
  ASSERT_FALSE(r.signaled) << r.describe();
  EXPECT_EQ(r.exit_code, exit_code(ErrorKind::kUsage)) << r.describe();
  for (const auto& m : mentions) EXPECT_THAT(r.err, HasSubstr(m)) << r.describe();
}

class CliUsage : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(testing::qpipe_bin())) << testing::qpipe_bin() << " not built";
  }
};

TEST_F(CliUsage, TopLevelHelpAndNoArguments) {
  auto h = qpipe({"--help"});
  ASSERT_EQ(h.exit_code, 0) << h.describe();
  EXPECT_THAT(h.out, HasSubstr("usage: qpipe"));
  EXPECT_THAT(h.out, HasSubstr("eval"));
  EXPECT_THAT(h.out, HasSubstr("inspect"));
  auto none = qpipe({});
  expect_usage_error(none, {"usage: qpipe"});
}

TEST_F(CliUsage, EvalHelp) {
  auto r = qpipe({"eval", "--help"});
  ASSERT_FALSE(r.signaled) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* s : {"usage: qpipe eval", "--model", "--data", "--split", "--max-samples", "--batch", "--threads",
                        "--json", "--predictions"})
    EXPECT_THAT(r.out, HasSubstr(s)) << r.describe();
  EXPECT_EQ(r.err, "");
  // -h is the same, and --help wins even with other (invalid) options present.
  EXPECT_EQ(qpipe({"eval", "-h"}).out, r.out);
  EXPECT_EQ(qpipe({"eval", "--help", "--batch", "0"}).exit_code, 0);
}

TEST_F(CliUsage, InspectHelp) {
  auto r = qpipe({"inspect", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("usage: qpipe inspect"));
  EXPECT_THAT(r.out, HasSubstr("MODEL"));
}

TEST_F(CliUsage, UnknownOptionSuggestsTheClosestOne) {
  expect_usage_error(qpipe({"eval", "--modle", "m.onnx", "--data", "d"}), {"--modle", "did you mean '--model'"});
  expect_usage_error(qpipe({"eval", "--max-sample", "10"}), {"--max-sample", "did you mean '--max-samples'"});
  expect_usage_error(qpipe({"inspect", "--tensor", "m.onnx"}), {"--tensor", "did you mean '--tensors'"});
  // Nothing close: still a usage error, pointing at --help.
  expect_usage_error(qpipe({"eval", "--zzzzzzzzzzzz"}), {"--zzzzzzzzzzzz", "--help"});
}

TEST_F(CliUsage, MissingAndMalformedValues) {
  expect_usage_error(qpipe({"eval", "--data", "d"}), {"--model"});
  expect_usage_error(qpipe({"eval", "--model"}), {"--model", "needs a value"});
  {
    // --max-samples is parsed after the data folder is opened, so give a valid one.
    testing::ScratchDir data("cli_usage_data");
    testing::write_cifar_fixture(data, 2);
    expect_usage_error(qpipe({"eval", "--model", "m", "--data", data.path(), "--max-samples", "ten"}),
                       {"--max-samples", "ten"});
  }
  expect_usage_error(qpipe({"eval", "--model", "m", "--data", "d", "--batch", "0"}), {"--batch"});
  expect_usage_error(qpipe({"eval", "--model", "m", "--data", "d", "--threads", "-3"}), {"--threads"});
  expect_usage_error(qpipe({"inspect"}), {"MODEL"});
  expect_usage_error(qpipe({"inspect", "a.onnx", "b.onnx"}), {"b.onnx"});
}

TEST_F(CliUsage, UnknownCommand) {
  auto r = qpipe({"evaluate"});
  expect_usage_error(r, {"unknown command 'evaluate'", "eval"});
}

}  // namespace
}  // namespace qpipe
