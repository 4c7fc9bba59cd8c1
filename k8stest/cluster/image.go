package cluster

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"testing"
)

// File is one entry of an image layer: a regular file (Data, Mode), a directory (Dir, Mode)
// or a symlink (Link), owned by UID:GID.
type File struct {
	Path     string // absolute, in the image
	Mode     int64
	Data     []byte
	Link     string
	Dir      bool
	UID, GID int
}

// ImportImage writes an image of one layer holding files, with entrypoint, in the format
// `docker save` writes, and imports it as ref into the node's containerd for the CRI. Pods
// use it with imagePullPolicy Never (no registry is reachable).
func (n *Node) ImportImage(t testing.TB, ref string, files []File, entrypoint []string) {
	t.Helper()
	layer := layerTar(t, files)
	sum := sha256.Sum256(layer)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": entrypoint,
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"},
	}})
	var archive bytes.Buffer
	w := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", layer}, {"config.json", config}, {"manifest.json", manifest}} {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(n.Dir, "image-"+hex.EncodeToString(sum[:8])+".tar")
	if err := os.WriteFile(file, archive.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Ctr("images", "import", file); err != nil {
		t.Fatalf("cluster: import image %s: %v: %s", ref, err, out)
	}
	_ = os.Remove(file)
}

// layerTar returns a layer with files and every parent directory they need (0755; /tmp
// 1777).
func layerTar(t testing.TB, files []File) []byte {
	t.Helper()
	dirs := map[string]bool{"tmp": true, "run": true}
	for _, f := range files {
		for d := path.Dir(path.Clean(f.Path)); d != "/"; d = path.Dir(d) {
			dirs[d[1:]] = true
		}
	}
	for _, f := range files {
		if f.Dir {
			delete(dirs, path.Clean(f.Path)[1:])
		}
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, d := range names {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := w.WriteHeader(&tar.Header{Name: d + "/", Mode: mode, Typeflag: tar.TypeDir}); err != nil {
			t.Fatal(err)
		}
	}
	// Directories before what they hold.
	sorted := append([]File(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].Dir && (!sorted[j].Dir || sorted[i].Path < sorted[j].Path)
	})
	for _, f := range sorted {
		h := &tar.Header{Name: path.Clean(f.Path)[1:], Mode: f.Mode, Uid: f.UID, Gid: f.GID}
		if f.Dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else if f.Link != "" {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pauseSource is the sandbox's one process: it sleeps, reaps what the pod's other processes
// leave to it, and exits on SIGTERM or SIGINT.
const pauseSource = `#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
	signal(SIGTERM, stop);
	signal(SIGINT, stop);
	signal(SIGCHLD, reap);
	for (;;) pause();
}
`

func (n *Node) pauseLayer(t testing.TB) []File {
	t.Helper()
	src := filepath.Join(n.Dir, "pause.c")
	bin := filepath.Join(n.Dir, "pause")
	if err := os.WriteFile(src, []byte(pauseSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cluster: build the pause program (gcc -static, needs libc6-dev): %v: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return []File{{Path: "/pause", Mode: 0o755, Data: data}}
}
