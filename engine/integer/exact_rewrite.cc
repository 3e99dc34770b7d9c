// exec_mode "exact": which QDQ groups run on codes (engine/integer/exact.h).
//
// A group is a float op F whose non-constant inputs are DequantizeLinear
// outputs of int8/uint8 codes (per-tensor parameters), whose constant inputs
// are DequantizeLinear of initializer codes (folded by the plan), and whose
// output reaches exactly one QuantizeLinear (per tensor, int8/uint8), possibly
// through one Relu. Unlike ort-avx2, a code tensor may feed any number of
// consumers and s8/u8 activations are both accepted. Groups:
//   Conv (2-D, group 1; weights int8/uint8 per tensor or per output channel,
//         bias int32 at scale s_x * s_w), MatMul (2-D, weights [K, M]),
//   Add / Mul (two code tensors of one shape, or a code tensor and a
//         constant per channel along axis 1 or a scalar),
//   AveragePool over the whole plane / GlobalAveragePool,
//   Reshape / Flatten (a view of the codes when the Q parameters equal the
//         DQ's, else one requantization).
// With SessionOptions::fuse, a Mul/Add-by-constant group reading only a conv
// group's codes is folded into that conv's output stage (ExactPostOp; same
// per-element arithmetic, so no code changes).
//   Transpose NHWC -> NCHW of a float tensor followed by Q (the graph input):
//         quantized in the reference kernel's arithmetic, written transposed.
// Not rewritten (reference semantics stay): Softmax (float on the dequantized
// logits, then Q), Transpose/MaxPool on codes, Gemm, everything with per-axis
// activation parameters and any group whose float intermediate is kept
// (graph output or fetched tap).

#include <cmath>
#include <map>

#include "engine/integer/exact.h"
#include "engine/kernels/common.h"

