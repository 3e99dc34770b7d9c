#pragma once
// SVG charts written by qpipe itself (no plotting dependency): horizontal
// bar charts (one or more series per category: SQNR per layer with both
// variants, residual scale ratios with a threshold line, ranked sensitivity
// bars) and histograms (FP32 values against the quantization grid).
//
// Output is a standalone SVG 1.1 document with explicit width/height and a
// viewBox, plain <rect>/<line>/<text> elements, inline presentation
// attributes only (no CSS, no scripts, no external fonts), so it renders the
// same in browsers, in a Git forge's Markdown view and in rsvg-convert.
// Text is XML-escaped. Output is deterministic (numbers printed with fixed
// precision).
//
// Values: NaN is drawn as "n/a"; +inf as a bar to the axis end, labelled
// "exact" (e.g. an SQNR of a lossless quantization).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qpipe::charts {

struct Series {
  std::string name;
  std::vector<double> values;  // one per category
  std::string color;           // any SVG color; "" picks from the palette
};

struct BarChart {
  std::string title;
  std::string subtitle;
  std::string value_label;              // axis caption, e.g. "SQNR (dB)"
  std::vector<std::string> categories;  // one row per category, top to bottom
  std::vector<Series> series;
  std::vector<bool> highlight;          // per category: label drawn bold red (flagged)
  std::optional<double> reference_line; // vertical line at this value (e.g. a threshold)
  std::string reference_label;
  std::optional<double> axis_min, axis_max;  // default: from the data (always including 0)
  int value_decimals = 1;               // decimals of the value labels
  int width = 900;
};

struct Histogram {
  std::string title;
  std::string subtitle;
  std::string x_label, y_label;
  std::vector<double> counts;  // equal-width bins over [x_min, x_max]
  double x_min = 0, x_max = 1;
  bool log_y = false;
  // Bins drawn in the highlight color (e.g. clipped codes at qmin/qmax).
  std::vector<bool> highlight;
  // Vertical markers at x positions with a caption.
  std::vector<std::pair<double, std::string>> markers;
  int width = 800, height = 360;
};

std::string bar_chart_svg(const BarChart& c);
std::string histogram_svg(const Histogram& h);

// XML text escaping (&, <, >, ", ').
std::string escape_xml(std::string_view s);
// "Nice" axis ticks covering [lo, hi] (about `target` ticks at 1/2/5·10^k steps).
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace qpipe::charts
