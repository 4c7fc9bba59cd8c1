package render

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// maxIndex keeps an index an int on every platform; no StatefulSet comes near it.
const maxIndex = 1<<31 - 1

// canonicalIndex is a whole number as the pod-index label writes it. Leading zeros, signs and
// spaces are refused rather than normalised, because "{id}" must render exactly as the sed did,
// and the sed would have copied them.
var canonicalIndex = regexp.MustCompile(`^(0|[1-9][0-9]{0,9})$`)

// ordinalSuffix is the "-N" a StatefulSet appends to its name to name a pod.
var ordinalSuffix = regexp.MustCompile(`-(0|[1-9][0-9]{0,9})$`)

// ReplicaIndex resolves the replica index: explicit (from --replica-index or
// SVINIT_REPLICA_INDEX; "" is unset) wins, else the trailing ordinal of the hostname's first
// label ("agdb-2" -> 2). ok is false when neither gives one; a malformed explicit value is an
// error.
func ReplicaIndex(explicit, hostname string) (index int, ok bool, err error) {
	if explicit != "" {
		n, ok := parseIndex(explicit)
		if !ok {
			return 0, false, fmt.Errorf("replica index %q: want a whole number from 0 without leading zeros or spaces, e.g. 2 (set it from the apps.kubernetes.io/pod-index label)", explicit)
		}
		return n, true, nil
	}
	label, _, _ := strings.Cut(hostname, ".")
	m := ordinalSuffix.FindStringSubmatch(label)
	if m == nil {
		return 0, false, nil
	}
	n, ok := parseIndex(m[1])
	return n, ok, nil
}

func parseIndex(s string) (int, bool) {
	if !canonicalIndex.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxIndex {
		return 0, false
	}
	return int(n), true
}
