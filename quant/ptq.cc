// End-to-end PTQ run; see ptq.h.

#include "quant/ptq.h"

#include "engine/error.h"
#include "engine/session.h"

namespace qpipe {

nlohmann::json PtqResult::to_json(const QuantConfig& config) const {
  nlohmann::json j;
  j["config"] = config.to_json();
  j["calibration"] = calibration.to_json();
  j["params"] = qdq.to_json();
  j["bias_correction"] = bias_correction.to_json();
  return j;
}

PtqResult run_ptq(const Model& fp32, const Tensor& images, const PtqOptions& options) {
  const QuantConfig& cfg = options.config;
  cfg.validate();
  PtqResult r;
  r.plan = plan_qdq(fp32.graph, cfg);

  std::vector<std::string> to_calibrate;
  for (const auto& t : r.plan.tensors_to_calibrate()) {
    const TensorOverride* ov = options.overrides ? options.overrides->find(t) : nullptr;
    if (!ov || !ov->has_params()) to_calibrate.push_back(t);
  }
  const bool need_images = !to_calibrate.empty() || cfg.bias_correction;
  if (need_images && (images.empty() || images.rank() < 1 || images.dim(0) == 0))
    fail(ErrorKind::kInput, "quantize: {} tensor(s) need calibration{} but no calibration images were given",
         to_calibrate.size(), cfg.bias_correction ? " and bias correction is on" : "");

  if (!to_calibrate.empty()) {
    SessionOptions so;
    so.conv_order = cfg.calibration_conv_order;
    so.ort_intra_op_threads = cfg.calibration_ort_threads;
    Session s(fp32, so);
    CalibrationOptions co;
    co.calibrator = cfg.effective_calibration();
    co.batch = options.batch;
    r.calibration = calibrate(s, images, to_calibrate, co);
  }
  r.qdq = build_qdq(fp32, r.plan, r.calibration.ranges(), cfg, options.overrides);
  if (cfg.bias_correction) {
    BiasCorrectionOptions bo;
    bo.batch = options.batch;
    r.bias_correction = apply_bias_correction(r.qdq.model, fp32, images, bo);
  }
  return r;
}

}  // namespace qpipe
