// ONNX <-> IR conversion through libonnx's generated protobuf classes.

#include <fmt/format.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/error.h"
#include "engine/graph.h"

namespace qpipe {
namespace {

bool dtype_from_onnx(int32_t t, DType* out) {
  switch (t) {
    case onnx::TensorProto::FLOAT: *out = DType::kFloat32; return true;
    case onnx::TensorProto::DOUBLE: *out = DType::kFloat64; return true;
    case onnx::TensorProto::UINT8: *out = DType::kUInt8; return true;
    case onnx::TensorProto::INT8: *out = DType::kInt8; return true;
    case onnx::TensorProto::INT32: *out = DType::kInt32; return true;
    case onnx::TensorProto::INT64: *out = DType::kInt64; return true;
    default: return false;
  }
}

int32_t dtype_to_onnx(DType t) {
  switch (t) {
    case DType::kFloat32: return onnx::TensorProto::FLOAT;
    case DType::kFloat64: return onnx::TensorProto::DOUBLE;
    case DType::kUInt8: return onnx::TensorProto::UINT8;
    case DType::kInt8: return onnx::TensorProto::INT8;
    case DType::kInt32: return onnx::TensorProto::INT32;
    case DType::kInt64: return onnx::TensorProto::INT64;
  }
  return onnx::TensorProto::UNDEFINED;
}

const char* onnx_type_name(int32_t t) {
  return onnx::TensorProto_DataType_IsValid(t)
             ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t)).c_str()
             : "invalid";
}

Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& path, const std::string& what) {
  DType dt;
  if (!dtype_from_onnx(p.data_type(), &dt))
    fail(ErrorKind::kUnsupported, "{}: {} '{}' has data type {} ({}); qpipe supports float, double, uint8, int8, int32, int64",
         path, what, p.name(), onnx_type_name(p.data_type()), p.data_type());
  if (p.data_location() == onnx::TensorProto::EXTERNAL)
    fail(ErrorKind::kUnsupported, "{}: {} '{}' stores its data externally; qpipe needs it inside the model file", path, what,
         p.name());
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) fail(ErrorKind::kInput, "{}: {} '{}' has a negative dimension {}", path, what, p.name(), shape_str(shape));
  Tensor t(dt, shape);
  const std::size_t n = static_cast<std::size_t>(t.numel());
  if (p.has_raw_data()) {
    if (p.raw_data().size() != t.nbytes())
      fail(ErrorKind::kInput, "{}: {} '{}' has {} bytes of raw data; shape {} of {} needs {}", path, what, p.name(),
           p.raw_data().size(), shape_str(shape), dtype_name(dt), t.nbytes());
    if (n) std::memcpy(t.raw(), p.raw_data().data(), t.nbytes());
    return t;
  }
  auto check_count = [&](std::size_t have) {
    if (have != n)
      fail(ErrorKind::kInput, "{}: {} '{}' has {} values; shape {} needs {}", path, what, p.name(), have, shape_str(shape), n);
  };
  switch (dt) {
    case DType::kFloat32:
      check_count(p.float_data_size());
      std::copy(p.float_data().begin(), p.float_data().end(), t.data<float>());
      break;
    case DType::kFloat64:
      check_count(p.double_data_size());
      std::copy(p.double_data().begin(), p.double_data().end(), t.data<double>());
      break;
    case DType::kInt64:
      check_count(p.int64_data_size());
      std::copy(p.int64_data().begin(), p.int64_data().end(), t.data<int64_t>());
      break;
    case DType::kInt32:
      check_count(p.int32_data_size());
      std::copy(p.int32_data().begin(), p.int32_data().end(), t.data<int32_t>());
      break;
    case DType::kUInt8:
      check_count(p.int32_data_size());
      for (std::size_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(p.int32_data(static_cast<int>(i)));
      break;
    case DType::kInt8:
      check_count(p.int32_data_size());
      for (std::size_t i = 0; i < n; ++i) t.data<int8_t>()[i] = static_cast<int8_t>(p.int32_data(static_cast<int>(i)));
      break;
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->set_name(name);
  p->set_data_type(dtype_to_onnx(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& v, const std::string& path) {
  ValueInfo vi;
  if (!v.has_type() || !v.type().has_tensor_type()) return vi;
  const auto& tt = v.type().tensor_type();
  DType dt;
  if (dtype_from_onnx(tt.elem_type(), &dt)) vi.dtype = dt;
  else
    fail(ErrorKind::kUnsupported, "{}: value '{}' has element type {} ({}); qpipe supports float, double, uint8, int8, int32, int64",
         path, v.name(), onnx_type_name(tt.elem_type()), tt.elem_type());
  if (tt.has_shape()) {
    vi.has_shape = true;
    for (const auto& d : tt.shape().dim()) vi.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return vi;
}

Attribute attribute_from_proto(const onnx::AttributeProto& a, const std::string& path, const std::string& node) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return Attribute::Int(a.i());
    case onnx::AttributeProto::FLOAT: return Attribute::Float(a.f());
    case onnx::AttributeProto::STRING: return Attribute::String(a.s());
    case onnx::AttributeProto::INTS: return Attribute::Ints({a.ints().begin(), a.ints().end()});
    case onnx::AttributeProto::FLOATS: return Attribute::Floats({a.floats().begin(), a.floats().end()});
    case onnx::AttributeProto::TENSOR: return Attribute::TensorValue(tensor_from_proto(a.t(), path, "attribute tensor"));
    default:
      fail(ErrorKind::kUnsupported, "{}: node '{}' attribute '{}' has type {}, which qpipe does not support", path, node,
           a.name(), onnx::AttributeProto_AttributeType_Name(a.type()));
  }
}

void attribute_to_proto(const std::string& name, const Attribute& a, onnx::AttributeProto* p) {
  p->set_name(name);
  switch (a.kind) {
    case Attribute::Kind::kInt: p->set_type(onnx::AttributeProto::INT); p->set_i(a.i); break;
    case Attribute::Kind::kFloat: p->set_type(onnx::AttributeProto::FLOAT); p->set_f(a.f); break;
    case Attribute::Kind::kString: p->set_type(onnx::AttributeProto::STRING); p->set_s(a.s); break;
    case Attribute::Kind::kInts:
      p->set_type(onnx::AttributeProto::INTS);
      for (auto v : a.ints) p->add_ints(v);
      break;
    case Attribute::Kind::kFloats:
      p->set_type(onnx::AttributeProto::FLOATS);
      for (auto v : a.floats) p->add_floats(v);
      break;
    case Attribute::Kind::kTensor:
      p->set_type(onnx::AttributeProto::TENSOR);
      tensor_to_proto(a.t, "", p->mutable_t());
      break;
  }
}

void value_info_to_proto(const std::string& name, const ValueInfo& vi, onnx::ValueInfoProto* p) {
  p->set_name(name);
  auto* tt = p->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(dtype_to_onnx(vi.dtype));
  if (vi.has_shape) {
    auto* sh = tt->mutable_shape();
    for (int64_t d : vi.shape) {
      auto* dim = sh->add_dim();
      if (d >= 0) dim->set_dim_value(d);
      else dim->set_dim_param("N");
    }
  }
}

onnx::ModelProto to_proto(const Model& m) {
  onnx::ModelProto p;
  p.set_ir_version(m.ir_version);
  p.set_producer_name(m.producer_name.empty() ? "qpipe" : m.producer_name);
  p.set_producer_version(m.producer_version);
  auto* op = p.add_opset_import();
  op->set_domain("");
  op->set_version(m.opset);
  for (const auto& [k, v] : m.metadata) {
    auto* e = p.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  }
  auto* g = p.mutable_graph();
  g->set_name(m.graph.name);
  for (const auto& [name, t] : m.graph.initializers) tensor_to_proto(t, name, g->add_initializer());
  for (const auto& n : m.graph.nodes) {
    auto* np = g->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (const auto& i : n.inputs) np->add_input(i);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& [k, a] : n.attrs) attribute_to_proto(k, a, np->add_attribute());
  }
  auto vi_or_default = [&](const std::string& name) {
    auto it = m.graph.value_info.find(name);
    return it == m.graph.value_info.end() ? ValueInfo{} : it->second;
  };
  for (const auto& i : m.graph.inputs) value_info_to_proto(i, vi_or_default(i), g->add_input());
  for (const auto& o : m.graph.outputs) value_info_to_proto(o, vi_or_default(o), g->add_output());
  return p;
}

}  // namespace

