#include "pipeline/charts/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace qpipe::charts {
namespace {

const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"};
constexpr const char* kFont = "font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\"";

std::string num(double v) {
  std::string s = fmt::format("{:.2f}", v);
  return s;
}

std::string tick_label(double v, double step) {
  int decimals = 0;
  if (step < 1) decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  decimals = std::clamp(decimals, 0, 6);
  std::string s = fmt::format("{:.{}f}", v, decimals);
  if (s == "-0") s = "0";
  return s;
}

double approx_text_width(std::string_view s, double font_px) { return 0.6 * font_px * static_cast<double>(s.size()); }

std::string header(int w, int h) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n",
      w, h);
}

std::string text(double x, double y, std::string_view s, int size, const char* anchor = "start",
                 const char* extra = "") {
  return fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" {} text-anchor=\"{}\"{}>{}</text>\n", num(x), num(y),
                     size, kFont, anchor, extra, escape_xml(s));
}

}  // namespace

std::string escape_xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string bar_chart_svg(const BarChart& c) {
  const std::size_t nc = c.categories.size(), ns = std::max<std::size_t>(1, c.series.size());
  const double bar_h = ns == 1 ? 16 : 11, gap = 8;
  const double row_h = bar_h * static_cast<double>(ns) + gap;
  double label_w = 40;
  for (const auto& s : c.categories) label_w = std::max(label_w, approx_text_width(s, 12) * 1.1);
  label_w = std::min(label_w, 440.0);
  const double left = label_w + 24, right = 70, top = c.subtitle.empty() ? 50 : 68;
  const double legend_h = ns > 1 || c.reference_line ? 24 : 0;
  const double plot_w = c.width - left - right;
  const double plot_h = row_h * static_cast<double>(nc);
  const int height = static_cast<int>(top + plot_h + 50 + legend_h);

  // Value range (finite values, 0 and the reference line included).
  double lo = 0, hi = 0;
  for (const auto& s : c.series)
    for (double v : s.values)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (c.reference_line) hi = std::max(hi, *c.reference_line), lo = std::min(lo, *c.reference_line);
  if (hi == lo) hi = lo + 1;
  bool any_inf = false;
  for (const auto& s : c.series)
    for (double v : s.values) any_inf = any_inf || std::isinf(v);
  auto ticks = nice_ticks(lo, hi);
  const double tstep = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  // Extend to whole tick steps (one more when a bar stands for +inf, so it
  // stays distinguishable from the largest finite bar).
  if (!c.axis_min && lo < 0) lo = std::floor(lo / tstep - 1e-9) * tstep;
  if (!c.axis_max) hi = std::ceil(hi / tstep - 1e-9) * tstep + (any_inf ? tstep : 0);
  if (c.axis_min) lo = *c.axis_min;
  if (c.axis_max) hi = *c.axis_max;
  ticks = nice_ticks(lo, hi);
  auto X = [&](double v) { return left + (std::clamp(v, lo, hi) - lo) / (hi - lo) * plot_w; };

  std::string o = header(c.width, height);
  o += text(c.width / 2.0, 24, c.title, 16, "middle", " font-weight=\"bold\"");
  if (!c.subtitle.empty()) o += text(c.width / 2.0, 44, c.subtitle, 12, "middle", " fill=\"#444444\"");
  // Grid and ticks.
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  for (double t : ticks) {
    if (t < lo - 1e-12 || t > hi + 1e-12) continue;
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>\n",
                     num(X(t)), num(top), num(top + plot_h));
    o += text(X(t), top + plot_h + 16, tick_label(t, step), 11, "middle", " fill=\"#333333\"");
  }
  o += text(left + plot_w / 2, top + plot_h + 34, c.value_label, 12, "middle");
  // Bars.
  for (std::size_t i = 0; i < nc; ++i) {
    const double y0 = top + static_cast<double>(i) * row_h + gap / 2;
    const bool hl = i < c.highlight.size() && c.highlight[i];
    o += text(left - 8, y0 + bar_h * static_cast<double>(ns) / 2 + 4, c.categories[i], 12, "end",
              hl ? " fill=\"#c00000\" font-weight=\"bold\"" : " fill=\"#222222\"");
    for (std::size_t s = 0; s < c.series.size(); ++s) {
      const auto& se = c.series[s];
      const std::string color = se.color.empty() ? kPalette[s % 7] : se.color;
      const double v = i < se.values.size() ? se.values[i] : std::numeric_limits<double>::quiet_NaN();
      const double y = y0 + static_cast<double>(s) * bar_h;
      std::string label;
      double x1 = X(0), x2 = X(0);
      if (std::isnan(v)) {
        label = "n/a";
      } else if (std::isinf(v)) {
        x2 = v > 0 ? X(hi) : X(lo);
        label = v > 0 ? "exact" : "-inf";
      } else {
        x2 = X(v);
        label = fmt::format("{:.{}f}", v, c.value_decimals);
      }
      const double xa = std::min(x1, x2), w = std::fabs(x2 - x1);
      if (w > 0)
        o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}/>\n", num(xa), num(y + 1),
                         num(w), num(bar_h - 2), color, std::isinf(v) ? " fill-opacity=\"0.45\"" : "");
      const bool neg = std::isfinite(v) && v < 0;
      o += text(neg ? xa - 4 : std::max(x1, x2) + 4, y + bar_h - 2.5, label, 10, neg ? "end" : "start",
                " fill=\"#333333\"");
    }
  }
  // Zero axis and frame.
  o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333333\" stroke-width=\"1\"/>\n",
                   num(X(0)), num(top), num(top + plot_h));
  o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333333\" stroke-width=\"1\"/>\n",
                   num(left), num(top + plot_h), num(left + plot_w));
  if (c.reference_line) {
    o += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#c00000\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"5,3\"/>\n",
        num(X(*c.reference_line)), num(top - 4), num(top + plot_h));
  }
  // Legend.
  double lx = left;
  const double ly = top + plot_h + 48;
  if (c.series.size() > 1)
    for (std::size_t s = 0; s < c.series.size(); ++s) {
      const std::string color = c.series[s].color.empty() ? kPalette[s % 7] : c.series[s].color;
      o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n", num(lx), num(ly), color);
      o += text(lx + 16, ly + 10, c.series[s].name, 12);
      lx += 16 + approx_text_width(c.series[s].name, 12) + 24;
    }
  if (c.reference_line) {
    o += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#c00000\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"5,3\"/>\n",
        num(lx), num(ly + 6), num(lx + 18));
    o += text(lx + 22, ly + 10, c.reference_label, 12);
  }
  o += "</svg>\n";
  return o;
}

