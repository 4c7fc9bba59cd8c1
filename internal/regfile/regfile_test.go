package regfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenRefusesAllButARegularFile(t *testing.T) {
	dir := t.TempDir()
	file, link, fifo := filepath.Join(dir, "file"), filepath.Join(dir, "link"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(file, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		path   string
		follow bool
		want   error  // nil: opened, and its content read
		msg    string // in the error, when want is ErrNotRegular
	}{
		{"regular file", file, false, nil, ""},
		{"symlink to a regular file, followed", link, true, nil, ""},
		{"symlink, not followed", link, false, ErrNotRegular, "not a regular file (a symlink, which svinit does not follow)"},
		{"FIFO, refused and not waited on", fifo, true, ErrNotRegular, "not a regular file (a named pipe)"},
		{"directory", dir, false, ErrNotRegular, "not a regular file (a directory)"},
		{"device", "/dev/null", true, ErrNotRegular, "not a regular file (a device)"},
		{"missing", filepath.Join(dir, "missing"), true, fs.ErrNotExist, ""},
	} {
		f, err := Open(tc.path, tc.follow)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: Open = %v, want it opened", tc.name, err)
				continue
			}
			if b, err := io.ReadAll(f); err != nil || string(b) != "content" {
				t.Errorf("%s: read %q, %v; want the file's content", tc.name, b, err)
			}
			f.Close()
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Open = %v, want %v (%q)", tc.name, err, tc.want, tc.msg)
		}
		if f != nil {
			t.Errorf("%s: Open returned a file with its error", tc.name)
		}
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o644, "regular file"},
		{fs.ModeDir | 0o755, "directory"},
		{fs.ModeSymlink | 0o777, "symlink"},
		{fs.ModeNamedPipe | 0o644, "named pipe"},
		{fs.ModeSocket | 0o755, "socket"},
		{fs.ModeDevice | 0o660, "device"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, "device"},
		{fs.ModeIrregular, "special file"},
	} {
		if got := Kind(tc.mode); got != tc.want {
			t.Errorf("Kind(%v) = %q, want %q", tc.mode, got, tc.want)
		}
	}
}
