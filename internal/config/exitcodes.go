package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ExitCodes maps a child's exit code to the one svinit reports (--remap-exit 143:0 for a
// JVM that exits 143 on SIGTERM). It is a flag.Value and a setter of its variable.
type ExitCodes map[int]int

// Map returns the code svinit exits with for the child's code.
func (m ExitCodes) Map(code int) int {
	if to, ok := m[code]; ok {
		return to
	}
	return code
}

// Set adds "FROM:TO[,FROM:TO...]" pairs, each an exit code 0-255.
func (m *ExitCodes) Set(s string) error {
	if *m == nil {
		*m = ExitCodes{}
	}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, ":")
		f, ferr := exitCode(from)
		t, terr := exitCode(to)
		if !ok || ferr != nil || terr != nil {
			return fmt.Errorf("remap %q: want FROM:TO with exit codes 0-255, e.g. 143:0", pair)
		}
		(*m)[f] = t
	}
	return nil
}

// Reset forgets the pairs set so far, so that a command-line flag replaces its variable.
func (m *ExitCodes) Reset() { *m = nil }

func (m ExitCodes) String() string {
	pairs := make([]string, 0, len(m))
	for f, t := range m {
		pairs = append(pairs, fmt.Sprintf("%d:%d", f, t))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func exitCode(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("exit code %q out of range 0-255", s)
	}
	return n, nil
}

// Words is a command given as one string, split on spaces (no shell quoting: a command
// that needs it belongs in a script). Set replaces the command.
type Words []string

func (w *Words) Set(s string) error {
	*w = strings.Fields(s)
	return nil
}

func (w Words) String() string { return strings.Join(w, " ") }

// Names is a list of environment variable names (--file-env). It is a flag.Value and an
// setter of its variable: repeatable, comma list in the variable.
type Names []string

// Set adds "NAME[,NAME...]".
func (n *Names) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !isVariableName(name) {
			return fmt.Errorf("%q is not a variable name: letters, digits and _, not starting with a digit", name)
		}
		if strings.HasPrefix(name, EnvPrefix+"_") {
			return fmt.Errorf("%s: svinit's own options are not read from files (the license key has --license-key-file)", name)
		}
		*n = append(*n, name)
	}
	return nil
}

// Reset forgets the names set so far, so that a command-line flag replaces its variable.
func (n *Names) Reset() { *n = nil }

func (n Names) String() string { return strings.Join(n, ",") }

func isVariableName(s string) bool {
	for i, r := range s {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}