std::string histogram_svg(const Histogram& h) {
  const double left = 70, right = 20, top = h.subtitle.empty() ? 46 : 64, bottom = 56;
  const double plot_w = h.width - left - right, plot_h = h.height - top - bottom;
  const std::size_t nb = h.counts.size();
  double cmax = 0;
  for (double v : h.counts) cmax = std::max(cmax, v);
  if (cmax <= 0) cmax = 1;
  // y mapping: linear, or log10(1 + count).
  auto yval = [&](double v) { return h.log_y ? std::log10(1 + std::max(0.0, v)) : std::max(0.0, v); };
  const double ymax_raw = yval(cmax);
  std::vector<double> yt;
  double ymax = ymax_raw;
  if (h.log_y) {
    for (int k = 0; std::pow(10.0, k) <= cmax * 10 && k < 12; ++k) yt.push_back(std::pow(10.0, k));
    ymax = std::max(ymax_raw, yval(yt.back()));
  } else {
    yt = nice_ticks(0, cmax, 5);
    ymax = std::max(ymax_raw, yt.back());
  }
  auto Y = [&](double v) { return top + plot_h - yval(v) / ymax * plot_h; };
  auto X = [&](double x) { return left + (x - h.x_min) / (h.x_max - h.x_min) * plot_w; };

  std::string o = header(h.width, h.height);
  o += text(h.width / 2.0, 22, h.title, 15, "middle", " font-weight=\"bold\"");
  if (!h.subtitle.empty()) o += text(h.width / 2.0, 42, h.subtitle, 11, "middle", " fill=\"#444444\"");
  for (double t : yt) {
    if (yval(t) > ymax + 1e-12) continue;
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#e6e6e6\" stroke-width=\"1\"/>\n",
                     num(left), num(Y(t)), num(left + plot_w));
    o += text(left - 6, Y(t) + 4, h.log_y ? fmt::format("{:g}", t) : tick_label(t, yt.size() > 1 ? yt[1] - yt[0] : 1),
              10, "end", " fill=\"#333333\"");
  }
  const double bw = plot_w / static_cast<double>(std::max<std::size_t>(1, nb));
  for (std::size_t i = 0; i < nb; ++i) {
    if (h.counts[i] <= 0) continue;
    const bool hl = i < h.highlight.size() && h.highlight[i];
    const double y = Y(h.counts[i]);
    o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                     num(left + static_cast<double>(i) * bw), num(y), num(std::max(bw, 0.6)),
                     num(top + plot_h - y), hl ? "#e15759" : "#4e79a7");
  }
  auto xt = nice_ticks(h.x_min, h.x_max, 8);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double t : xt) {
    if (t < h.x_min - 1e-12 || t > h.x_max + 1e-12) continue;
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333333\" stroke-width=\"1\"/>\n",
                     num(X(t)), num(top + plot_h), num(top + plot_h + 4));
    o += text(X(t), top + plot_h + 16, tick_label(t, xstep), 10, "middle", " fill=\"#333333\"");
  }
  for (std::size_t k = 0; k < h.markers.size(); ++k) {
    const auto& [x, cap] = h.markers[k];
    if (x < h.x_min || x > h.x_max) continue;
    o += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#c00000\" stroke-width=\"1.2\" "
        "stroke-dasharray=\"4,3\"/>\n",
        num(X(x)), num(top), num(top + plot_h));
    const bool right_half = X(x) > left + plot_w / 2;
    o += text(X(x) + (right_half ? -4 : 4), top + 12 + 13 * static_cast<double>(k % 3), cap, 10,
              right_half ? "end" : "start", " fill=\"#c00000\"");
  }
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333333\"/>\n", num(left),
                   num(top), num(plot_w), num(plot_h));
  o += text(left + plot_w / 2, h.height - 14, h.x_label, 12, "middle");
  o += text(16, top + plot_h / 2, h.y_label, 12, "middle",
            fmt::format(" transform=\"rotate(-90 16 {})\"", num(top + plot_h / 2)).c_str());
  o += "</svg>\n";
  return o;
}

}  // namespace qpipe::charts