namespace qpipe::integer {
namespace {

struct Codes {
  int id = -1;            // code tensor id
  bool is_signed = true;
  float scale = 1.f;
  int32_t zp = 0;
};

struct ConstCodes {
  const Tensor* codes = nullptr;  // the initializer (int8/uint8/int32)
  std::vector<float> scales;      // [1] or per axis
  std::vector<int32_t> zps;       // same length as scales
  int64_t axis = 1;
};

bool scalar_param(const Tensor* t) { return t && t->numel() == 1; }

}  // namespace

std::vector<ExactRewrite> plan_exact_rewrites(const ExactPlanView& v) {
  const Graph& g = v.model->graph;
  const auto& descs = *v.descs;
  const auto& consts = *v.constants;
  const auto& keep = *v.keep;
  const std::size_t nsteps = v.steps.size();
  std::vector<std::vector<std::size_t>> consumers(descs.size());
  std::vector<long> producer(descs.size(), -1);
  for (std::size_t si = 0; si < nsteps; ++si) {
    for (int id : v.steps[si].in)
      if (id >= 0) consumers[static_cast<std::size_t>(id)].push_back(si);
    for (int id : v.steps[si].out) producer[static_cast<std::size_t>(id)] = static_cast<long>(si);
  }
  auto node_of = [&](std::size_t si) -> const Node& { return g.nodes[v.steps[si].node]; };
  auto constant = [&](int id) -> const Tensor* {
    if (id < 0) return nullptr;
    const Tensor& t = consts[static_cast<std::size_t>(id)];
    return t.empty() ? nullptr : &t;
  };
  auto is_code_type = [](DType t) { return t == DType::kInt8 || t == DType::kUInt8; };
  // Per-tensor scale / zero point of a Q or DQ step.
  auto qparams = [&](std::size_t si, float* scale, int32_t* zp) {
    const auto& st = v.steps[si];
    const Tensor* s = st.in.size() > 1 ? constant(st.in[1]) : nullptr;
    const Tensor* z = st.in.size() > 2 ? constant(st.in[2]) : nullptr;
    if (!scalar_param(s) || s->dtype() != DType::kFloat32) return false;
    if (st.in.size() > 2 && st.in[2] >= 0 && !scalar_param(z)) return false;
    *scale = s->data<float>()[0];
    *zp = z ? static_cast<int32_t>(to_double(*z)[0]) : 0;
    return *scale > 0.f && std::isfinite(*scale);
  };
  // Codes behind a float value produced by DequantizeLinear.
  auto codes_of = [&](int x, Codes* c) {
    if (x < 0 || keep.count(x)) return false;
    const long d = producer[static_cast<std::size_t>(x)];
    if (d < 0 || node_of(static_cast<std::size_t>(d)).op_type != "DequantizeLinear") return false;
    const auto& ds = v.steps[static_cast<std::size_t>(d)];
    if (ds.in.empty() || ds.in[0] < 0) return false;
    const DType t = descs[static_cast<std::size_t>(ds.in[0])].dtype;
    if (!is_code_type(t)) return false;
    c->id = ds.in[0];
    c->is_signed = t == DType::kInt8;
    return qparams(static_cast<std::size_t>(d), &c->scale, &c->zp);
  };
  // Initializer codes behind a folded DequantizeLinear.
  auto const_codes = [&](const std::string& name, ConstCodes* cc) {
    auto pn = g.producer(name);
    if (!pn || g.nodes[*pn].op_type != "DequantizeLinear") return false;
    const Node& dq = g.nodes[*pn];
    auto it = g.initializers.find(dq.inputs[0]);
    auto st = g.initializers.find(dq.inputs.size() > 1 ? dq.inputs[1] : "");
    if (it == g.initializers.end() || st == g.initializers.end()) return false;
    if (st->second.dtype() != DType::kFloat32 || st->second.rank() > 1) return false;
    cc->codes = &it->second;
    cc->scales.clear();
    for (double s : to_double(st->second)) {
      if (!(s > 0) || !std::isfinite(s)) return false;
      cc->scales.push_back(static_cast<float>(s));
    }
    cc->zps.assign(cc->scales.size(), 0);
    if (dq.inputs.size() > 2 && !dq.inputs[2].empty()) {
      auto zt = g.initializers.find(dq.inputs[2]);
      if (zt == g.initializers.end() || zt->second.numel() != static_cast<int64_t>(cc->scales.size())) return false;
      const auto z = to_double(zt->second);
      for (std::size_t i = 0; i < z.size(); ++i) cc->zps[i] = static_cast<int32_t>(z[i]);
    }
    cc->axis = dq.attr_int("axis", 1);
    if (cc->axis < 0) cc->axis += static_cast<int64_t>(it->second.rank());
    return cc->scales.size() == 1 || cc->axis < static_cast<int64_t>(it->second.rank());
  };
  // The QuantizeLinear a float value reaches (optionally through one Relu).
  struct OutQ {
    std::size_t q = 0;
    long relu = -1;
    int y = -1;
    float scale = 1.f;
    ExactOutput out;
  };
  auto out_q = [&](int val, OutQ* o) {
    auto single = [&](int id) -> long {
      if (keep.count(id) || consumers[static_cast<std::size_t>(id)].size() != 1) return -1;
      return static_cast<long>(consumers[static_cast<std::size_t>(id)][0]);
    };
    long c = single(val);
    if (c < 0) return false;
    o->relu = -1;
    if (node_of(static_cast<std::size_t>(c)).op_type == "Relu") {
      o->relu = c;
      const auto& rs = v.steps[static_cast<std::size_t>(c)];
      if (rs.out.size() != 1) return false;
      c = single(rs.out[0]);
      if (c < 0) return false;
    }
    const auto& qs = v.steps[static_cast<std::size_t>(c)];
    if (node_of(static_cast<std::size_t>(c)).op_type != "QuantizeLinear" || qs.out.size() != 1 || qs.in[0] < 0) return false;
    const DType t = descs[static_cast<std::size_t>(qs.out[0])].dtype;
    if (!is_code_type(t)) return false;
    o->q = static_cast<std::size_t>(c);
    o->y = qs.out[0];
    o->out.is_signed = t == DType::kInt8;
    o->out.relu = o->relu >= 0;
    return qparams(o->q, &o->scale, &o->out.zp);
  };

  std::vector<ExactRewrite> rewrites;
  std::map<std::size_t, ExactConvParams> conv_params;   // rewrite index -> conv (kernel built at the end)
  std::map<std::size_t, ExactBinaryParams> const_ops;   // rewrite index -> Mul/Add by a constant
  for (std::size_t si = 0; si < nsteps; ++si) {
    const auto& st = v.steps[si];
    const Node& n = node_of(si);
    if (st.out.size() != 1 || st.in.empty() || st.in[0] < 0) continue;
    if (descs[static_cast<std::size_t>(st.out[0])].dtype != DType::kFloat32) continue;
    OutQ oq;
    ExactRewrite rw;
    rw.node = st.node;
    if (n.op_type == "Conv" || n.op_type == "MatMul") {
      Codes x;
      ConstCodes w, b;
      if (st.in.size() < 2 || !codes_of(st.in[0], &x) || !const_codes(n.inputs[1], &w)) continue;
      if (!is_code_type(w.codes->dtype())) continue;
      const bool has_bias = n.op_type == "Conv" && n.inputs.size() > 2 && !n.inputs[2].empty();
      if (has_bias && (!const_codes(n.inputs[2], &b) || b.codes->dtype() != DType::kInt32)) continue;
      if (!out_q(st.out[0], &oq)) continue;
      const Shape& xs = descs[static_cast<std::size_t>(st.in[0])].shape;
      ExactConvParams q;
      const Tensor& wt = *w.codes;
      if (n.op_type == "Conv") {
        if (xs.size() != 4 || wt.rank() != 4 || wt.dim(1) != xs[1]) continue;
        const kernels::Geometry2D geo = kernels::conv_geometry(n, xs, wt.dim(2), wt.dim(3));
        q.p = {xs[0], xs[1], xs[2], xs[3], wt.dim(0), wt.dim(2), wt.dim(3), geo.sh, geo.sw, geo.dh, geo.dw,
               geo.pad_top, geo.pad_left, geo.out_h, geo.out_w};
        if (w.scales.size() != 1 && w.axis != 0) continue;
      } else {
        if (xs.size() != 2 || wt.rank() != 2 || wt.dim(0) != xs[1]) continue;
        q.p = {xs[0], xs[1], 1, 1, wt.dim(1), 1, 1, 1, 1, 1, 1, 0, 0, 1, 1};
        if (w.scales.size() != 1 && w.axis != 1) continue;
      }
      const int64_t M = q.p.m;
      if (w.scales.size() != 1 && static_cast<int64_t>(w.scales.size()) != M) continue;
      q.x_signed = x.is_signed;
      q.w_signed = wt.dtype() == DType::kInt8;
      q.w.assign(static_cast<const uint8_t*>(wt.raw()), static_cast<const uint8_t*>(wt.raw()) + wt.numel());
      q.zp_x = x.zp;
      q.out = oq.out;
      q.bias.assign(static_cast<std::size_t>(M), 0);
      bool ok = true;
      for (int64_t m = 0; m < M; ++m) {
        const std::size_t wi = w.scales.size() == 1 ? 0 : static_cast<std::size_t>(m);
        q.zp_w.push_back(w.zps[wi]);
        const float acc_scale = x.scale * w.scales[wi];
        q.multiplier.push_back(acc_scale / oq.scale);
        if (has_bias) {
          if (b.codes->numel() != M || (b.zps.size() > 0 && b.zps[b.zps.size() == 1 ? 0 : static_cast<std::size_t>(m)] != 0)) {
            ok = false;
            break;
          }
          const float sb = b.scales[b.scales.size() == 1 ? 0 : static_cast<std::size_t>(m)];
          // The bias is added as int32 on the accumulator's scale: only when it is on that scale.
          if (std::fabs(sb - acc_scale) > 1e-5f * acc_scale) {
            ok = false;
            break;
          }
          q.bias[static_cast<std::size_t>(m)] = b.codes->data<int32_t>()[m];
        }
      }
      if (!ok) continue;
      if (n.op_type == "Conv") {
        rw.kernel = make_exact_conv(q, v.isa);  // validates; rebuilt below with any fused post ops
        if (rw.kernel) conv_params[rewrites.size()] = std::move(q);
      } else {
        rw.kernel = make_exact_matmul(std::move(q));
      }
      if (!rw.kernel) continue;
      rw.in = {x.id};
    } else if ((n.op_type == "Add" || n.op_type == "Mul") && st.in.size() == 2) {
      const Shape& ys = descs[static_cast<std::size_t>(st.out[0])].shape;
      if (ys.size() < 2) continue;
      Codes a, b;
      const bool a_code = codes_of(st.in[0], &a), b_code = codes_of(st.in[1], &b);
      ExactBinaryParams bp;
      bp.is_mul = n.op_type == "Mul";
      bp.channels = ys[1];
      bp.inner = 1;
      for (std::size_t d = 2; d < ys.size(); ++d) bp.inner *= ys[d];
      if (a_code && b_code) {
        if (descs[static_cast<std::size_t>(a.id)].shape != ys || descs[static_cast<std::size_t>(b.id)].shape != ys) continue;
        bp.b_signed = b.is_signed;
        bp.zp_b = {b.zp};
        bp.scale_b = {b.scale};
        rw.in = {a.id, b.id};
      } else if (a_code || b_code) {
        if (!a_code) std::swap(a, b);
        const std::size_t ci = a_code ? 1 : 0;
        if (descs[static_cast<std::size_t>(a.id)].shape != ys) continue;
        ConstCodes cc;
        if (!const_codes(n.inputs[ci], &cc) || !is_code_type(cc.codes->dtype())) continue;
        // The constant must be a scalar or vary along axis 1 only (right-aligned broadcast).
        const Tensor& ct = *cc.codes;
        if (ct.rank() > ys.size()) continue;
        Shape cs(ys.size() - ct.rank(), 1);
        cs.insert(cs.end(), ct.shape().begin(), ct.shape().end());
        bool per_channel_ok = true;
        for (std::size_t d = 0; d < cs.size(); ++d)
          if (cs[d] != 1 && !(d == 1 && cs[d] == ys[1])) per_channel_ok = false;
        if (!per_channel_ok) continue;
        // Per-axis parameters must follow the same channel axis.
        if (cc.scales.size() != 1) {
          const int64_t caxis = cc.axis + static_cast<int64_t>(ys.size() - ct.rank());
          if (caxis != 1 || static_cast<int64_t>(cc.scales.size()) != ys[1]) continue;
        }
        const bool cs_signed = ct.dtype() == DType::kInt8;
        bp.b_is_const = true;
        bp.b_signed = cs_signed;
        for (int64_t c = 0; c < ys[1]; ++c) {
          const uint8_t* raw = static_cast<const uint8_t*>(ct.raw());
          const uint8_t r = raw[ct.numel() == 1 ? 0 : c];
          bp.b_codes.push_back(cs_signed ? static_cast<int32_t>(static_cast<int8_t>(r)) : static_cast<int32_t>(r));
        }
        bp.zp_b = cc.zps;
        bp.scale_b = cc.scales;
        rw.in = {a.id};
      } else {
        continue;
      }
      if (!out_q(st.out[0], &oq)) continue;
      bp.a_signed = a.is_signed;
      bp.zp_a = a.zp;
      bp.scale_a = a.scale;
      bp.scale_y = oq.scale;
      bp.out = oq.out;
      rw.kernel = make_exact_binary(bp, v.isa);
      if (bp.b_is_const) const_ops[rewrites.size()] = bp;
    } else if (n.op_type == "AveragePool" || n.op_type == "GlobalAveragePool") {
      Codes x;
      if (!codes_of(st.in[0], &x)) continue;
      const Shape& xs = descs[static_cast<std::size_t>(st.in[0])].shape;
      if (xs.size() != 4) continue;
      if (n.op_type == "AveragePool") {
        const auto k = n.attr_ints("kernel_shape");
        const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
        const bool global = k.size() == 2 && k[0] == xs[2] && k[1] == xs[3] &&
                            std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; }) &&
                            n.attr_string("auto_pad", "NOTSET") == "NOTSET";
        if (!global) continue;
      }
      if (!out_q(st.out[0], &oq)) continue;
      rw.kernel = make_exact_global_avgpool(xs[2] * xs[3], x.is_signed, x.zp, x.scale, oq.scale, oq.out);
      rw.in = {x.id};
    } else if (n.op_type == "Transpose") {
      // The float input's NHWC -> NCHW transpose and its QuantizeLinear, as one kernel.
      const ValueDesc& xd = descs[static_cast<std::size_t>(st.in[0])];
      if (xd.constant || xd.dtype != DType::kFloat32 || xd.shape.size() != 4) continue;
      if (n.attr_ints("perm") != std::vector<int64_t>{0, 3, 1, 2}) continue;
      if (!out_q(st.out[0], &oq) || oq.out.relu) continue;
      rw.kernel = make_exact_quantize_nhwc(oq.scale, oq.out.zp, oq.out.is_signed, v.isa);
      rw.in = {st.in[0]};
    } else if (n.op_type == "Reshape" || n.op_type == "Flatten") {
      Codes x;
      if (!codes_of(st.in[0], &x) || !out_q(st.out[0], &oq)) continue;
      const bool same = x.is_signed == oq.out.is_signed && x.scale == oq.scale && x.zp == oq.out.zp && !oq.out.relu;
      rw.kernel = make_exact_requantize(x.is_signed, x.zp, x.scale, oq.scale, oq.out, same);
      rw.in = {x.id};
    } else {
      continue;
    }
    rw.at = oq.q;
    rw.drop = {si, oq.q};
    if (oq.relu >= 0) rw.drop.push_back(static_cast<std::size_t>(oq.relu));
    rw.out = {oq.y};
    rewrites.push_back(std::move(rw));
  }
  // Fuse chains conv -> Q -> DQ -> {Mul, Add} by a per-channel constant -> Q
  // into the conv's output stage when the intermediate codes have no other
  // reader (and are not fetched).
  std::vector<bool> merged(rewrites.size(), false);
  auto single_reader = [&](int id) -> long {
    if (keep.count(id) || consumers[static_cast<std::size_t>(id)].size() != 1) return -1;
    return static_cast<long>(consumers[static_cast<std::size_t>(id)][0]);
  };
  for (auto& [ci, q] : conv_params) {
    while (v.fuse) {
      const int y = rewrites[ci].out[0];
      const long d = single_reader(y);
      if (d < 0 || node_of(static_cast<std::size_t>(d)).op_type != "DequantizeLinear") break;
      const long op_step = single_reader(v.steps[static_cast<std::size_t>(d)].out[0]);
      if (op_step < 0) break;
      long j = -1;
      for (const auto& [bi, bp] : const_ops)
        if (!merged[bi] && rewrites[bi].drop[0] == static_cast<std::size_t>(op_step) && rewrites[bi].in.size() == 1 &&
            rewrites[bi].in[0] == y)
          j = static_cast<long>(bi);
      if (j < 0) break;
      const ExactBinaryParams& bp = const_ops[static_cast<std::size_t>(j)];
      if (bp.channels != q.p.m || bp.inner != q.p.out_h * q.p.out_w) break;
      ExactPostOp op;
      op.is_mul = bp.is_mul;
      op.za = bp.zp_a;
      op.out = bp.out;
      for (int64_t c = 0; c < bp.channels; ++c) {
        const std::size_t pc = bp.scale_b.size() == 1 ? 0 : static_cast<std::size_t>(c);
        const int32_t bz = bp.b_codes[static_cast<std::size_t>(c)] - bp.zp_b[bp.zp_b.size() == 1 ? 0 : static_cast<std::size_t>(c)];
        if (bp.is_mul) {  // as make_exact_binary
          op.bz.push_back(bz);
          op.m.push_back(static_cast<float>(bp.scale_a * bp.scale_b[pc]) / bp.scale_y);
        } else {
          op.m.push_back(bp.scale_a / bp.scale_y);
          const float mb = bp.scale_b[pc] / bp.scale_y;
          op.tb.push_back(static_cast<float>(bz) * mb);
        }
      }
      q.post.push_back(std::move(op));
      auto& r = rewrites[ci];
      auto& o = rewrites[static_cast<std::size_t>(j)];
      r.out = o.out;
      r.at = o.at;
      r.drop.insert(r.drop.end(), o.drop.begin(), o.drop.end());
      merged[static_cast<std::size_t>(j)] = true;
    }
    if (!q.post.empty()) rewrites[ci].kernel = make_exact_conv(q, v.isa);
  }
  std::vector<ExactRewrite> out;
  for (std::size_t i = 0; i < rewrites.size(); ++i)
    if (!merged[i]) out.push_back(std::move(rewrites[i]));
  return out;
}

}  // namespace qpipe::integer
