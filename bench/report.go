package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// kind says how a row's figures are printed.
type kind int

const (
	kindDuration kind = iota // nanoseconds
	kindBytes
	kindCount
)

// row is one line of the table: a figure for svinit and its peers.
type row struct {
	figure string
	kind   kind
	cells  map[string]summary // by column name
	notes  map[string]string  // by column name, printed after the figure ("static")
	budget budget
	// ref is the column the chart compares svinit with: tini, or the bash loop for the lock.
	ref string
}

func newRow(figure string, k kind, b budget, ref string) *row {
	return &row{figure: figure, kind: k, cells: map[string]summary{}, notes: map[string]string{}, budget: b, ref: ref}
}

// ratio is svinit's median over column's; NaN when either is missing or not positive
// (an overhead lost in the noise has no meaningful ratio).
func (r *row) ratio(column string) float64 {
	s, p := r.cells[nameSvinit], r.cells[column]
	if !s.ok() || !p.ok() || p.med <= 0 || s.med < 0 {
		return math.NaN()
	}
	return s.med / p.med
}

// budgetKind is the shape of a target from the issue.
type budgetKind int

const (
	noBudget    budgetKind = iota
	atMostTimes            // svinit's median at most factor times the peer's
	atMost                 // svinit's median below limit
	zeroAlways             // svinit's worst run is 0
	asFastAs               // svinit's median within the peer's own run-to-run spread
)

type budget struct {
	kind   budgetKind
	peer   string
	factor float64
	limit  float64 // in the row's unit
}

func (b budget) describe(k kind) string {
	switch b.kind {
	case atMostTimes:
		return fmt.Sprintf("≤ %g× %s", b.factor, b.peer)
	case atMost:
		return "< " + format(k, b.limit)
	case zeroAlways:
		return "0"
	case asFastAs:
		return "≤ " + b.peer + " (its worst run)"
	}
	return ""
}

// verdict returns PASS or MISS, or "" for a row without a budget or without figures.
func (r *row) verdict() string {
	pass, ok := r.budget.check(r)
	switch {
	case !ok:
		return ""
	case pass:
		return "PASS"
	}
	return "MISS"
}

func (b budget) check(r *row) (pass, ok bool) {
	s := r.cells[nameSvinit]
	p, hasPeer := r.cells[b.peer]
	if !s.ok() {
		return false, false
	}
	switch b.kind {
	case atMostTimes:
		return hasPeer && s.med <= b.factor*p.med, hasPeer
	case atMost:
		return s.med < b.limit, true
	case zeroAlways:
		return s.hi == 0, true
	case asFastAs:
		return hasPeer && s.med <= p.hi, hasPeer
	}
	return false, false
}

// refRatio expresses the budget as a ratio to the row's reference column, for the chart;
// false when it has no such form (a count that must be zero).
func (b budget) refRatio(r *row) (float64, bool) {
	ref := r.cells[r.ref]
	if !ref.ok() || ref.med <= 0 {
		return 0, false
	}
	p := r.cells[b.peer]
	switch b.kind {
	case atMostTimes:
		if p.ok() {
			return b.factor * p.med / ref.med, true
		}
	case atMost:
		return b.limit / ref.med, true
	case asFastAs:
		if p.ok() {
			return p.hi / ref.med, true
		}
	}
	return 0, false
}

// format prints v in the unit of k, with three significant digits.
func format(k kind, v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	switch k {
	case kindBytes:
		switch a := math.Abs(v); {
		case a >= 1<<20:
			return sig3(v/(1<<20)) + " MiB"
		case a >= 1<<10:
			return sig3(v/(1<<10)) + " KiB"
		}
		return fmt.Sprintf("%.0f B", v)
	case kindCount:
		return fmt.Sprintf("%.0f", v)
	}
	switch a := math.Abs(v); {
	case a >= float64(time.Second):
		return sig3(v/1e9) + " s"
	case a >= float64(time.Millisecond):
		return sig3(v/1e6) + " ms"
	case a >= float64(time.Microsecond):
		return sig3(v/1e3) + " µs"
	}
	return fmt.Sprintf("%.0f ns", v)
}

func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// cellText is "median [lo–hi]", the spread left out when there is none (a file size).
func (r *row) cellText(column string) string {
	s, ok := r.cells[column]
	if !ok || !s.ok() {
		if n := r.notes[column]; n != "" {
			return "— (" + n + ")"
		}
		return "—"
	}
	text := format(r.kind, s.med)
	if s.lo != s.hi {
		text += " [" + format(r.kind, s.lo) + "–" + format(r.kind, s.hi) + "]"
	}
	if n := r.notes[column]; n != "" {
		text += " (" + n + ")"
	}
	return text
}

func ratioText(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	if v < 0.01 {
		return fmt.Sprintf("%.2g×", v)
	}
	return sig3(v) + "×"
}

// presentColumns are the columns after svinit's that some row has a figure in: a run
// without -baseline, or without the lock figure, prints no empty column.
func presentColumns(rows []*row) []string {
	var cols []string
	for _, c := range columns {
		if slices.ContainsFunc(rows, func(r *row) bool { _, ok := r.cells[c]; return ok }) {
			cols = append(cols, c)
		}
	}
	return cols
}

// tableHeader: the figures, then svinit's ratio to each of cols.
func tableHeader(cols []string) []string {
	h := []string{"figure", "budget", nameSvinit}
	h = append(h, cols...)
	for _, p := range cols {
		h = append(h, "÷ "+p)
	}
	return append(h, "verdict")
}

func (r *row) tableCells(cols []string) []string {
	c := []string{r.figure, r.budget.describe(r.kind), r.cellText(nameSvinit)}
	for _, p := range cols {
		c = append(c, r.cellText(p))
	}
	for _, p := range cols {
		c = append(c, ratioText(r.ratio(p)))
	}
	return append(c, r.verdict())
}

// writeText prints the table for a terminal.
func writeText(w io.Writer, rows []*row) error {
	cols := presentColumns(rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader(cols), "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.tableCells(cols), "\t"))
	}
	return tw.Flush()
}

// writeMarkdown prints the table as GitHub markdown.
func writeMarkdown(w io.Writer, rows []*row) {
	cols := presentColumns(rows)
	h := tableHeader(cols)
	fmt.Fprintln(w, "| "+strings.Join(h, " | ")+" |")
	sep := make([]string, len(h))
	for i := range sep {
		sep[i] = "---"
	}
	fmt.Fprintln(w, "|"+strings.Join(sep, "|")+"|")
	for _, r := range rows {
		fmt.Fprintln(w, "| "+strings.Join(r.tableCells(cols), " | ")+" |")
	}
}
