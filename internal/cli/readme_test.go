package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's troubleshooting section is keyed by the messages a user sees: each quoted
// message must still be one svinit prints, or the section sends people looking for a line
// that no longer exists.
func TestTroubleshootingQuotesRealMessages(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section, ok := markdownSection(string(readme), "## Troubleshooting")
	if !ok {
		t.Fatal("README.md has no Troubleshooting section")
	}
	var source strings.Builder
	for _, src := range productSources(t) {
		source.WriteString(src)
	}
	quoted := regexp.MustCompile("\\*\\*`([^`]+)`\\*\\*").FindAllStringSubmatch(section, -1)
	if len(quoted) < 20 {
		t.Fatalf("found %d quoted messages in Troubleshooting, want the section's 20 or more", len(quoted))
	}
	for _, q := range quoted {
		if !strings.Contains(source.String(), q[1]) {
			t.Errorf("README Troubleshooting quotes %q, which no svinit source prints", q[1])
		}
	}
}

// productSources returns the text of every Go source file of svinit itself (no tests),
// by path.
func productSources(t *testing.T) map[string]string {
	t.Helper()
	sources := map[string]string{}
	for _, dir := range []string{"../../internal", "../../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			sources[path] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return sources
}

// markdownSection returns the text under heading, up to the next heading of its level.
func markdownSection(doc, heading string) (string, bool) {
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return "", false
	}
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if i := strings.Index(rest, "\n"+level); i >= 0 {
		rest = rest[:i]
	}
	return rest, true
}

// The README's promises name the tests that hold them: each must exist, or the promise is
// held by nothing anyone can run.
func TestPromisesNameRealTests(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section, ok := markdownSection(string(readme), "## Promises, and the tests that hold them")
	if !ok {
		t.Fatal("README.md has no Promises section")
	}
	defined := map[string]bool{}
	testFunc := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`(Test\\w+)`").FindAllStringSubmatch(section, -1)
	if len(named) < 30 {
		t.Fatalf("the Promises section names %d tests, want every promise's", len(named))
	}
	for _, n := range named {
		if !defined[n[1]] {
			t.Errorf("README promises name %s, which no test file defines", n[1])
		}
	}
}
