// Package environ edits environments ("NAME=value" lists), and gives the child secrets from
// files: NAME_FILE=/path becomes NAME set to the file's content, the convention of the
// official database images, so that a mounted Kubernetes or Docker secret never has to be a
// plain environment variable.
package environ

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSize bounds what one file may hold: an environment variable, not a data file.
const maxSize = 1 << 20

// ExpandFiles returns env with every NAME<suffix>=PATH replaced by NAME=<content of PATH>, its
// trailing newlines trimmed. svinit's own variables (prefix SVINIT_) are left alone: their
// _FILE options are svinit's to read. Every problem is reported, and then nothing is
// expanded: a missing or unreadable file, NAME set as well, an empty NAME.
func ExpandFiles(env []string, suffix string) ([]string, error) {
	if suffix == "" {
		return env, nil
	}
	set := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		set[name] = true
	}
	var errs []error
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, path, _ := strings.Cut(kv, "=")
		target, ok := strings.CutSuffix(name, suffix)
		if !ok || strings.HasPrefix(name, "SVINIT_") {
			out = append(out, kv)
			continue
		}
		switch {
		case target == "":
			errs = append(errs, fmt.Errorf("%s: no variable name before %s", name, suffix))
		case set[target]:
			errs = append(errs, fmt.Errorf("%s and %s are both set: keep one", target, name))
		default:
			value, err := read(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%s: %w", name, path, err))
				continue
			}
			out = append(out, target+"="+value)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func read(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxSize {
		return "", fmt.Errorf("larger than %d bytes; mount it as a file and pass its path instead", maxSize)
	}
	value := strings.TrimRight(string(data), "\r\n")
	if strings.IndexByte(value, 0) >= 0 {
		return "", errors.New("contains a NUL byte, which an environment variable cannot hold")
	}
	return value, nil
}

// Lookup returns the value of name in env; the last one wins, as in getenv.
func Lookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Set returns env with name set to value, replacing any earlier value.
func Set(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}
