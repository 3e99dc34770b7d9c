#include "engine/graph.h"

#include <fmt/format.h>

#include <set>
#include <unordered_map>

#include "engine/error.h"

namespace qpipe {

int64_t Node::attr_int(const std::string& k, int64_t dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.i;
}

float Node::attr_float(const std::string& k, float dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.f;
}

std::string Node::attr_string(const std::string& k, const std::string& dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.s;
}

std::vector<int64_t> Node::attr_ints(const std::string& k, std::vector<int64_t> dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.ints;
}

std::string Node::where(std::size_t index) const {
  return fmt::format("node #{} '{}' ({})", index, name.empty() ? std::string("<unnamed>") : name, op_type);
}

std::optional<std::size_t> Graph::producer(const std::string& tensor) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == tensor) return i;
  return std::nullopt;
}

std::vector<std::size_t> Graph::consumers(const std::string& tensor) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const auto& in : nodes[i].inputs)
      if (in == tensor) {
        out.push_back(i);
        break;
      }
  return out;
}

std::vector<std::size_t> Graph::topological_order() const {
  std::unordered_map<std::string, std::size_t> producer_of;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs) {
      if (o.empty()) continue;
      auto [it, inserted] = producer_of.emplace(o, i);
      if (!inserted)
        fail(ErrorKind::kInput, "tensor '{}' is produced twice: by {} and by {}", o,
             nodes[it->second].where(it->second), nodes[i].where(i));
    }
  std::set<std::string> available(inputs.begin(), inputs.end());
  for (const auto& [name, _] : initializers) available.insert(name);
  // Kahn's algorithm, stable with respect to file order.
  std::vector<int> missing(nodes.size(), 0);
  std::vector<std::vector<std::size_t>> dependents(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    std::set<std::string> seen;
    for (const auto& in : nodes[i].inputs) {
      if (in.empty() || available.count(in) || !seen.insert(in).second) continue;
      auto it = producer_of.find(in);
      if (it == producer_of.end())
        fail(ErrorKind::kInput, "{} reads tensor '{}', which is neither a graph input, an initializer nor produced by any node",
             nodes[i].where(i), in);
      ++missing[i];
      dependents[it->second].push_back(i);
    }
  }
  std::vector<std::size_t> order;
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (missing[i] == 0) ready.push_back(i);
  std::size_t head = 0;
  while (head < ready.size()) {
    // pick the smallest index among ready nodes to keep file order when possible
    auto best = ready.begin() + static_cast<std::ptrdiff_t>(head);
    for (auto it = best; it != ready.end(); ++it)
      if (*it < *best) best = it;
    std::iter_swap(ready.begin() + static_cast<std::ptrdiff_t>(head), best);
    std::size_t n = ready[head++];
    order.push_back(n);
    for (std::size_t d : dependents[n])
      if (--missing[d] == 0) ready.push_back(d);
  }
  if (order.size() != nodes.size()) {
    std::string stuck;
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (missing[i] > 0) stuck += (stuck.empty() ? "" : ", ") + nodes[i].where(i);
    fail(ErrorKind::kInput, "graph '{}' has a cycle through: {}", name, stuck);
  }
  return order;
}

}  // namespace qpipe
