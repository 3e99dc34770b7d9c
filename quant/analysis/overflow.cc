#include "quant/analysis/overflow.h"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/session.h"

namespace qpipe::analysis {
namespace {

// Geometry of one analyzable node, packed for the kernel's K order.
struct Packed {
  // Conv: input [C, H, W] per image; MatMul/Gemm: input [K].
  bool conv = false;
  int64_t cin = 0, kh = 1, kw = 1, sy = 1, sx = 1, dy = 1, dx = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  std::vector<std::vector<int32_t>> w;  // [out_channel][k] weight codes in K order
  std::vector<int32_t> bias;            // [out_channel] int32 codes (0 when absent)
  std::string input_q;                  // the Q output holding the input codes
};

int64_t clip16(int64_t v) { return std::clamp<int64_t>(v, -32768, 32767); }

// Single compute consumer of an activation point -> ORT turns its int8 Q/DQ to uint8.
bool becomes_u8(const ActivationQuant& a) {
  if (a.params.type == QType::kUInt8) return true;
  return a.params.type == QType::kInt8 && a.consumers.size() == 1 && !a.feeds_graph_output;
}

std::vector<int32_t> int_values(const Tensor& t) {
  std::vector<int32_t> v;
  for (double d : to_double(t)) v.push_back(static_cast<int32_t>(d));
  return v;
}

}  // namespace

OverflowResult analyze_overflow(const QdqGraph& g, const AnalysisData& data, const OverflowOptions& options) {
  if (options.batch < 1) fail(ErrorKind::kUsage, "overflow: batch must be >= 1, got {}", options.batch);
  if (options.input_code_max < 1 || options.input_code_max > 255)
    fail(ErrorKind::kUsage, "overflow: input_code_max must be in 1..255, got {}", options.input_code_max);
  OverflowResult r;
  r.input_code_max = options.input_code_max;
  const Graph& gr = g.model().graph;
  std::vector<Packed> packs;

  for (const Layer& l : g.layers()) {
    if (l.op_type != "Conv" && l.op_type != "MatMul" && l.op_type != "Gemm") continue;
    const Node& n = gr.nodes[l.node];
    NodeOverflow o;
    o.node = l.name;
    o.op_type = l.op_type;
    o.output = n.outputs.at(0);
    Packed p;
    auto skip = [&](std::string why) {
      o.note = std::move(why);
      r.nodes.push_back(o);
      packs.push_back(Packed{});
    };
    if (n.inputs.size() < 2 || l.act_inputs[0] < 0 || l.const_inputs[1] < 0) {
      skip("input is not a quantized activation or the weight is not a quantized constant");
      continue;
    }
    const ActivationQuant& in = g.activations()[static_cast<std::size_t>(l.act_inputs[0])];
    const ConstantQuant& wc = g.constants()[static_cast<std::size_t>(l.const_inputs[1])];
    o.input = in.tensor;
    o.in = in.params;
    o.w = wc.params;
    p.input_q = in.q_tensor;
    const Tensor& wcodes = gr.initializers.at(wc.quantized_init);
    if (wcodes.dtype() != DType::kInt8) {
      skip(fmt::format("weights are {}: a u8 x u8 kernel widens to 16 bits before pairing, no saturation",
                       dtype_name(wcodes.dtype())));
      continue;
    }
    if (in.params.type != QType::kInt8 && in.params.type != QType::kUInt8) {
      skip("input is not 8-bit");
      continue;
    }
    // Would ORT fuse it (x86)?
    o.input_u8 = becomes_u8(in);
    const int oi = g.activation_index(o.output);
    o.output_u8 = oi >= 0 && becomes_u8(g.activations()[static_cast<std::size_t>(oi)]);
    if (oi >= 0) o.out = g.activations()[static_cast<std::size_t>(oi)].params;
    o.would_fuse = o.input_u8 && o.output_u8;
    if (o.would_fuse) o.fuse_reason = "input and output Q/DQ each have one consumer: both become uint8, node fuses";
    else if (oi < 0) o.fuse_reason = "output is not quantized: no fusion";
    else
      o.fuse_reason = fmt::format("{} stays int8 ({} readers): x86 ORT does not fuse int8 activations",
                                  !o.input_u8 ? o.input : o.output,
                                  !o.input_u8 ? in.consumers.size()
                                              : g.activations()[static_cast<std::size_t>(oi)].consumers.size());
    const std::vector<int32_t> wv = int_values(wcodes);
    if (l.op_type == "Conv") {
      if (wcodes.rank() != 4) {
        skip(fmt::format("Conv weight of rank {} (only 2-D convolutions are analyzed)", wcodes.rank()));
        continue;
      }
      if (n.attr_int("group", 1) != 1) {
        skip("grouped convolution (not analyzed)");
        continue;
      }
      const std::string ap = n.attr_string("auto_pad", "NOTSET");
      if (ap != "NOTSET") {
        skip(fmt::format("auto_pad={} (not analyzed)", ap));
        continue;
      }
      p.conv = true;
      const int64_t cout = wcodes.dim(0);
      p.cin = wcodes.dim(1);
      p.kh = wcodes.dim(2);
      p.kw = wcodes.dim(3);
      auto st = n.attr_ints("strides", {1, 1}), di = n.attr_ints("dilations", {1, 1}), pa = n.attr_ints("pads", {0, 0, 0, 0});
      p.sy = st.at(0), p.sx = st.at(1), p.dy = di.at(0), p.dx = di.at(1);
      p.pt = pa.at(0), p.pl = pa.at(1), p.pb = pa.at(2), p.pr = pa.at(3);
      o.k = p.cin * p.kh * p.kw;
      o.out_channels = cout;
      p.w.assign(static_cast<std::size_t>(cout), std::vector<int32_t>(static_cast<std::size_t>(o.k), 0));
      for (int64_t co = 0; co < cout; ++co)
        for (int64_t c = 0; c < p.cin; ++c)
          for (int64_t y = 0; y < p.kh; ++y)
            for (int64_t x = 0; x < p.kw; ++x)
              p.w[static_cast<std::size_t>(co)][static_cast<std::size_t>((y * p.kw + x) * p.cin + c)] =
                  wv[static_cast<std::size_t>(((co * p.cin + c) * p.kh + y) * p.kw + x)];
    } else {
      if (wcodes.rank() != 2) {
        skip("weight is not 2-D");
        continue;
      }
      const bool trans = l.op_type == "Gemm" && n.attr_int("transB", 0) != 0;
      if (l.op_type == "Gemm" && n.attr_int("transA", 0) != 0) {
        skip("Gemm with transA (not analyzed)");
        continue;
      }
      const int64_t kk = trans ? wcodes.dim(1) : wcodes.dim(0), cols = trans ? wcodes.dim(0) : wcodes.dim(1);
      o.k = kk;
      o.out_channels = cols;
      p.cin = kk;
      p.w.assign(static_cast<std::size_t>(cols), std::vector<int32_t>(static_cast<std::size_t>(kk), 0));
      for (int64_t k = 0; k < kk; ++k)
        for (int64_t c = 0; c < cols; ++c)
          p.w[static_cast<std::size_t>(c)][static_cast<std::size_t>(k)] =
              wv[static_cast<std::size_t>(trans ? c * kk + k : k * cols + c)];
    }
    // Bias (Conv input 2 / Gemm input C) as int32 codes.
    p.bias.assign(static_cast<std::size_t>(o.out_channels), 0);
    if (n.inputs.size() >= 3 && l.const_inputs.size() >= 3 && l.const_inputs[2] >= 0) {
      const ConstantQuant& bc = g.constants()[static_cast<std::size_t>(l.const_inputs[2])];
      const Tensor& bt = gr.initializers.at(bc.quantized_init);
      if (bt.dtype() == DType::kInt32 && bt.numel() == o.out_channels) p.bias = int_values(bt);
    }
    o.k_padded = o.k + (o.k % 2);
    o.analyzable = true;
    // Static flagging.
    const int64_t cmax = options.input_code_max;
    for (int64_t co = 0; co < o.out_channels; ++co) {
      const auto& w = p.w[static_cast<std::size_t>(co)];
      for (int64_t j = 0; j + 1 < o.k_padded; j += 2) {
        const int32_t a = w[static_cast<std::size_t>(j)];
        const int32_t b = j + 1 < o.k ? w[static_cast<std::size_t>(j + 1)] : 0;
        if (a == 0 || b == 0 || (a > 0) != (b > 0)) continue;
        const int64_t worst = cmax * (int64_t(a) + int64_t(b));
        if (worst <= 32767 && worst >= -32768) continue;
        WeightPair wp;
        wp.out_channel = co;
        wp.k_a = j;
        wp.k_b = j + 1;
        auto pos = [&](int64_t k) {
          if (!p.conv) return fmt::format("({})", k);
          const int64_t c = k % p.cin, x = (k / p.cin) % p.kw, y = k / p.cin / p.kw;
          return fmt::format("(kh={},kw={},c={})", y, x, c);
        };
        wp.pos_a = pos(j);
        wp.pos_b = pos(j + 1);
        wp.w_a = a;
        wp.w_b = b;
        wp.worst = worst;
        o.pairs.push_back(wp);
      }
    }
    r.nodes.push_back(std::move(o));
    packs.push_back(std::move(p));
  }

  // Runtime: nodes with flagged pairs.
  std::vector<std::size_t> todo;
  std::vector<std::string> fetch;
  for (std::size_t i = 0; i < r.nodes.size(); ++i)
    if (r.nodes[i].analyzable && !r.nodes[i].pairs.empty()) {
      todo.push_back(i);
      fetch.push_back(packs[i].input_q);
    }
  if (!todo.empty()) {
    Session qs(prune_to(g.model(), fetch));
    for (int64_t first = 0; first < data.size; first += options.batch) {
      const int64_t count = std::min(options.batch, data.size - first);
      Cifar10Batch b = data.read(first, count);
      std::vector<Tensor> vals = qs.run({{qs.input_name(), b.images}}, fetch);
      for (std::size_t t = 0; t < todo.size(); ++t) {
        NodeOverflow& o = r.nodes[todo[t]];
        const Packed& p = packs[todo[t]];
        const Tensor& xq = vals[t];
        const int shift = xq.dtype() == DType::kInt8 ? 128 : 0;
        const std::vector<int32_t> xv = int_values(xq);
        const int32_t zp_x = o.in.zero_point + shift;
        const int64_t per_image = xq.numel() / count;
        int64_t oh = 1, ow = 1, h = 1, w = 1;
        if (p.conv) {
          if (xq.rank() != 4 || xq.dim(1) != p.cin)
            fail(ErrorKind::kInput, "overflow: input '{}' of {} has shape {}, expected [N,{},H,W]", o.input, o.node,
                 shape_str(xq.shape()), p.cin);
          h = xq.dim(2), w = xq.dim(3);
          oh = (h + p.pt + p.pb - ((p.kh - 1) * p.dy + 1)) / p.sy + 1;
          ow = (w + p.pl + p.pr - ((p.kw - 1) * p.dx + 1)) / p.sx + 1;
        } else if (per_image != o.k) {
          fail(ErrorKind::kInput, "overflow: input '{}' of {} has {} values per image, expected {}", o.input, o.node,
               per_image, o.k);
        }
        // Output requantization (u8 output when fused, else the model's type).
        const int32_t out_shift = o.output_u8 && o.out.type == QType::kInt8 ? 128 : 0;
        const int32_t zp_y = o.out.zero_point + out_shift;
        const int32_t ymin = o.output_u8 ? 0 : o.out.qmin, ymax = o.output_u8 ? 255 : o.out.qmax;
        struct Img {
          int64_t over = 0, changed = 0;
          int maxd = 0;
        };
        std::vector<Img> per(static_cast<std::size_t>(count));
        // Pairs grouped by output channel.
        std::map<int64_t, std::vector<const WeightPair*>> by_ch;
        for (const auto& wp : o.pairs) by_ch[wp.out_channel].push_back(&wp);
        tbb::parallel_for(int64_t(0), count, [&](int64_t n) {
          const int32_t* x = xv.data() + n * per_image;
          auto xk = [&](int64_t k, int64_t oy, int64_t ox) -> int32_t {
            if (k >= o.k) return zp_x;  // K padding
            if (!p.conv) return x[k] + shift;
            const int64_t c = k % p.cin, kx = (k / p.cin) % p.kw, ky = k / p.cin / p.kw;
            const int64_t iy = oy * p.sy - p.pt + ky * p.dy, ix = ox * p.sx - p.pl + kx * p.dx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) return zp_x;
            return x[(c * h + iy) * w + ix] + shift;
          };
          Img& im = per[static_cast<std::size_t>(n)];
          for (const auto& [co, prs] : by_ch) {
            const auto& wk = p.w[static_cast<std::size_t>(co)];
            const std::size_t chi = o.w.size() > 1 ? static_cast<std::size_t>(co) : 0;
            const float m = static_cast<float>(o.in.scale * o.w[chi].scale) / o.out.scale;
            for (int64_t oy = 0; oy < oh; ++oy)
              for (int64_t ox = 0; ox < ow; ++ox) {
                int64_t delta = 0;
                bool over = false;
                for (const WeightPair* wp : prs) {
                  const int64_t s = int64_t(xk(wp->k_a, oy, ox)) * wp->w_a + int64_t(xk(wp->k_b, oy, ox)) * wp->w_b;
                  if (s != clip16(s)) {
                    over = true;
                    delta += clip16(s) - s;
                  }
                }
                if (!over) continue;
                ++im.over;
                int64_t acc = p.bias[static_cast<std::size_t>(co)];
                for (int64_t k = 0; k < o.k; ++k) acc += int64_t(xk(k, oy, ox) - zp_x) * wk[static_cast<std::size_t>(k)];
                auto requant = [&](int64_t a) {
                  const float v = std::nearbyint(static_cast<float>(a) * m);
                  return std::clamp<int64_t>(static_cast<int64_t>(v) + zp_y, ymin, ymax);
                };
                const int64_t d = std::llabs(requant(acc + delta) - requant(acc));
                if (d) {
                  ++im.changed;
                  im.maxd = std::max<int>(im.maxd, static_cast<int>(d));
                }
              }
          }
        });
        for (const Img& im : per) {
          o.overflowed_outputs += im.over;
          o.changed_codes += im.changed;
          o.images_with_overflow += im.over ? 1 : 0;
          o.images_with_changed_codes += im.changed ? 1 : 0;
          o.max_code_change = std::max(o.max_code_change, im.maxd);
        }
        o.outputs += count * oh * ow * o.out_channels;
        o.images += count;
        o.evaluated = true;
      }
      r.images += count;
    }
  }

