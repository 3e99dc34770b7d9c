#include "pipeline/dag.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <set>

#include "pipeline/text_util.h"

namespace qpipe {

namespace {

struct Resolver {
  const Spec& spec;
  const StageRegistry& reg;
  Diagnostics& diag;
  std::map<std::string, std::vector<std::size_t>> by_base;  // base id -> variant indices
  std::map<std::string, std::vector<std::size_t>> by_id;    // exact id -> indices (dupes!)

  // Variants of `ref.stage` agreeing with `consumer` on shared axes and with the selector.
  std::vector<std::size_t> resolve(const StageRef& ref, const StageSpec& consumer, const std::string& what) {
    std::vector<std::size_t> cands;
    if (auto it = by_base.find(ref.stage); it != by_base.end()) cands = it->second;
    if (cands.empty()) {
      diag.error(ref.loc, fmt::format("missing producer: stage '{}' {} '{}', but no stage '{}' is defined{}",
                                      consumer.id, what, ref.text, ref.stage, did_you_mean(ref.stage, spec.base_ids())));
      return {};
    }
    std::vector<std::size_t> out;
    for (std::size_t i : cands) {
      const StageSpec& p = spec.stages[i];
      bool ok = true;
      for (const auto& [axis, val] : ref.selector) {
        bool has = false, eq = false;
        for (const auto& [a, v] : p.matrix) {
          if (a == axis) has = true, eq = v == val;
        }
        if (!has) {
          std::vector<std::string> axes;
          for (const auto& [a, v] : p.matrix) axes.push_back(a);
          diag.error(ref.loc, fmt::format("stage '{}' {} '{}': stage '{}' has no matrix axis '{}'{}", consumer.id, what,
                                          ref.text, ref.stage, axis, did_you_mean(axis, axes)));
          return {};
        }
        ok = ok && eq;
      }
      for (const auto& [axis, val] : consumer.matrix) {
        bool in_selector = false;
        for (const auto& s : ref.selector) in_selector = in_selector || s.first == axis;
        if (in_selector) continue;
        for (const auto& [a, v] : p.matrix) {
          if (a == axis && v != val) ok = false;
        }
      }
      if (ok) out.push_back(i);
    }
    if (out.empty()) {
      std::vector<std::string> ids;
      for (std::size_t i : cands) ids.push_back(spec.stages[i].id);
      diag.error(ref.loc, fmt::format("missing producer: stage '{}' {} '{}', but no variant of '{}' matches; variants: {}",
                                      consumer.id, what, ref.text, ref.stage, quoted_list(ids)));
    }
    return out;
  }
};

}  // namespace

std::vector<std::size_t> Dag::downstream(std::size_t i) const {
  std::vector<bool> seen(nodes.size(), false);
  std::vector<std::size_t> stack = {i}, out;
  while (!stack.empty()) {
    std::size_t n = stack.back();
    stack.pop_back();
    for (std::size_t d : nodes[n].dependents) {
      if (!seen[d]) {
        seen[d] = true;
        out.push_back(d);
        stack.push_back(d);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Dag build_dag(const Spec& spec, const StageRegistry& reg, Diagnostics& diag) {
  Dag dag;
  const std::size_t n = spec.stages.size();
  dag.nodes.resize(n);
  Resolver r{spec, reg, diag, {}, {}};
  for (std::size_t i = 0; i < n; ++i) {
    auto& same = r.by_id[spec.stages[i].id];
    same.push_back(i);
    if (same.size() == 1) r.by_base[spec.stages[i].base_id].push_back(i);  // duplicates reported below
  }

  // Two producers of one output: one stage id defined more than once.
  for (const auto& [id, idx] : r.by_id) {
    if (idx.size() < 2) continue;
    std::string where;
    for (std::size_t i : idx) where += (where.empty() ? "" : ", ") + spec.stages[i].loc.str();
    std::string outs;
    if (const StageType* t = spec.stages[idx[0]].stage_type) {
      for (const auto& o : t->outputs) outs += (outs.empty() ? "" : ", ") + id + "." + o.name;
    }
    diag.error(fmt::format("duplicate output: stage '{}' is defined {} times ({}), so {} would have {} producers; "
                           "rename all but one",
                           id, idx.size(), where, outs.empty() ? "its outputs" : outs, idx.size()));
  }

  std::vector<std::set<std::size_t>> deps(n);
  for (std::size_t i = 0; i < n; ++i) {
    const StageSpec& c = spec.stages[i];
    for (const auto& [port, refs] : c.inputs) {
      const PortDecl* in = c.stage_type ? c.stage_type->find_input(port) : nullptr;
      auto& bound = dag.nodes[i].inputs[port];
      for (const auto& ref : refs) {
        auto prods = r.resolve(ref, c, fmt::format("input '{}' refers to", port));
        if (prods.empty()) continue;
        if (in && !in->multiple && prods.size() > 1) {
          std::vector<std::string> ids;
          std::set<std::string> shared_axes;
          for (std::size_t p : prods) {
            ids.push_back(spec.stages[p].id);
            for (const auto& [a, v] : spec.stages[p].matrix) shared_axes.insert(a);
          }
          diag.error(ref.loc, fmt::format("stage '{}' input '{}' takes one artifact, but '{}' matches {} variants ({}); "
                                          "give '{}' the same matrix axes ({}) or select one, e.g. '{}[{}={}].{}'",
                                          c.id, port, ref.text, prods.size(), quoted_list(ids), c.base_id,
                                          quoted_list({shared_axes.begin(), shared_axes.end()}), ref.stage,
                                          spec.stages[prods[0]].matrix.empty() ? "axis" : spec.stages[prods[0]].matrix[0].first,
                                          spec.stages[prods[0]].matrix.empty() ? "value" : spec.stages[prods[0]].matrix[0].second,
                                          ref.port));
          continue;
        }
        for (std::size_t p : prods) {
          const StageSpec& ps = spec.stages[p];
          if (!ps.stage_type) {  // unknown type: already reported; keep the edge for cycle checks
            deps[i].insert(p);
            continue;
          }
          const PortDecl* out = ps.stage_type->find_output(ref.port);
          if (!out) {
            diag.error(ref.loc, fmt::format("missing producer: stage '{}' input '{}' refers to '{}', but stage '{}' ({}) "
                                            "has no output '{}'{}; its outputs: {}",
                                            c.id, port, ref.text, ps.base_id, ps.type, ref.port,
                                            did_you_mean(ref.port, ps.stage_type->output_names()),
                                            quoted_list(ps.stage_type->output_names())));
            break;
          }
          deps[i].insert(p);
          if (in) {
            const ArtifactType* want = reg.artifact_type(in->type);
            const ArtifactType* got = reg.artifact_type(out->type);
            bool ok = in->type == "any" || (want && got && port_accepts(*want, *got));
            if (!ok) {
              diag.error(ref.loc, fmt::format("type mismatch: stage '{}' ({}) input '{}' expects a '{}' artifact, but "
                                              "'{}.{}' (stage '{}', {}) is a '{}' artifact",
                                              c.id, c.type, port, in->type, ps.id, ref.port, ps.id, ps.type, out->type));
              continue;
            }
          }
          bound.push_back(DagInput{p, ref.port});
        }
      }
    }
    for (const auto& ref : c.needs) {
      for (std::size_t p : r.resolve(ref, c, "needs")) deps[i].insert(p);
    }
    if (deps[i].count(i)) {
      diag.error(c.loc, fmt::format("cycle: stage '{}' depends on itself (its inputs or needs name its own outputs)", c.id));
      deps[i].erase(i);
      for (auto& [port, ins] : dag.nodes[i].inputs) std::erase_if(ins, [&](const DagInput& d) { return d.producer == i; });
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    dag.nodes[i].deps.assign(deps[i].begin(), deps[i].end());
    for (std::size_t p : deps[i]) dag.nodes[p].dependents.push_back(i);
  }
  for (auto& node : dag.nodes) {
    std::sort(node.dependents.begin(), node.dependents.end());
    node.dependents.erase(std::unique(node.dependents.begin(), node.dependents.end()), node.dependents.end());
  }

  // Kahn's algorithm, smallest spec index first: a deterministic order.
  std::vector<std::size_t> indeg(n);
  for (std::size_t i = 0; i < n; ++i) indeg[i] = dag.nodes[i].deps.size();
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t i = 0; i < n; ++i) {
    if (indeg[i] == 0) ready.push(i);
  }
  while (!ready.empty()) {
    std::size_t i = ready.top();
    ready.pop();
    dag.topo.push_back(i);
    for (std::size_t d : dag.nodes[i].dependents) {
      if (--indeg[d] == 0) ready.push(d);
    }
  }
  if (dag.topo.size() != n) {
    // Tarjan's strongly connected components over the remaining nodes; each
    // component with more than one stage is a cycle (or several).
    std::vector<int> index(n, -1), low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<std::size_t> stack;
    int counter = 0;
    std::vector<std::vector<std::size_t>> sccs;
    std::function<void(std::size_t)> strong = [&](std::size_t v) {
      index[v] = low[v] = counter++;
      stack.push_back(v);
      on_stack[v] = true;
      for (std::size_t w : dag.nodes[v].dependents) {
        if (index[w] < 0) {
          strong(w);
          low[v] = std::min(low[v], low[w]);
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
      }
      if (low[v] == index[v]) {
        std::vector<std::size_t> comp;
        std::size_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          comp.push_back(w);
        } while (w != v);
        if (comp.size() > 1) sccs.push_back(comp);
      }
    };
    for (std::size_t i = 0; i < n; ++i) {
      if (index[i] < 0) strong(i);
    }
    std::sort(sccs.begin(), sccs.end(), [](const auto& a, const auto& b) {
      return *std::min_element(a.begin(), a.end()) < *std::min_element(b.begin(), b.end());
    });
    for (auto& comp : sccs) {
      std::sort(comp.begin(), comp.end());
      std::set<std::size_t> in_comp(comp.begin(), comp.end());
      // Walk one cycle from the first stage for a readable path.
      std::vector<std::size_t> path = {comp[0]};
      std::set<std::size_t> visited = {comp[0]};
      std::function<bool(std::size_t)> walk = [&](std::size_t v) -> bool {
        for (std::size_t w : dag.nodes[v].dependents) {
          if (!in_comp.count(w)) continue;
          if (w == comp[0]) return true;
          if (visited.insert(w).second) {
            path.push_back(w);
            if (walk(w)) return true;
            path.pop_back();
          }
        }
        return false;
      };
      walk(comp[0]);
      std::string chain;
      for (std::size_t v : path) chain += spec.stages[v].id + " -> ";
      chain += spec.stages[comp[0]].id;
      std::vector<std::string> names;
      for (std::size_t v : comp) names.push_back(spec.stages[v].id);
      diag.error(spec.stages[comp[0]].loc,
                 fmt::format("cycle between stages {}: {}; a stage cannot depend on its own outputs", quoted_list(names), chain));
    }
    dag.topo.clear();
  }
  return dag;
}

namespace {
std::string dot_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}
}  // namespace

std::string dag_to_dot(const Spec& spec, const Dag& dag, const std::vector<std::string>* notes,
                       const std::vector<bool>* reused) {
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
                                dot_escape(spec.experiment));
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const auto& s = spec.stages[i];
    std::string label = dot_escape(s.id) + "\\n" + dot_escape(s.type);
    if (notes && i < notes->size() && !(*notes)[i].empty()) label += "\\n" + dot_escape((*notes)[i]);
    std::string color = "white";
    if (reused && i < reused->size()) color = (*reused)[i] ? "palegreen" : "orange";
    out += fmt::format("  n{} [label=\"{}\", fillcolor=\"{}\"];\n", i, label, color);
  }
  for (std::size_t i = 0; i < dag.nodes.size(); ++i) {
    std::set<std::size_t> labelled;
    for (const auto& [port, ins] : dag.nodes[i].inputs) {
      for (const auto& in : ins) {
        out += fmt::format("  n{} -> n{} [label=\"{}→{}\"];\n", in.producer, i, in.port, port);
        labelled.insert(in.producer);
      }
    }
    for (std::size_t d : dag.nodes[i].deps) {
      if (!labelled.count(d)) out += fmt::format("  n{} -> n{} [style=dashed];\n", d, i);
    }
  }
  return out + "}\n";
}

}  // namespace qpipe
