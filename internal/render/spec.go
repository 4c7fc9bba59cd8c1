package render

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// Spec is one --template SRC:DST. Both paths are absolute; Src may be a directory, and then
// Dst is one too.
type Spec struct{ Src, Dst string }

func (s Spec) String() string { return s.Src + ":" + s.Dst }

// ParseSpec reads "SRC:DST". Relative paths are made absolute against the working directory
// now, because svinit changes to "/" later.
func ParseSpec(s string) (Spec, error) {
	src, dst, ok := strings.Cut(s, ":")
	if !ok || src == "" || dst == "" || strings.Contains(dst, ":") {
		return Spec{}, fmt.Errorf("template %q: want SRC:DST with one colon, e.g. /agdb/config/agdb_server.yaml:/agdb/agdb_server.yaml", s)
	}
	var err error
	if src, err = filepath.Abs(src); err != nil {
		return Spec{}, fmt.Errorf("template %q: %w", s, err)
	}
	if dst, err = filepath.Abs(dst); err != nil {
		return Spec{}, fmt.Errorf("template %q: %w", s, err)
	}
	return Spec{Src: src, Dst: dst}, nil
}

// Specs is the value of the repeatable --template option. It is a flag.Value and an
// setter of its variable: each Set adds a comma-separated list of SRC:DST.
type Specs []Spec

// Set adds "SRC:DST[,SRC:DST...]"; empty items are ignored.
func (s *Specs) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		spec, err := ParseSpec(item)
		if err != nil {
			return err
		}
		*s = append(*s, spec)
	}
	return nil
}

// Reset forgets the specs set so far, so that a command-line flag replaces its variable.
func (s *Specs) Reset() { *s = nil }

func (s Specs) String() string {
	items := make([]string, len(s))
	for i, spec := range s {
		items[i] = spec.String()
	}
	return strings.Join(items, ",")
}

// Mode is the value of --template-mode: permission bits in octal, such as 0640; zero keeps
// each SRC's mode. It is a flag.Value and a setter of its variable.
type Mode fs.FileMode

// Set reads an octal mode such as 0644 or 644.
func (m *Mode) Set(v string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil || n == 0 || n > 0o777 {
		return fmt.Errorf("template mode %q: want permission bits in octal, 0001 to 0777, e.g. 0644", v)
	}
	*m = Mode(n)
	return nil
}

func (m Mode) String() string {
	if m == 0 {
		return ""
	}
	return fmt.Sprintf("%#o", uint32(m))
}