  // Advice: the fused node(s) whose codes actually change.
  std::vector<std::string> hit, potential;
  for (const auto& o : r.nodes) {
    if (o.would_fuse && o.changed_codes > 0)
      hit.push_back(fmt::format(
          "{} ({} weight pairs; sums saturate on {} of {} images and {:.2f}% of its output codes change, by up to {})",
          o.node, o.pairs.size(), o.images_with_overflow, o.images, 100.0 * o.changed_fraction(), o.max_code_change));
    else if (!o.pairs.empty())
      potential.push_back(o.node);
  }
  if (!hit.empty())
    r.advice = fmt::format(
        "ONNX Runtime's fused u8 x s8 kernel on AVX2 without VNNI saturates 16-bit pair sums in {}: quantize these "
        "weights as uint8 (U8U8), or with reduce_range (7-bit weights), or keep {} at higher precision, to get the "
        "exact-arithmetic accuracy.",
        fmt::join(hit, ", "), hit.size() == 1 ? "that layer" : "those layers");
  else if (!potential.empty())
    r.advice = fmt::format(
        "{} have weight pairs that could saturate a u8 x s8 AVX2 kernel, but no output changed on these images{}; "
        "reduce_range or uint8 weights would remove the risk.",
        fmt::join(potential, ", "), r.images ? "" : " (no images evaluated)");
  return r;
}

