package check

import (
	"strings"
	"testing"
)

// Every form of garbage is refused at parse time, with a message naming the check and the
// fix, so that svinit exits 2 before it takes anything.
func TestParseRefusesGarbageNamingTheFix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty check"},
		{"db:5432", "want tcp://HOST:PORT"},
		{"ftp://host/x", "want tcp://HOST:PORT"},
		{"tcp://", "tcp://HOST:PORT"},
		{"tcp://db", "tcp://HOST:PORT"},
		{"tcp://db:", "port"},
		{"tcp://:5432", "host"},
		{"tcp://db:http", "port"},
		{"tcp://db:70000", "port"},
		{"tcp://db:5432/path", "tcp://HOST:PORT"},
		{"http://", "host"},
		{"http:///path", "host"},
		{"https://exa mple.com/", "https://"},
		{"http://host:port/", "http://"},
		{"file:", "file:PATH"},
		{"file:relative/path", "absolute"},
		{"exec:", "exec:COMMAND"},
		{"exec:   ", "exec:COMMAND"},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) passed, want an error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %q, want it to say %q", tc.in, err, tc.want)
		}
	}
}

func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		in     string
		kind   Kind
		target string
		argv   []string
	}{
		{"tcp://db:5432", TCP, "db:5432", nil},
		{"tcp://[::1]:80", TCP, "[::1]:80", nil},
		{"http://api:8080/healthz", HTTP, "http://api:8080/healthz", nil},
		{"https://api/healthz?full=1", HTTP, "https://api/healthz?full=1", nil},
		{"file:/run/ready", File, "/run/ready", nil},
		{"exec:pg_isready -h db", Exec, "pg_isready -h db", []string{"pg_isready", "-h", "db"}},
	} {
		c, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if c.Kind != tc.kind || c.Target != tc.target || strings.Join(c.Argv, "|") != strings.Join(tc.argv, "|") {
			t.Errorf("Parse(%q) = %+v", tc.in, c)
		}
		if c.Raw() != tc.in {
			t.Errorf("Parse(%q).Raw() = %q", tc.in, c.Raw())
		}
	}
}

// A password in a URL never reaches a log line, an error or the state file.
func TestStringRedactsThePassword(t *testing.T) {
	c, err := Parse("http://user:s3cret@api:8080/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "user:xxxxx@api:8080/healthz") {
		t.Errorf("String() = %q", s)
	}
	if !strings.Contains(c.Raw(), "s3cret") {
		t.Errorf("Raw() = %q lost the password the probe needs", c.Raw())
	}
	var l List
	if err := l.Set("http://user:s3cret@api:8080/healthz"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(l.String(), "s3cret") {
		t.Errorf("List.String() = %q", l.String())
	}
	if _, err := Parse("http://user:s3cret@exa mple/"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("parse error %v shows the password", err)
	}
}

// A comma starts another check only before a scheme: a URL's query and a command's
// arguments keep theirs.
func TestListSplitsOnCommasBeforeASchemeOnly(t *testing.T) {
	var l List
	if err := l.Set("tcp://db:5432,http://api/health?a=1,2, exec:test -f a,b ,file:/x"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range l {
		got = append(got, c.Raw())
	}
	want := []string{"tcp://db:5432", "http://api/health?a=1,2", "exec:test -f a,b", "file:/x"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("checks %q, want %q", got, want)
	}
	if err := l.Set("tcp://db:5432,nonsense"); err == nil {
		// "nonsense" is no scheme: it is the tcp check's, which then has a bad port.
		t.Errorf("Set accepted a bad list")
	}
}
