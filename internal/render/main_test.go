package render

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// helperEnv selects what the test binary does when a test starts it as a child.
const helperEnv = "SVINIT_RENDER_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(writerHelper(os.Getenv("RENDER_SRC"), os.Getenv("RENDER_DST")))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// writerHelper renders src to dst for index 1, 2, 3, ... until it is killed, reporting
// "begin K" before each Write and "wrote K NANOSECONDS" after it.
func writerHelper(src, dst string) int {
	out := bufio.NewWriter(os.Stdout)
	for k := 1; ; k++ {
		plan, err := Prepare([]Spec{{Src: src, Dst: dst}}, Options{Data: Data{Index: k, HasIndex: true}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(out, "begin", k)
		out.Flush()
		start := time.Now()
		if err := plan.Write(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(out, "wrote", k, time.Since(start).Nanoseconds())
		out.Flush()
	}
}

// testLog writes the package's log lines into the test's output.
func testLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t testing.TB, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode goes through the umask
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func modeOf(t testing.TB, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// render prepares and writes specs, failing the test on any error.
func render(t testing.TB, specs []Spec, opts Options) *Plan {
	t.Helper()
	opts.Log = testLog(t)
	plan, err := Prepare(specs, opts)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := plan.Write(); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return plan
}

// prepareErr prepares specs and returns the error, failing the test when there is none.
func prepareErr(t testing.TB, specs []Spec, data Data) error {
	t.Helper()
	plan, err := Prepare(specs, Options{Data: data, Log: testLog(t)})
	if err == nil {
		t.Fatalf("Prepare succeeded with files %v; want an error", plan.Files())
	}
	return err
}

// sed runs the agdb start.sh's substitution on path with /bin/sed, the reference output.
func sed(t testing.TB, path string, index string) []byte {
	t.Helper()
	cmd := exec.Command("/bin/sed", "s/{id}/"+index+"/g", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sed: %v: %s", err, stderr.String())
	}
	return out
}

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// mountTmpfs mounts a fresh tmpfs on a new directory and unmounts it at the end.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
