// Package release tests `make release` (scripts/release) as a whole: the same commit gives
// the same bytes wherever, whenever and by whomever it is built.
package release

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// archs keeps the test short: one 64-bit target of each kind would do, these two are the
// ones most used.
const archs = "amd64 arm64"

// TestReproducible clones HEAD (the committed tree: edits not yet committed are not
// tested) into two directories of different depths and builds the release in each, at
// different times, with different time zones, umasks and locales, and a SOURCE_DATE_EPOCH
// of now in the second, which the script must replace by the commit's time. Every file of
// both dist/s must be the same bytes: binaries, SBOMs, .debs and SHA256SUMS.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release twice")
	}
	for _, tool := range []string{"git", "dpkg-deb", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to build a release: %v (scripts/test installs it)", tool, err)
		}
	}
	root := strings.TrimSpace(proctest.Output(t, ".", nil, "git", "rev-parse", "--show-toplevel"))
	commit := strings.TrimSpace(proctest.Output(t, root, nil, "git", "rev-parse", "HEAD"))
	builds := []struct {
		dir string
		env []string
	}{
		{filepath.Join(t.TempDir(), "a"), []string{"TZ=UTC", "LC_ALL=C", "UMASK=022"}},
		{filepath.Join(t.TempDir(), "elsewhere", "deeper", "b"), []string{"TZ=Asia/Kathmandu", "LC_ALL=C.UTF-8", "UMASK=077",
			"SOURCE_DATE_EPOCH=" + strconv.FormatInt(time.Now().Unix(), 10)}},
	}
	for _, b := range builds {
		proctest.Output(t, root, nil, "git", "clone", "-q", "--no-checkout", root, b.dir)
		proctest.Output(t, b.dir, nil, "git", "checkout", "-q", "--detach", commit)
		start := time.Now()
		env := append(b.env, "RELEASE_ARCHS="+archs)
		out := proctest.Output(t, b.dir, env, "sh", "-c", `umask "$UMASK" && exec scripts/release`)
		t.Logf("built in %s with %s:\n%s", time.Since(start).Round(time.Second), strings.Join(env, " "), out)
	}

	a, b := filepath.Join(builds[0].dir, "dist"), filepath.Join(builds[1].dir, "dist")
	names := list(t, a)
	if other := list(t, b); !slices.Equal(names, other) {
		t.Fatalf("the two builds made different files:\n%v\n%v", names, other)
	}
	version := strings.TrimSpace(proctest.Output(t, root, nil, "git", "describe", "--tags", "--always", commit))
	want := []string{"SHA256SUMS"}
	for _, arch := range strings.Fields(archs) {
		for _, cmd := range []string{"svinit", "svinit-net"} {
			want = append(want, cmd+"-linux-"+arch, cmd+"-linux-"+arch+".cdx.json")
		}
		want = append(want, "svinit_"+debVersion(version)+"_"+arch+".deb")
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("dist/ holds\n%v\nwant\n%v", names, want)
	}
	for _, name := range names {
		x, y := read(t, filepath.Join(a, name)), read(t, filepath.Join(b, name))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs: %d bytes, sha256 %.12x in one build; %d bytes, sha256 %.12x in the other",
				name, len(x), sha256.Sum256(x), len(y), sha256.Sum256(y))
			continue
		}
		t.Logf("same bytes: %-40s %9d bytes, sha256 %.12x", name, len(x), sha256.Sum256(x))
	}

	// What the binaries say of themselves comes from the same build: the commit from the
	// go command's VCS stamp, the version from the ldflags.
	for _, cmd := range []string{"svinit", "svinit-net"} {
		got := strings.TrimSpace(proctest.Output(t, a, nil, "./"+cmd+"-linux-amd64", "--version"))
		if want := cmd + " " + version + " (commit " + commit[:12] + ", go"; !strings.HasPrefix(got, want) {
			t.Errorf("%s --version: %q, want it to start with %q", cmd, got, want)
		}
	}
	deb := filepath.Join(a, "svinit_"+debVersion(version)+"_arm64.deb")
	if got := proctest.Output(t, a, nil, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture"); got !=
		"Package: svinit\nVersion: "+debVersion(version)+"\nArchitecture: arm64\n" {
		t.Errorf("the .deb's control file says:\n%s", got)
	}
	contents := proctest.Output(t, a, nil, "dpkg-deb", "--contents", deb)
	for _, want := range []string{"-rwxr-xr-x root/root", "./usr/bin/svinit\n", "./usr/bin/svinit-net\n"} {
		if !strings.Contains(contents, want) {
			t.Errorf("the .deb holds no %q:\n%s", want, contents)
		}
	}
}

// debVersion is the Debian version scripts/release gives the .deb of version: a tag
// without its v, or 0~COMMIT before any tag.
func debVersion(version string) string {
	v := strings.TrimPrefix(version, "v")
	if first, _, ok := strings.Cut(v, "."); ok && first != "" && strings.Trim(first, "0123456789") == "" {
		return v
	}
	return "0~" + version
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
