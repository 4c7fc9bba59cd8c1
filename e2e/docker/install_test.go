package docker

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// TestInstallSection runs the README's Install section as written, against the dist/ of a
// release tagged in a copy of the source tree: the downloads (from file:// in place of the
// release's address) and `dpkg -i` write into overlays of /usr and of dpkg's database,
// never into this machine's; `make image` builds the release image, and a product image
// made FROM a busybox base with the section's Dockerfile lines must run and stop as svinit
// promises.
func TestInstallSection(t *testing.T) {
	requireDocker(t)
	lines := readInstallSection(t)
	r := makeRelease(t)
	removeOverReleaseImages()
	image := releaseImage + runID
	t.Cleanup(func() { exec.Command("docker", "rmi", image+":"+r.version, image).Run() })

	script := "set -e\n" + r.script(t, lines.shell, r.serve(t, nil))
	written, out, err := r.runInSandbox(t, script, "IMAGE="+image)
	t.Logf("the Install section's lines:\n%s", out)
	if err != nil {
		t.Fatalf("the Install section's lines failed: %v", err)
	}

	t.Run("download", func(t *testing.T) {
		r.requireInstalled(t, filepath.Join(written, "usr", "local", "bin"))
	})
	t.Run("deb", func(t *testing.T) {
		r.requireInstalled(t, filepath.Join(written, "usr", "bin"))
		status := string(readFile(t, filepath.Join(written, "var", "lib", "dpkg", "status")))
		if !strings.Contains(status, "Package: svinit\nStatus: install ok installed\n") {
			t.Error("dpkg's database does not record svinit as installed")
		}
	})
	t.Run("make build", func(t *testing.T) {
		// Reproducible: the source tree builds the release's bytes.
		for _, name := range []string{"svinit", "svinit-net"} {
			built := filepath.Join(r.tree, "bin", name)
			if !bytes.Equal(readFile(t, built), readFile(t, r.binary(name))) {
				t.Errorf("make build's %s differs from the release's %s:\n%s\n%s", name, filepath.Base(r.binary(name)),
					output(t, r.tree, "go", "version", "-m", built), output(t, r.tree, "go", "version", "-m", r.binary(name)))
			}
		}
	})
	t.Run("image", func(t *testing.T) {
		files := imageFiles(t, image+":"+r.version)
		if len(files) != 2 {
			t.Errorf("the release image holds %d files, want only svinit and svinit-net: %v", len(files), keys(files))
		}
		for _, name := range []string{"svinit", "svinit-net"} {
			if !bytes.Equal(files[name], readFile(t, r.binary(name))) {
				t.Errorf("the release image's /%s is not the release's %s", name, filepath.Base(r.binary(name)))
			}
		}
	})
	t.Run("product image", func(t *testing.T) {
		product := r.buildProduct(t, strings.ReplaceAll(lines.dockerfile, "--from=svinit ", "--from="+image+" "))

		c := newContainer(t)
		c.image = product
		script := `echo "ppid=$PPID"; /bin/busybox tr '\0' ' ' </proc/1/cmdline; echo; exit 3`
		if code := c.run(nil, "/bin/sh", "-c", script); code != 3 {
			t.Errorf("docker run exited %d, want the program's 3", code)
		}
		if out := c.logs(); !strings.Contains(out, "ppid=1\n") || !strings.Contains(out, "/usr/local/bin/svinit /bin/sh -c ") {
			t.Errorf("the program is not svinit's child, svinit PID 1:\n%s", out)
		}
		for _, name := range []string{"svinit", "svinit-net"} {
			v := newContainer(t)
			v.image = product
			v.run([]string{"--entrypoint", "/usr/local/bin/" + name}, "--version")
			if out := v.logs(); !strings.HasPrefix(out, name+" "+r.version) {
				t.Errorf("%s --version in the product image: %q, want %s stamped in", name, out, r.version)
			}
		}

		s := newContainer(t)
		s.image = product
		s.start(nil, "/bin/sh", "-c", "echo ready; exec /bin/busybox sleep 600")
		s.waitLog("ready")
		sent := time.Now()
		mustDocker(t, "stop", "-t", "30", s.name)
		t.Logf("docker stop -t 30 returned after %s", time.Since(sent).Round(time.Millisecond))
		// 137 would be svinit's SIGKILL at --grace, or Docker's: SIGTERM did not stop it.
		if code := s.wait(); code != 143 {
			t.Errorf("exit code %d, want the program's 143 (SIGTERM)", code)
		}
		if logs := s.logs(); !strings.Contains(logs, `"signal":"SIGTERM"`) || strings.Contains(logs, "outlived the grace") {
			t.Errorf("svinit did not stop the program with SIGTERM within the grace:\n%s", logs)
		}
	})
	t.Run("tampered files are not installed", func(t *testing.T) {
		var download []string
		for _, block := range lines.shell {
			if strings.Contains(block, "$url") {
				download = append(download, block)
			}
		}
		// Without set -e, as lines pasted into a shell run on after one fails.
		served := r.serve(t, []string{filepath.Base(r.binary("svinit")), r.deb()})
		written, out, _ := r.runInSandbox(t, r.script(t, download, served))
		if !strings.Contains(out, "FAILED") {
			t.Errorf("sha256sum -c did not report the tampered files:\n%s", out)
		}
		for _, dir := range []string{"usr/local/bin", "usr/bin"} {
			if entries, _ := os.ReadDir(filepath.Join(written, dir)); len(entries) > 0 {
				t.Errorf("tampered files installed into /%s: %v\n%s", dir, entries, out)
			}
		}
	})
}

