package license

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/svinit/svinit/internal/environ"
)

// Environment variables that carry the license key. LICENSE_KEY is the name vendors document
// (the MetaDefender images read it); SVINIT_LICENSE_KEY wins when both are set.
const (
	EnvKey       = "SVINIT_LICENSE_KEY"
	EnvVendorKey = "LICENSE_KEY"
)

// MinKeyLength is the shortest license key accepted: every log line has the key's value
// redacted, and a shorter one would blank ordinary text (a key "a" every letter a).
const MinKeyLength = 8

// LoadKey returns the license key and where it came from: the file at keyFile (a mounted
// Secret; trailing newline trimmed) when keyFile is set, else SVINIT_LICENSE_KEY, else
// LICENSE_KEY, looked up with lookup (os.LookupEnv in production). No key at all returns "",
// "" and no error: only some providers need one, and New says so.
func LoadKey(lookup func(string) (string, bool), keyFile string) (key, source string, err error) {
	if keyFile != "" {
		key, err = environ.ReadFile(keyFile)
		if err != nil {
			return "", "", fmt.Errorf("--license-key-file %s: %w; mount the Secret there or drop --license-key-file", keyFile, err)
		}
		if strings.TrimSpace(key) == "" {
			return "", "", fmt.Errorf("--license-key-file %s is empty; put the key in the Secret", keyFile)
		}
		source = keyFile
	} else {
		for _, name := range []string{EnvKey, EnvVendorKey} {
			if v, ok := lookup(name); ok && v != "" {
				key, source = v, name
				break
			}
		}
	}
	if key != "" && len(key) < MinKeyLength {
		return "", "", fmt.Errorf("license key from %s: %d characters, want at least %d: check that the whole key was given", source, len(key), MinKeyLength)
	}
	return key, source, nil
}

// ScrubEnv returns env without the variables that carry the license key, for the child's
// environment unless the user asks to pass the key on.
func ScrubEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == EnvKey || name == EnvVendorKey {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Redactor replaces secrets by value wherever they appear, in the encodings a secret takes
// on its way into a URL or a JSON document: raw, query-escaped, path-escaped, JSON-escaped.
// Secrets learned at run time (a license key the server hands out) are added with Add. It
// is safe for concurrent use.
type Redactor struct {
	mu      sync.Mutex // serialises Add
	secrets []string
	r       atomic.Pointer[strings.Replacer] // nil: nothing to redact
}

// Redacted is what a secret is replaced with.
const Redacted = "[REDACTED]"

// NewRedactor returns a Redactor for secrets; empty ones are ignored.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add makes r redact secrets too, from now on; empty ones are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, f := range r.secrets {
		seen[f] = true
	}
	added := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		forms := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ReplaceAll(url.QueryEscape(s), "+", "%20"), JSONString(s, true), JSONString(s, false)}
		for _, f := range forms {
			if !seen[f] {
				seen[f] = true
				r.secrets = append(r.secrets, f)
				added = true
			}
		}
	}
	if !added {
		return
	}
	// The replacer tries its old strings in argument order: longest first, so that a secret
	// that contains another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	pairs := make([]string, 0, 2*len(r.secrets))
	for _, f := range r.secrets {
		pairs = append(pairs, f, Redacted)
	}
	r.r.Store(strings.NewReplacer(pairs...))
}

// JSONString is s as it appears inside a JSON string, with or without the HTML escaping of
// encoding/json (zerolog does not escape <, > and &).
func JSONString(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// Redact returns s with every secret replaced.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	if rep := r.r.Load(); rep != nil {
		return rep.Replace(s)
	}
	return s
}

// Writer returns a writer that redacts everything written to w. zerolog writes each event
// in one Write call, so a secret cannot be split across two writes; wrap svinit's log
// output with it as a second line of defence.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	return redactingWriter{r: r, w: w}
}

type redactingWriter struct {
	r *Redactor
	w io.Writer
}

func (rw redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
