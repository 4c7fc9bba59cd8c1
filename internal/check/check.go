// Package check is --wait-for and --ready: the checks' syntax, and the loops that run them
// before the child starts (Wait) and while it runs (Watch). Network checks are run by the
// caller's Net, outside PID 1.
package check

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Kind is what a check looks at.
type Kind string

const (
	TCP  Kind = "tcp"  // tcp://HOST:PORT accepts a connection
	HTTP Kind = "http" // http(s)://URL answers a GET with 2xx
	File Kind = "file" // file:PATH exists
	Exec Kind = "exec" // exec:COMMAND exits 0
)

// Syntax is what a check may be, for error messages and --help.
const Syntax = "tcp://HOST:PORT, http://URL or https://URL (2xx), file:PATH (exists) or exec:COMMAND (exit 0)"

// Check is one parsed check.
type Check struct {
	Kind Kind
	// Target is HOST:PORT, the URL, the path or the command as given.
	Target string
	// Argv is an exec check's command, split on spaces.
	Argv []string

	raw      string
	redacted string // raw, with a URL's password replaced
}

// Raw is the check as given, password included: only for svinit-net, never for a log.
func (c Check) Raw() string { return c.raw }

// String is the check as given, less a URL's password: for logs, errors and the state file.
func (c Check) String() string { return c.redacted }

// Parse parses one check; its error names the check and what it should be.
func Parse(s string) (Check, error) {
	c := Check{raw: s, redacted: s}
	scheme, rest, _ := strings.Cut(s, ":")
	var err error
	switch scheme {
	case "tcp":
		c.Kind, err = TCP, c.parseTCP(rest)
	case "http", "https":
		c.Kind, err = HTTP, c.parseHTTP()
	case "file":
		c.Kind, c.Target = File, rest
		if rest == "" || !strings.HasPrefix(rest, "/") {
			err = errors.New("want file:PATH with an absolute path, e.g. file:/run/secrets/ready")
		}
	case "exec":
		c.Kind, c.Target, c.Argv = Exec, strings.TrimSpace(rest), strings.Fields(rest)
		if len(c.Argv) == 0 {
			err = errors.New("want exec:COMMAND, words split on spaces, e.g. exec:pg_isready -h db")
		}
	default:
		if s == "" {
			return c, fmt.Errorf("empty check: want %s", Syntax)
		}
		err = fmt.Errorf("want %s", Syntax)
	}
	if err != nil {
		return c, fmt.Errorf("check %q: %w", c.redacted, err)
	}
	return c, nil
}

func (c *Check) parseTCP(rest string) error {
	addr, ok := strings.CutPrefix(rest, "//")
	const want = "want tcp://HOST:PORT, e.g. tcp://db:5432"
	if !ok || strings.ContainsAny(addr, "/?#@") {
		return errors.New(want)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(want)
	}
	if host == "" {
		return fmt.Errorf("no host: %s", want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number 1-65535: %s", port, want)
	}
	c.Target = addr
	return nil
}

func (c *Check) parseHTTP() error {
	u, err := url.Parse(c.raw)
	if err != nil {
		// url's error quotes the whole URL, password and all.
		c.redacted = redactUserinfo(c.raw)
		return fmt.Errorf("not a URL: want http://HOST[:PORT]/PATH or https://..., e.g. http://api:8080/healthz")
	}
	c.redacted = u.Redacted()
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("no host: want http://HOST[:PORT]/PATH, e.g. http://api:8080/healthz")
	}
	c.Target = c.raw
	return nil
}

// redactUserinfo hides what may be a password in a URL that does not parse.
func redactUserinfo(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// List is a repeatable check option: a flag.Value and the setter of its variable.
type List []Check

// Set adds one check, or a comma list of them. A comma starts another check only before a
// scheme, so that a URL's query and a command's arguments keep their commas.
func (l *List) Set(s string) error {
	for _, part := range splitChecks(s) {
		if part = strings.TrimSpace(part); part == "" {
			continue // an empty variable: no check
		}
		c, err := Parse(part)
		if err != nil {
			return err
		}
		*l = append(*l, c)
	}
	return nil
}

// Reset forgets the checks set so far, so that a command-line flag replaces its variable.
func (l *List) Reset() { *l = nil }

func (l List) String() string {
	s := make([]string, len(l))
	for i, c := range l {
		s[i] = c.String()
	}
	return strings.Join(s, ",")
}

var schemes = []string{"tcp://", "http://", "https://", "file:", "exec:"}

func splitChecks(s string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ',' {
			continue
		}
		next := strings.TrimLeft(s[i+1:], " ")
		for _, p := range schemes {
			if strings.HasPrefix(next, p) {
				parts = append(parts, s[start:i])
				start = i + 1
				break
			}
		}
	}
	return append(parts, s[start:])
}
