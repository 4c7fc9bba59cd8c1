// Package environ edits environments ("NAME=value" lists), and gives the child secrets from
// files: for each NAME asked for, NAME_FILE=/path becomes NAME set to the file's content, as
// the official database images' file_env does, so that a mounted Kubernetes or Docker secret
// never has to be a plain environment variable.
package environ

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/svinit/svinit/internal/regfile"
)

// maxSize bounds what one file may hold: an environment variable, not a data file.
const maxSize = 1 << 20

// ExpandFiles returns env with NAME<suffix>=PATH replaced by NAME=<content of PATH> for each
// NAME in names, and the names it read. Every other variable is left alone: a variable that
// merely ends in the suffix (SSL_CERT_FILE) is someone else's. A name whose file variable is
// unset is left as it is. Every problem is reported, and then nothing is expanded: NAME set
// as well, a missing, unreadable or non-regular file.
func ExpandFiles(env, names []string, suffix string) (out, read []string, err error) {
	if len(names) == 0 {
		return env, nil, nil
	}
	var errs []error
	files := map[string]string{} // NAME<suffix> -> NAME
	seen := map[string]bool{}
	for _, name := range names {
		fileVar := name + suffix
		if _, ok := Lookup(env, fileVar); !ok || seen[name] {
			continue
		}
		seen[name] = true
		if _, set := Lookup(env, name); set {
			errs = append(errs, fmt.Errorf("--file-env %s: %s and %s are both set: keep one", name, name, fileVar))
			continue
		}
		files[fileVar] = name
		read = append(read, name)
	}
	out = make([]string, 0, len(env))
	for _, kv := range env {
		fileVar, path, _ := strings.Cut(kv, "=")
		name, ok := files[fileVar]
		if !ok {
			out = append(out, kv)
			continue
		}
		value, err := ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("--file-env %s: %s=%s: %w", name, fileVar, path, err))
			continue
		}
		out = append(out, name+"="+value)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return out, read, nil
}

// ReadFile reads a secret from the file at path, its trailing newlines trimmed. A symlink
// to a file is fine (a Kubernetes Secret volume's files are symlinks into ..data), anything
// but a regular file is refused: the file is opened non-blocking, so that a FIFO cannot hold
// svinit's start-up forever.
func ReadFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	f, err := regfile.Open(path, true)
	if errors.Is(err, regfile.ErrNotRegular) {
		return "", fmt.Errorf("%w: mount the secret as a file", err)
	}
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
