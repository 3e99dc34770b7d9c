// load_onnx on hand-built ModelProtos (libonnx's generated classes): data
// types, external data, attribute types and graph structure qpipe cannot use
// are refused with a message naming the file and the offending tensor or
// node; legal encodings (typed *_data fields, unnamed nodes) load correctly.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/session.h"
#include "tests/fixtures/kernel_runner.h"
#include "tests/fixtures/process.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;

// X [1,3] float -> Relu -> Y, opset 13.
onnx::ModelProto relu_model() {
  onnx::ModelProto p;
  p.set_ir_version(8);
  auto* op = p.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  auto* g = p.mutable_graph();
  g->set_name("g");
  auto add_vi = [](onnx::ValueInfoProto* v, const std::string& name, int type) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    tt->mutable_shape()->add_dim()->set_dim_value(1);
    tt->mutable_shape()->add_dim()->set_dim_value(3);
  };
  add_vi(g->add_input(), "X", onnx::TensorProto::FLOAT);
  add_vi(g->add_output(), "Y", onnx::TensorProto::FLOAT);
  auto* n = g->add_node();
  n->set_name("relu");
  n->set_op_type("Relu");
  n->add_input("X");
  n->add_output("Y");
  return p;
}

class OnnxLoad : public ::testing::Test {
 protected:
  std::string write(const onnx::ModelProto& p, const std::string& name) {
    std::string bytes;
    EXPECT_TRUE(p.SerializeToString(&bytes));
    return dir_.write(name, bytes);
  }
  // Expects load_onnx (and, if it loads, Session) to fail with `kind`, naming the file and `mentions`.
  void expect_refused(const onnx::ModelProto& p, const std::string& name, ErrorKind kind,
                      const std::vector<std::string>& mentions) {
    const std::string path = write(p, name);
    try {
      Session s(load_onnx(path));
      ADD_FAILURE() << name << " was accepted";
    } catch (const PtqError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(path));
      for (const auto& m : mentions) EXPECT_THAT(e.what(), HasSubstr(m));
    }
  }
  testing::ScratchDir dir_{"onnx_load"};
};

TEST_F(OnnxLoad, BaselineLoadsAndRuns) {
  const std::string path = write(relu_model(), "relu.onnx");
  Model m = load_onnx(path);
  EXPECT_EQ(m.opset, 13);
  EXPECT_EQ(m.graph.inputs, std::vector<std::string>{"X"});
  Tensor y = Session(m).run(testing::f32({1, 3}, std::vector<float>{-1, 0, 2})).at(0);
  EXPECT_EQ(y.data<float>()[0], 0.f);
  EXPECT_EQ(y.data<float>()[2], 2.f);
}

TEST_F(OnnxLoad, Float16InitializerIsUnsupported) {
  auto p = relu_model();
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name("half_weights");
  t->set_data_type(onnx::TensorProto::FLOAT16);
  t->add_dims(2);
  t->set_raw_data(std::string(4, '\0'));
  expect_refused(p, "fp16_init.onnx", ErrorKind::kUnsupported, {"half_weights", "FLOAT16"});
}

TEST_F(OnnxLoad, Float16GraphInputIsUnsupported) {
  auto p = relu_model();
  p.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT16);
  expect_refused(p, "fp16_input.onnx", ErrorKind::kUnsupported, {"'X'", "FLOAT16"});
}

TEST_F(OnnxLoad, ExternalDataIsUnsupported) {
  auto p = relu_model();
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name("big_weights");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value("weights.bin");
  expect_refused(p, "external.onnx", ErrorKind::kUnsupported, {"big_weights", "externally"});
}

TEST_F(OnnxLoad, RawDataSizeMismatchIsAnInputError) {
  auto p = relu_model();
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name("short_weights");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_raw_data(std::string(10, '\0'));  // 16 needed
  expect_refused(p, "short_raw.onnx", ErrorKind::kInput, {"short_weights", "10 bytes", "16"});
  auto q = relu_model();
  auto* u = q.mutable_graph()->add_initializer();
  u->set_name("few_floats");
  u->set_data_type(onnx::TensorProto::FLOAT);
  u->add_dims(3);
  u->add_float_data(1.f);
  expect_refused(q, "short_float_data.onnx", ErrorKind::kInput, {"few_floats", "1 values", "3"});
}