nlohmann::json overflow_to_json(const OverflowResult& r) {
  nlohmann::json j;
  j["schema"] = "overflow";
  j["schema_version"] = 1;
  j["images"] = r.images;
  j["input_code_max"] = r.input_code_max;
  j["kernel"] =
      "u8 x s8 with saturating int16 pair sums (AVX2 vpmaddubsw; ONNX Runtime on x86 without VNNI); K ordered (kh, kw, "
      "c), zero-padded to even length";
  j["advice"] = r.advice;
  j["nodes"] = nlohmann::json::array();
  for (const auto& o : r.nodes) {
    nlohmann::json e;
    e["node"] = o.node;
    e["op_type"] = o.op_type;
    e["input"] = o.input;
    e["output"] = o.output;
    e["analyzable"] = o.analyzable;
    if (!o.note.empty()) e["note"] = o.note;
    e["would_fuse"] = o.would_fuse;
    e["fuse_reason"] = o.fuse_reason;
    e["input_u8"] = o.input_u8;
    e["output_u8"] = o.output_u8;
    e["k"] = o.k;
    e["k_padded"] = o.k_padded;
    e["flagged_pairs"] = nlohmann::json::array();
    for (const auto& p : o.pairs)
      e["flagged_pairs"].push_back({{"out_channel", p.out_channel},
                                    {"k_a", p.k_a},
                                    {"k_b", p.k_b},
                                    {"pos_a", p.pos_a},
                                    {"pos_b", p.pos_b},
                                    {"w_a", p.w_a},
                                    {"w_b", p.w_b},
                                    {"worst_pair_sum", p.worst}});
    if (o.evaluated)
      e["runtime"] = {{"images", o.images},
                      {"outputs", o.outputs},
                      {"overflowed_outputs", o.overflowed_outputs},
                      {"overflow_fraction", o.overflow_fraction()},
                      {"changed_codes", o.changed_codes},
                      {"changed_fraction", o.changed_fraction()},
                      {"max_code_change", o.max_code_change},
                      {"images_with_overflow", o.images_with_overflow},
                      {"images_with_changed_codes", o.images_with_changed_codes}};
    j["nodes"].push_back(e);
  }
  return j;
}

