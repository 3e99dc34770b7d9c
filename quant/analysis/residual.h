#pragma once
// Residual-join analysis: every Add of the QDQ model whose two inputs are
// both quantized activations (x_a_dq + x_b_dq, the skip connections of a
// ResNet), with the two input grids and the output grid.
//
// An integer Add must bring both inputs to one scale before summing. tflite's
// reference int8 Add (STYLE.md 1) uses the common scale 2·max(s_a, s_b) with a
// left shift of 20 bits for headroom, then three fixed-point multipliers:
//   m_a = s_a / (2·max), m_b = s_b / (2·max), m_out = 2·max / (2^20 · s_out).
// When the input scales differ by a large ratio r = max(s_a, s_b) /
// min(s_a, s_b), the finer input is represented with fewer effective levels
// relative to the coarser one after the sum is requantized: its small values
// fall below the output grid step. Ratios above `ratio_threshold` are flagged.
//
// SQNR at the node (when an SqnrResult of the same models is given):
//   local_sqnr_db      the Add alone (see sqnr.h "local")
//   sqnr_lost_db       min(accumulated SQNR of the two inputs) − accumulated
//                      SQNR of the output: > 0 when the join lowers the
//                      quality below its worse input.

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "quant/analysis/qdq_graph.h"
#include "quant/analysis/sqnr.h"

namespace qpipe::analysis {

struct ResidualOptions {
  double ratio_threshold = 2.0;
};

struct ResidualAdd {
  std::string node;    // the Add's name
  std::string output;  // its output tensor
  std::string input_a, input_b;  // the activations X (not X_dq)
  QuantParams a, b;
  bool has_output_quant = false;
  QuantParams out;
  double ratio = 1;  // max(s_a, s_b) / min(s_a, s_b)
  bool flagged = false;
  // tflite-style integer Add rescaling.
  double common_scale = 0;  // 2 * max(s_a, s_b)
  QuantizedMultiplier mult_a, mult_b, mult_out;
  // From the SQNR analysis (NaN when not given).
  double sqnr_a_db = NAN, sqnr_b_db = NAN, sqnr_out_db = NAN, local_sqnr_db = NAN, sqnr_lost_db = NAN;
};

struct ResidualResult {
  double threshold = 2.0;
  std::vector<ResidualAdd> adds;
  double min_ratio = NAN, max_ratio = NAN;
  int flagged = 0;
};

ResidualResult analyze_residual(const QdqGraph& g, const SqnrResult* sqnr, const ResidualOptions& options = {});

// schema "residual", schema_version 1.
nlohmann::json residual_to_json(const ResidualResult& r);
std::string residual_markdown(const ResidualResult& r);
std::string residual_chart_svg(const ResidualResult& r);

}  // namespace qpipe::analysis
