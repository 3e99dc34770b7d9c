// qpipe inspect: summarise an ONNX model.

#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/session.h"
#include "pipeline/cli/commands.h"
#include "pipeline/cli/options.h"

namespace qpipe::cli {

int cmd_inspect(const Args& args) {
  Options opts("inspect", "MODEL [--tensors]",
               "Summarise an ONNX model: opset, inputs and outputs, op counts, parameter count, file size,\n"
               "and (with --tensors) every tensor with its inferred shape. Also says whether qpipe can run it.");
  opts.positional("MODEL", "ONNX model file").flag("tensors", "list every tensor with its dtype and shape");
  if (!opts.parse(args)) return 0;
  const std::string path = opts.get("MODEL");
  Model m = load_onnx(path);
  const Graph& g = m.graph;
  fmt::print("model      {}\nsize       {} bytes\nir/opset   {} / {}\nproducer   {} {}\n", path,
             std::filesystem::file_size(path), m.ir_version, m.opset, m.producer_name, m.producer_version);
  auto describe = [&](const std::string& name) {
    auto it = g.value_info.find(name);
    if (it == g.value_info.end()) return std::string("?");
    return fmt::format("{} {}", dtype_name(it->second.dtype), shape_str(it->second.shape));
  };
  for (const auto& i : g.inputs) fmt::print("input      {}: {}\n", i, describe(i));
  for (const auto& o : g.outputs) fmt::print("output     {}: {}\n", o, describe(o));
  std::map<std::string, int> ops;
  for (const auto& n : g.nodes) ops[n.op_type]++;
  fmt::print("nodes      {}\n", g.nodes.size());
  for (const auto& [op, count] : ops) fmt::print("  {:<20} {}\n", op, count);
  int64_t params = 0, bytes = 0;
  for (const auto& [_, t] : g.initializers) {
    params += t.numel();
    bytes += static_cast<int64_t>(t.nbytes());
  }
  fmt::print("initializers {} tensors, {} values, {} bytes\n", g.initializers.size(), params, bytes);
  try {
    Session s(m);
    fmt::print("runnable   yes (all ops supported)\n");
    if (opts.is_set("tensors")) {
      // Shapes at batch 1, from running one zero image through the graph.
      const auto& vi = g.value_info.at(g.inputs[0]);
      Shape shape = vi.shape;
      for (auto& d : shape)
        if (d < 0) d = 1;
      auto names = s.computed_tensors();
      auto values = s.run({{g.inputs[0], Tensor(vi.dtype, shape)}}, names);
      fmt::print("tensors (batch 1):\n");
      for (std::size_t i = 0; i < names.size(); ++i)
        fmt::print("  {:<48} {} {}\n", names[i], dtype_name(values[i].dtype()), shape_str(values[i].shape()));
    }
  } catch (const PtqError& e) {
    if (e.kind() != ErrorKind::kUnsupported) throw;
    fmt::print("runnable   no\n{}\n", e.what());
    return exit_code(ErrorKind::kUnsupported);
  }
  return 0;
}

}  // namespace qpipe::cli