// The release's address in the Install section, replaced by a file:// one.
const releaseURL = "https://github.com/svinit/svinit/releases/download/"

// releaseImage names the release image `make image` builds, with the run's id appended.
const releaseImage = "svinit-e2e/release-"

// installLines are the Install section's fenced blocks: shell lines, and a product's
// Dockerfile lines.
type installLines struct {
	shell      []string
	dockerfile string
}

// fence matches a fenced block and its language.
var fence = regexp.MustCompile("(?ms)^```(\\w+)\n(.*?)^```$")

func readInstallSection(t *testing.T) installLines {
	t.Helper()
	readme := string(readFile(t, filepath.Join(moduleRoot(t), "README.md")))
	_, section, ok := strings.Cut(readme, "\n## Install\n")
	if !ok {
		t.Fatal("README.md has no Install section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var lines installLines
	for _, block := range fence.FindAllStringSubmatch(section, -1) {
		switch block[1] {
		case "sh":
			lines.shell = append(lines.shell, block[2])
		case "dockerfile":
			lines.dockerfile += block[2]
		default:
			t.Fatalf("the Install section has a %s block, which this test does not run", block[1])
		}
	}
	all := strings.Join(lines.shell, "\n")
	for _, want := range []string{"sha256sum -c --ignore-missing SHA256SUMS", "dpkg -i", "make image", "make build"} {
		if !strings.Contains(all, want) {
			t.Errorf("the Install section's shell lines lack %q", want)
		}
	}
	if !strings.Contains(lines.dockerfile, "COPY --from=svinit ") {
		t.Errorf("the Install section's Dockerfile lines lack COPY --from=svinit:\n%s", lines.dockerfile)
	}
	return lines
}

// replaceAll replaces old in s, which must hold it: a README that changed must not send
// the test to the network.
func replaceAll(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the Install section's lines no longer hold %q:\n%s", old, s)
	}
	return strings.ReplaceAll(s, old, new)
}

// release is a copy of the source tree, committed and tagged v<debVersion>, with the
// dist/ of that tag for this machine's architecture.
type release struct {
	tree       string
	version    string // the tag: what --version prints
	debVersion string // the tag without its v: the .deb's version, the README's VERSION
	arch       string // Docker's TARGETARCH and TARGETVARIANT, as the file names have them
	debArch    string
}

func (r release) dist() string              { return filepath.Join(r.tree, "dist") }
func (r release) binary(name string) string { return filepath.Join(r.dist(), name+"-linux-"+r.arch) }
func (r release) deb() string               { return "svinit_" + r.debVersion + "_" + r.debArch + ".deb" }

// makeRelease copies the source tree (uncommitted changes included) into a repository of
// its own, tags it, and makes its dist/ with `make release` for this machine's architecture
// (RELEASE_ARCHS); while there is no such target, with what it is to make, named the same.
func makeRelease(t *testing.T) release {
	t.Helper()
	root := moduleRoot(t)
	r := release{
		tree:       filepath.Join(t.TempDir(), "svinit"),
		debVersion: "0.0." + runID,
		arch:       runtime.GOARCH,
		debArch:    strings.TrimSpace(output(t, root, "dpkg", "--print-architecture")),
	}
	r.version = "v" + r.debVersion
	if r.arch == "arm" {
		r.arch += "v7"
	}
	for _, f := range strings.Split(strings.TrimSpace(output(t, root, "git", "ls-files", "--cached", "--others", "--exclude-standard")), "\n") {
		if strings.HasPrefix(f, "dist/") || strings.HasPrefix(f, "bin/") {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(root, f)); err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		copyTree(t, filepath.Join(root, f), filepath.Join(r.tree, f), false, nil)
	}
	git := func(args ...string) {
		output(t, r.tree, "git", append([]string{"-c", "user.name=svinit-e2e", "-c", "user.email=e2e@svinit.invalid"}, args...)...)
	}
	git("init", "-q")
	// Build outputs, so that they do not make the tree dirty (the go command's vcs.modified).
	writeFile(t, filepath.Join(r.tree, ".git", "info", "exclude"), "/bin/\n/dist/\n")
	git("add", "-A")
	git("commit", "-q", "-m", "release "+r.version)
	git("tag", r.version)

	if exec.Command("make", "-C", r.tree, "-n", "release").Run() == nil {
		start := time.Now()
		cmd := exec.Command("make", "release")
		cmd.Dir = r.tree
		cmd.Env = append(proctest.WithoutEnv(os.Environ(), "VERSION"), "RELEASE_ARCHS="+r.arch)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make release: %v\n%s", err, out)
		}
		t.Logf("make release (RELEASE_ARCHS=%s) in %s:\n%s", r.arch, time.Since(start).Round(100*time.Millisecond), out)
		return r
	}
	t.Log("no make release yet: dist/ made here for " + r.arch + " only")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOARM=7", "GOFLAGS=")
	for _, name := range []string{"svinit", "svinit-net"} {
		build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-ldflags", "-s -w -X main.version="+r.version, "-o", r.binary(name), "./cmd/"+name)
		build.Dir, build.Env = r.tree, env
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	pkg := filepath.Join(t.TempDir(), "deb")
	for _, name := range []string{"svinit", "svinit-net"} {
		copyTree(t, r.binary(name), filepath.Join(pkg, "usr", "bin", name), false, nil)
	}
	control := "Package: svinit\nVersion: " + r.debVersion + "\nArchitecture: " + r.debArch +
		"\nMaintainer: svinit <svinit@example.org>\nDescription: PID 1 init for containers\n"
	if err := os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pkg, "DEBIAN", "control"), control)
	output(t, r.tree, "dpkg-deb", "--root-owner-group", "-b", pkg, filepath.Join(r.dist(), r.deb()))
	names := []string{filepath.Base(r.binary("svinit")), filepath.Base(r.binary("svinit-net")), r.deb()}
	writeFile(t, filepath.Join(r.dist(), "SHA256SUMS"), output(t, r.dist(), "sha256sum", names...))
	return r
}

