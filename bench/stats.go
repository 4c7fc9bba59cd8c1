package main

import (
	"math"
	"slices"
)

// summary is one figure for one init: the median over repeated runs and a spread around
// it. Which spread (min–max over runs, or p10–p90 over samples) is said in the table notes.
type summary struct {
	med, lo, hi float64
	n           int // runs or samples behind it
}

func (s summary) ok() bool { return s.n > 0 }

// quantile returns the q-quantile (0..1) of v with linear interpolation; v need not be
// sorted. NaN for an empty v.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return sortedQuantile(s, q)
}

func sortedQuantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := pos - float64(i)
	return s[i] + frac*(s[i+1]-s[i])
}

// spreadOf summarises per-run figures: median, min and max. With the handful of runs a
// figure gets, p10–p90 would be min–max anyway, and min–max hides nothing.
func spreadOf(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return summary{med: sortedQuantile(s, 0.5), lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// percentilesOf summarises many samples: median, p10 and p90.
func percentilesOf(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return summary{med: sortedQuantile(s, 0.5), lo: sortedQuantile(s, 0.1), hi: sortedQuantile(s, 0.9), n: len(s)}
}

// shift subtracts base from every figure of s: an overhead over a baseline's median.
func (s summary) shift(base float64) summary {
	s.med -= base
	s.lo -= base
	s.hi -= base
	return s
}
