package render

import (
	"fmt"
	"strconv"
	"strings"
)

// maxIndex keeps an index an int on every platform; no StatefulSet comes near it.
const maxIndex = 1<<31 - 1

// isCanonicalIndex reports whether s is a whole number as the pod-index label writes it:
// 0, or up to ten digits without a leading zero. Leading zeros, signs and spaces are refused
// rather than normalised, because "{id}" must render exactly as the sed did, and the sed
// would have copied them.
func isCanonicalIndex(s string) bool {
	if s == "0" {
		return true
	}
	if len(s) == 0 || len(s) > 10 || s[0] == '0' {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

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
	// A StatefulSet names its pods NAME-N.
	label, _, _ := strings.Cut(hostname, ".")
	dash := strings.LastIndexByte(label, '-')
	if dash < 0 {
		return 0, false, nil
	}
	n, ok := parseIndex(label[dash+1:])
	return n, ok, nil
}

func parseIndex(s string) (int, bool) {
	if !isCanonicalIndex(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxIndex {
		return 0, false
	}
	return int(n), true
}