// script returns the Install section's shell blocks as one script, for this release and
// with its files at dir in place of the release's address. Each block runs where a user
// would: `make` in the source tree, the rest in a directory of downloads.
func (r release) script(t *testing.T, blocks []string, dir string) string {
	t.Helper()
	var script strings.Builder
	for _, block := range blocks {
		cwd := "$DOWNLOADS"
		if strings.HasPrefix(block, "make ") {
			cwd = "$TREE"
		}
		script.WriteString("cd \"" + cwd + "\"\n" + block)
	}
	s := script.String()
	s = replaceAll(t, s, "VERSION=1.0.0 ", "VERSION="+r.debVersion+" ")
	s = replaceAll(t, s, "ARCH=amd64", "ARCH="+r.arch)
	return replaceAll(t, s, releaseURL, "file://"+dir+"/")
}

// serve lays dist/ out as the release's address does, under the tag, with one byte of
// each of the files tamper changed, and returns the directory to put for the address.
func (r release) serve(t *testing.T, tamper []string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(r.dist())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b := readFile(t, filepath.Join(r.dist(), e.Name()))
		for _, name := range tamper {
			if name == e.Name() {
				b[len(b)/2] ^= 1
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, r.version), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, r.version, e.Name()), string(b))
	}
	return dir
}

