// The SVG writer: well-formed output, escaping, missing and infinite values.

#include "pipeline/charts/svg.h"

#include <gtest/gtest.h>

#include <cmath>

namespace qpipe::charts {
namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(ChartsSvg, BarChartIsStandaloneAndEscaped) {
  BarChart c;
  c.title = "SQNR <per> layer & \"more\"";
  c.value_label = "dB";
  c.categories = {"conv2d", "a<b", "exact one"};
  c.series = {{"accumulated", {20.5, NAN, INFINITY}, ""}, {"local", {30.25, 12, 5}, "#ff0000"}};
  c.highlight = {false, true, false};
  c.reference_line = 25;
  c.reference_label = "threshold";
  const std::string s = bar_chart_svg(c);
  EXPECT_EQ(s.rfind("<?xml", 0), 0u);
  EXPECT_NE(s.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(s.find("viewBox="), std::string::npos);
  EXPECT_EQ(count(s, "<svg"), 1);
  EXPECT_EQ(count(s, "</svg>"), 1);
  EXPECT_NE(s.find("SQNR &lt;per&gt; layer &amp; &quot;more&quot;"), std::string::npos);
  EXPECT_NE(s.find("a&lt;b"), std::string::npos);
  EXPECT_EQ(s.find("a<b"), std::string::npos);
  EXPECT_NE(s.find(">n/a<"), std::string::npos);
  EXPECT_NE(s.find(">exact<"), std::string::npos);
  EXPECT_NE(s.find(">20.5<"), std::string::npos);
  EXPECT_EQ(count(s, "<text"), count(s, "</text>"));
  // Deterministic.
  EXPECT_EQ(s, bar_chart_svg(c));
}

TEST(ChartsSvg, HistogramLogScaleAndMarkers) {
  Histogram h;
  h.title = "codes";
  h.counts.assign(256, 0);
  h.counts[0] = 1000;
  h.counts[10] = 3;
  h.x_min = -128.5;
  h.x_max = 127.5;
  h.log_y = true;
  h.highlight.assign(256, false);
  h.highlight[0] = true;
  h.markers = {{-100, "min"}, {200, "outside"}};
  const std::string s = histogram_svg(h);
  EXPECT_EQ(count(s, "fill=\"#e15759\""), 1);  // the highlighted bin
  EXPECT_NE(s.find(">min<"), std::string::npos);
  EXPECT_EQ(s.find(">outside<"), std::string::npos);  // off the axis: not drawn
  EXPECT_NE(s.find(">1000<"), std::string::npos);     // log tick
}

TEST(ChartsSvg, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  auto t = nice_ticks(-3, 42, 6);
  EXPECT_DOUBLE_EQ(t.front(), 0);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 10);
}

}  // namespace
}  // namespace qpipe::charts
