package dashboard

import (
	"strings"
	"testing"
)

func TestAxisPicksRoundSteps(t *testing.T) {
	for _, tc := range []struct {
		max       float64
		whole     bool
		top, step float64
	}{
		{0, true, 1, 1}, {1, true, 1, 1}, {3, true, 3, 1}, {7, true, 8, 2}, {11, true, 15, 5},
		{0.4, false, 0.4, 0.1}, {4.2, false, 6, 2}, {76900, false, 80000, 20000},
	} {
		top, step := axis(tc.max, tc.whole)
		if top != tc.top || step != tc.step {
			t.Errorf("axis(%v, %v) = %v, %v; want %v, %v", tc.max, tc.whole, top, step, tc.top, tc.step)
		}
	}
}

func TestChartsEscapeTextAndScale(t *testing.T) {
	ss := []series{{Name: `<script>alert(1)</script>`, Values: []float64{1, 3}}, {Name: "b&c", Values: []float64{2, 0}}}
	for _, html := range []string{
		string(lineChart("l", `title "<x>"`, []string{"a", "<b>"}, ss, true, formatCount)),
		string(barChart("b", `title "<x>"`, []string{"a", "<b>"}, ss, true, true, formatCount)),
	} {
		if strings.Contains(html, "<script>") || strings.Contains(html, "<b>") || !strings.Contains(html, "&lt;script&gt;") {
			t.Errorf("unescaped text in %s", html)
		}
		if !strings.Contains(html, `viewBox="0 0 480 220"`) || !strings.Contains(html, `width="100%"`) {
			t.Errorf("chart does not scale to its container: %s", html)
		}
	}
	bars := string(barChart("b", "t", []string{"x", "y"}, ss, true, true, formatCount))
	if n := strings.Count(bars, `<rect class="bar`); n != 4 {
		t.Errorf("stacked chart of 2 series over 2 labels has %d bars, want 4", n)
	}
}