// sandbox runs a script in a mount namespace of its own, in which /usr, dpkg's database
// and /var/log are overlays on tmpfs: the script installs as written, and what it wrote
// is copied to $WRITTEN. A separate mount under /usr would be hidden, not written through,
// but the script would miss its programs: it is refused.
const sandbox = `set -eu
for d in /usr/local /usr/local/bin /usr/bin /var/lib/dpkg; do
	if mountpoint -q "$d"; then echo "$d is a mount point of its own" >&2; exit 125; fi
done
mount -t tmpfs svinit-e2e "$SANDBOX"
for d in /usr /var/lib/dpkg /var/log; do
	mkdir -p "$SANDBOX/upper$d" "$SANDBOX/work$d"
	mount -t overlay svinit-e2e -o "lowerdir=$d,upperdir=$SANDBOX/upper$d,workdir=$SANDBOX/work$d" "$d"
done
set +e
sh -ux "$1"
code=$?
cp -a "$SANDBOX/upper/." "$WRITTEN"
exit $code`

// runInSandbox runs script with env, $TREE the source tree and $DOWNLOADS an empty
// directory, and returns the directory of what it wrote and its output.
func (r release) runInSandbox(t *testing.T, script string, env ...string) (written, out string, err error) {
	t.Helper()
	dir := t.TempDir()
	written = filepath.Join(dir, "written")
	for _, d := range []string{"sandbox", "written", "downloads"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "install.sh")
	writeFile(t, path, script+"\n")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", sandbox, "sandbox", path)
	// make's VERSION is the tag's (git describe), and the go command stamps the commit, as
	// in a user's clone (GOFLAGS: the default, whatever this machine's). The classic
	// builder, as in every build of this package (see dockerBuild).
	cmd.Env = append(append(proctest.WithoutEnv(os.Environ(), "VERSION"), "GOFLAGS=-buildvcs=auto", "DOCKER_BUILDKIT=0",
		"TREE="+r.tree, "DOWNLOADS="+filepath.Join(dir, "downloads"),
		"SANDBOX="+filepath.Join(dir, "sandbox"), "WRITTEN="+written), env...)
	b, err := cmd.CombinedOutput()
	return written, string(b), err
}

// requireInstalled fails unless dir holds svinit and svinit-net of the release, runnable.
func (r release) requireInstalled(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"svinit", "svinit-net"} {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s is not installed: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s is installed with mode %v, want 0755", name, fi.Mode().Perm())
		}
		if !bytes.Equal(readFile(t, path), readFile(t, r.binary(name))) {
			t.Errorf("the installed %s is not the release's %s", name, filepath.Base(r.binary(name)))
		}
		if out := output(t, dir, path, "--version"); !strings.HasPrefix(out, name+" "+r.version) {
			t.Errorf("%s --version: %q, want %s", name, out, r.version)
		}
	}
}

// buildProduct builds a product image FROM a busybox base with the lines of a product's
// Dockerfile, and returns its tag.
func (r release) buildProduct(t *testing.T, lines string) string {
	t.Helper()
	base, product := "svinit-e2e/product-base:"+runID, "svinit-e2e/product:"+runID
	baseDir := filepath.Join(t.TempDir(), "base")
	mkRootfs(t, baseDir)
	writeFile(t, filepath.Join(baseDir, "Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n")
	build(t, baseDir, base)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+base+"\n"+lines)
	build(t, dir, product)
	return product
}

// imageFiles returns the regular files of image's layers by path, from `docker save`
// (with the tar command: archive/tar would link os/user, a cgo user).
func imageFiles(t *testing.T, image string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	saved, root := filepath.Join(dir, "saved"), filepath.Join(dir, "root")
	for _, d := range []string{saved, root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustDocker(t, "save", "-o", filepath.Join(dir, "image.tar"), image)
	output(t, dir, "tar", "-xf", "image.tar", "-C", saved)
	layers, err := filepath.Glob(filepath.Join(saved, "*", "layer.tar"))
	if err != nil || len(layers) == 0 {
		t.Fatalf("docker save %s: no layer.tar in %s (%v)", image, saved, err)
	}
	for _, layer := range layers {
		output(t, dir, "tar", "-xf", layer, "-C", root)
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files[rel] = readFile(t, path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys(m map[string][]byte) []string {
	var names []string
	for name := range m {
		names = append(names, name)
	}
	return names
}

// removeOverReleaseImages removes the release images of runs that are over: `make image`
// gives them neither the run's label nor its tag, so removeRuns does not see them.
func removeOverReleaseImages() {
	out, _ := exec.Command("docker", "images", "--filter", "reference="+releaseImage+"*", "--format", "{{.Repository}}:{{.Tag}}").Output()
	for _, ref := range strings.Fields(string(out)) {
		repo, _, _ := strings.Cut(ref, ":")
		if isOver(strings.TrimPrefix(repo, releaseImage)) {
			exec.Command("docker", "rmi", ref).Run()
		}
	}
}