TEST_F(OnnxLoad, GraphAttributeIsUnsupported) {
  auto p = relu_model();
  auto* n = p.mutable_graph()->add_node();
  n->set_name("branchy");
  n->set_op_type("If");
  n->add_input("X");
  n->add_output("Z");
  auto* a = n->add_attribute();
  a->set_name("then_branch");
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name("then");
  expect_refused(p, "if.onnx", ErrorKind::kUnsupported, {"branchy", "then_branch", "GRAPH"});
}

TEST_F(OnnxLoad, StructuralErrorsNameTheNodeOrTensor) {
  {
    auto p = relu_model();
    p.mutable_opset_import(0)->set_domain("com.example");
    expect_refused(p, "no_opset.onnx", ErrorKind::kInput, {"opset"});
  }
  {
    auto p = relu_model();
    p.mutable_graph()->mutable_node(0)->set_input(0, "missing_tensor");
    expect_refused(p, "dangling.onnx", ErrorKind::kInput, {"'relu'", "missing_tensor"});
  }
  {
    auto p = relu_model();
    p.mutable_graph()->mutable_output(0)->set_name("not_produced");
    expect_refused(p, "bad_output.onnx", ErrorKind::kInput, {"not_produced"});
  }
  {
    auto p = relu_model();
    auto* n = p.mutable_graph()->add_node();
    n->set_name("relu_again");
    n->set_op_type("Relu");
    n->add_input("X");
    n->add_output("Y");
    expect_refused(p, "twice.onnx", ErrorKind::kInput, {"'Y'", "produced twice", "relu_again"});
  }
  {
    // a -> b -> a: a cycle.
    auto p = relu_model();
    auto* g = p.mutable_graph();
    g->mutable_node(0)->set_input(0, "b");
    g->mutable_node(0)->set_output(0, "a");
    auto* n = g->add_node();
    n->set_name("loop_back");
    n->set_op_type("Relu");
    n->add_input("a");
    n->add_output("b");
    auto* id = g->add_node();
    id->set_name("out");
    id->set_op_type("Identity");
    id->add_input("X");
    id->add_output("Y");
    expect_refused(p, "cycle.onnx", ErrorKind::kInput, {"cycle", "loop_back"});
  }
}

TEST_F(OnnxLoad, TypedDataFieldsAndUnnamedNodesLoad) {
  auto p = relu_model();
  auto* g = p.mutable_graph();
  g->mutable_node(0)->clear_name();
  auto* t = g->add_initializer();
  t->set_name("q8");
  t->set_data_type(onnx::TensorProto::INT8);
  t->add_dims(3);
  for (int v : {-128, 0, 127}) t->add_int32_data(v);
  auto* f = g->add_initializer();
  f->set_name("f");
  f->set_data_type(onnx::TensorProto::FLOAT);
  f->add_dims(2);
  f->add_float_data(1.5f);
  f->add_float_data(-2.f);
  const std::string path = write(p, "typed.onnx");
  Model m = load_onnx(path);
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].name, "Relu_0");
  const Tensor& q = m.graph.initializers.at("q8");
  ASSERT_EQ(q.dtype(), DType::kInt8);
  EXPECT_EQ(q.data<int8_t>()[0], -128);
  EXPECT_EQ(q.data<int8_t>()[2], 127);
  EXPECT_EQ(m.graph.initializers.at("f").data<float>()[1], -2.f);
  // save_onnx writes raw_data; the round trip keeps values and names.
  const std::string again = dir_.file("typed_again.onnx");
  save_onnx(m, again);
  Model back = load_onnx(again);
  EXPECT_TRUE(testing::bit_identical(back.graph.initializers.at("q8"), q));
  EXPECT_EQ(back.graph.nodes[0].name, "Relu_0");
}

}  // namespace
}  // namespace qpipe