std::string overflow_markdown(const OverflowResult& r) {
  std::string s = fmt::format(
      "u8 x s8 int16 pair saturation (AVX2 without VNNI), worst-case input code {}, {} images.\n\n", r.input_code_max,
      r.images);
  s += "| node | fused by ORT (x86) | K | flagged pairs | outputs overflowing | codes changed | max change | images "
       "(overflow / changed) |\n|---|---|---:|---:|---:|---:|---:|---|\n";
  for (const auto& o : r.nodes) {
    if (!o.analyzable) {
      s += fmt::format("| {} | - | - | - | {} | | | |\n", o.node, o.note);
      continue;
    }
    s += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", o.node, o.would_fuse ? "yes" : "no", o.k,
                     o.pairs.size(),
                     o.evaluated ? fmt::format("{:.3f}%", 100.0 * o.overflow_fraction()) : "-",
                     o.evaluated ? fmt::format("{} ({:.2f}%)", o.changed_codes, 100.0 * o.changed_fraction()) : "-",
                     o.evaluated ? fmt::format("{}", o.max_code_change) : "-",
                     o.evaluated ? fmt::format("{} / {}", o.images_with_overflow, o.images_with_changed_codes) : "-");
  }
  for (const auto& o : r.nodes)
    if (!o.pairs.empty()) {
      s += fmt::format("\nFlagged pairs of {}:\n\n| out ch | a | b | w_a | w_b | worst pair sum |\n|---:|---|---|---:|---:|---:|\n",
                       o.node);
      for (const auto& p : o.pairs)
        s += fmt::format("| {} | {} | {} | {} | {} | {} |\n", p.out_channel, p.pos_a, p.pos_b, p.w_a, p.w_b, p.worst);
    }
  if (!r.advice.empty()) s += "\n**" + r.advice + "**\n";
  return s;
}

}  // namespace qpipe::analysis
