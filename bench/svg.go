package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// writeSVG draws svinit's ratio to tini (to the bash loop for the lock) per figure as a
// horizontal bar on a log scale, with the budget as a tick on each bar's line: a reader
// sees at a glance which figures are over budget, and by how much.
func writeSVG(w io.Writer, rows []*row, title string) error {
	type bar struct {
		label, value, verdict string
		ratio, budget         float64 // budget 0: none expressible as a ratio
	}
	var bars []bar
	lo, hi := 0.5, 2.0
	for _, r := range rows {
		ratio := r.ratio(r.ref)
		if math.IsNaN(ratio) || ratio <= 0 {
			continue
		}
		b := bar{label: r.figure + " ÷ " + r.ref, value: ratioText(ratio), verdict: r.verdict(), ratio: ratio}
		if br, ok := r.budget.refRatio(r); ok && br > 0 {
			b.budget = br
			lo, hi = math.Min(lo, br), math.Max(hi, br)
		}
		lo, hi = math.Min(lo, ratio), math.Max(hi, ratio)
		bars = append(bars, b)
	}
	// Whole decades, so the grid lines fall on 0.1×, 1×, 10×... The lock handoff beats the
	// bash loop by four orders of magnitude: below 0.001× a bar runs off the left edge
	// (its label keeps the figure), or it would squeeze every other bar.
	const floor = 1e-3
	dlo, dhi := math.Floor(math.Log10(math.Max(lo, floor))), math.Ceil(math.Log10(hi))
	const (
		labelW = 300
		plotW  = 460
		valueW = 110
		rowH   = 26
		top    = 56
		bottom = 40
	)
	width := labelW + plotW + valueW
	height := top + rowH*len(bars) + bottom
	x := func(v float64) float64 {
		return labelW + (math.Max(math.Log10(v), dlo)-dlo)/(dhi-dlo)*plotW
	}

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&s, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&s, `<text x="10" y="42" fill="#555">svinit ÷ peer, log scale; left of 1× = better than the peer; red tick = budget; green = PASS, red = MISS, grey = no budget</text>`+"\n")
	for d := dlo; d <= dhi; d++ {
		gx := x(math.Pow(10, d))
		stroke := "#ddd"
		if d == 0 {
			stroke = "#888"
		}
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", gx, top-6, gx, top+rowH*len(bars), stroke)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g×</text>`+"\n", gx, top+rowH*len(bars)+16, math.Pow(10, d))
	}
	for i, b := range bars {
		y := top + i*rowH
		color := map[string]string{"PASS": "#3a9a4a", "MISS": "#c8423b"}[b.verdict]
		if color == "" {
			color = "#9a9a9a"
		}
		x0, x1 := x(1), x(b.ratio)
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+17, html.EscapeString(b.label))
		fmt.Fprintf(&s, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", math.Min(x0, x1), y+5, math.Max(math.Abs(x1-x0), 1.5), rowH-10, color)
		if b.budget > 0 {
			bx := x(b.budget)
			fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d00" stroke-width="3"/>`+"\n", bx, y+1, bx, y+rowH-1)
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d">%s %s</text>`+"\n", labelW+plotW+8, y+17, b.value, b.verdict)
	}
	s.WriteString("</svg>\n")
	_, err := io.WriteString(w, s.String())
	return err
}
