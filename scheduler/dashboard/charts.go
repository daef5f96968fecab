package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// The charts are inline SVG drawn on the server. They scale to their container (viewBox,
// width 100%), so they fit a 375px screen, and take their colours from CSS classes
// (.c0 ... .c5, .axis, .grid) that the layout defines for the light and the dark theme.

// series is one named line or bar set of a chart, aligned with the chart's labels.
type series struct {
	Name   string
	Values []float64
}

const (
	chartW, chartH         = 480, 220
	padL, padR, padT, padB = 56, 8, 10, 40
)

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// axis picks the y axis for values up to v: about four steps of a round size (whole
// numbers when whole is set), the top a multiple of the step.
func axis(v float64, whole bool) (top, step float64) {
	if v <= 0 {
		return 1, 1
	}
	step = niceStep(v / 4)
	if whole {
		step = math.Max(1, step)
	}
	return step * math.Ceil(v/step), step
}

type svg struct{ b strings.Builder }

func (s *svg) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func esc(v string) string { return template.HTMLEscapeString(v) }

// frame opens the SVG, draws the y grid with labels and returns the plot's y scale.
func (s *svg) frame(id, title string, top, step float64, format func(float64) string) func(float64) float64 {
	s.f(`<figure class="chart" id="%s"><figcaption>%s</figcaption>`, esc(id), esc(title))
	s.f(`<svg viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" preserveAspectRatio="xMidYMid meet"><title>%s</title>`,
		chartW, chartH, esc(title), esc(title))
	plotH := float64(chartH - padT - padB)
	y := func(v float64) float64 { return float64(padT) + plotH - v/top*plotH }
	for i := 0; float64(i)*step <= top+step/1e6; i++ {
		v := float64(i) * step
		s.f(`<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y(v), y(v))
		s.f(`<text class="axis" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-6, y(v), esc(format(v)))
	}
	return y
}

// xLabels writes up to four labels under the plot, evenly spread from the first to the
// last, so they never overlap.
func (s *svg) xLabels(labels []string, x func(i int) float64) {
	n := len(labels)
	m := min(n, 4)
	prev := -1
	for k := range m {
		i := 0
		if m > 1 {
			i = int(math.Round(float64(k) * float64(n-1) / float64(m-1)))
		}
		if i == prev {
			continue
		}
		prev = i
		anchor := "middle"
		switch {
		case m > 1 && k == 0 && x(i) < padL+30:
			anchor = "start" // at the plot's edges a centred label would be cut
		case m > 1 && k == m-1 && x(i) > chartW-padR-30:
			anchor = "end"
		}
		s.f(`<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(i), chartH-padB+16, anchor, esc(labels[i]))
	}
}

// legend closes the figure with the series names as coloured keys.
func (s *svg) legend(ss []series) template.HTML {
	s.f(`</svg><ul class="legend">`)
	for i, se := range ss {
		s.f(`<li><span class="key c%d"></span>%s</li>`, i%6, esc(se.Name))
	}
	s.f(`</ul></figure>`)
	return template.HTML(s.b.String()) //nolint:gosec // every text above is escaped
}

func seriesMax(ss []series, stacked bool) float64 {
	m := 0.0
	if stacked && len(ss) > 0 {
		for i := range ss[0].Values {
			sum := 0.0
			for _, se := range ss {
				sum += se.Values[i]
			}
			m = math.Max(m, sum)
		}
		return m
	}
	for _, se := range ss {
		for _, v := range se.Values {
			m = math.Max(m, v)
		}
	}
	return m
}

// lineChart draws one line per series over the labels.
func lineChart(id, title string, labels []string, ss []series, whole bool, format func(float64) string) template.HTML {
	var s svg
	top, step := axis(seriesMax(ss, false), whole)
	y := s.frame(id, title, top, step, format)
	plotW := float64(chartW - padL - padR)
	x := func(i int) float64 {
		if len(labels) < 2 {
			return float64(padL) + plotW/2
		}
		return float64(padL) + plotW*float64(i)/float64(len(labels)-1)
	}
	for k, se := range ss {
		var pts []string
		for i, v := range se.Values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		if len(pts) == 1 {
			s.f(`<circle class="c%d" cx="%s" r="4"><title>%s</title></circle>`, k%6, strings.Replace(pts[0], ",", `" cy="`, 1), esc(se.Name))
			continue
		}
		s.f(`<polyline class="line c%d" points="%s"><title>%s</title></polyline>`, k%6, strings.Join(pts, " "), esc(se.Name))
	}
	s.xLabels(labels, x)
	return s.legend(ss)
}

// barChart draws bars per label: side by side (grouped) or stacked.
func barChart(id, title string, labels []string, ss []series, stacked, whole bool, format func(float64) string) template.HTML {
	var s svg
	top, step := axis(seriesMax(ss, stacked), whole)
	y := s.frame(id, title, top, step, format)
	plotW := float64(chartW - padL - padR)
	// A slot per label, at most 120 units wide so a few bars stay bars, centred.
	slot := math.Min(120, plotW/float64(max(1, len(labels))))
	left0 := float64(padL) + (plotW-slot*float64(len(labels)))/2
	x := func(i int) float64 { return left0 + slot*(float64(i)+0.5) }
	groups := len(ss)
	if stacked {
		groups = 1
	}
	barW := math.Max(1, slot*0.8/float64(max(1, groups)))
	for i := range labels {
		base := 0.0
		for k, se := range ss {
			v := se.Values[i]
			left := left0 + slot*float64(i) + slot*0.1
			top, bottom := y(v), y(0)
			if stacked {
				top, bottom = y(base+v), y(base)
				base += v
			} else {
				left += barW * float64(k)
			}
			s.f(`<rect class="bar c%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %s</title></rect>`,
				k%6, left, top, barW, math.Max(0, bottom-top), esc(labels[i]), esc(se.Name), esc(format(v)))
		}
	}
	s.xLabels(labels, x)
	return s.legend(ss)
}

func formatCount(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatMS(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fs", v/1000)
	}
	return fmt.Sprintf("%.0fms", v)
}

// formatMinor shows minor units as major units: two decimals below 100, whole units
// below 1,000, thousands above.
func formatMinor(v float64) string {
	major := v / 100
	switch {
	case major >= 1000:
		return fmt.Sprintf("%.1fk", major/1000)
	case major >= 100:
		return fmt.Sprintf("%.0f", major)
	}
	return fmt.Sprintf("%.2f", major)
}