Model load_onnx(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(ErrorKind::kInput, "{}: model file not found", path);
  if (fs::is_directory(path, ec)) fail(ErrorKind::kInput, "{}: expected an ONNX model file, found a directory", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kInput, "{}: cannot open model file", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) fail(ErrorKind::kInput, "{}: model file is empty (expected an ONNX ModelProto)", path);
  onnx::ModelProto p;
  if (!p.ParseFromString(bytes))
    fail(ErrorKind::kInput, "{}: not a valid ONNX model ({} bytes could not be parsed as an ONNX ModelProto; truncated or not ONNX)",
         path, bytes.size());
  if (!p.has_graph() || p.graph().node_size() == 0)
    fail(ErrorKind::kInput, "{}: ONNX model has no graph nodes (truncated or not an ONNX model)", path);

  Model m;
  m.path = path;
  m.ir_version = p.ir_version();
  m.producer_name = p.producer_name();
  m.producer_version = p.producer_version();
  m.opset = 0;
  for (const auto& o : p.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") m.opset = o.version();
  if (m.opset == 0) fail(ErrorKind::kInput, "{}: model imports no ai.onnx opset", path);
  for (const auto& e : p.metadata_props()) m.metadata[e.key()] = e.value();

  const auto& g = p.graph();
  m.graph.name = g.name();
  for (const auto& t : g.initializer()) {
    if (t.name().empty()) fail(ErrorKind::kInput, "{}: an initializer has no name", path);
    m.graph.initializers[t.name()] = tensor_from_proto(t, path, "initializer");
  }
  for (const auto& v : g.input()) {
    if (!m.graph.initializers.count(v.name())) m.graph.inputs.push_back(v.name());
    m.graph.value_info[v.name()] = value_info_from_proto(v, path);
  }
  for (const auto& v : g.output()) {
    m.graph.outputs.push_back(v.name());
    m.graph.value_info[v.name()] = value_info_from_proto(v, path);
  }
  for (const auto& v : g.value_info()) m.graph.value_info.emplace(v.name(), value_info_from_proto(v, path));
  int idx = 0;
  for (const auto& np : g.node()) {
    Node n;
    n.name = np.name().empty() ? fmt::format("{}_{}", np.op_type(), idx) : np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) n.attrs[a.name()] = attribute_from_proto(a, path, n.name);
    m.graph.nodes.push_back(std::move(n));
    ++idx;
  }
  if (m.graph.inputs.empty()) fail(ErrorKind::kInput, "{}: graph '{}' has no runtime input", path, g.name());
  if (m.graph.outputs.empty()) fail(ErrorKind::kInput, "{}: graph '{}' has no output", path, g.name());
  try {
    m.graph.topological_order();  // rejects dangling references and cycles now, naming the nodes
  } catch (const PtqError& e) {
    throw PtqError(e.kind(), fmt::format("{}: {}", path, e.what()));
  }
  return m;
}

std::string serialize_onnx(const Model& model) {
  std::string out;
  if (!to_proto(model).SerializeToString(&out)) fail(ErrorKind::kRuntime, "cannot serialise model '{}'", model.graph.name);
  return out;
}

void save_onnx(const Model& model, const std::string& path) {
  namespace fs = std::filesystem;
  std::string bytes = serialize_onnx(model);
  fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  fs::path tmp = target;
  tmp += fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) fail(ErrorKind::kRuntime, "{}: cannot write model file", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    fail(ErrorKind::kRuntime, "{}: cannot move model into place: {}", path, ec.message());
  }
}

}  // namespace qpipe
