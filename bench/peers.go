package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Names of the columns: svinit, the Go floor (bench/gofloor), its three peers, and the
// bash loop the lock replaces.
const (
	nameSvinit    = "svinit"
	nameGoFloor   = "Go floor"
	nameTini      = "tini"
	nameDumbInit  = "dumb-init"
	nameCatatonit = "catatonit"
	nameBashLoop  = "bash loop"
)

// peerNames are the established inits, found in PATH.
var peerNames = []string{nameTini, nameDumbInit, nameCatatonit}

// columns is the order of the table's columns after svinit's, and of its ratios.
var columns = []string{nameGoFloor, nameTini, nameDumbInit, nameCatatonit, nameBashLoop}

// initProg is one init under test.
type initProg struct {
	name string
	path string
	// dashDash says the init takes "--" before the program; dumb-init does not (it would
	// try to run a program called "--").
	dashDash bool
}

// argv is the command line that runs prog under the init.
func (p initProg) argv(prog ...string) []string {
	out := []string{p.path}
	if p.dashDash {
		out = append(out, "--")
	}
	return append(out, prog...)
}

// findInits resolves every init's binary; missing peers are reported together, with the
// command that installs them. floor is the Go floor's binary, or "" to leave it out.
func findInits(svinit, floor string, paths map[string]string) ([]initProg, error) {
	inits := []initProg{{name: nameSvinit, path: svinit, dashDash: true}}
	if floor != "" {
		inits = append(inits, initProg{name: nameGoFloor, path: floor, dashDash: true})
	}
	var missing []string
	for _, name := range peerNames {
		path := paths[name]
		if path == "" {
			p, err := exec.LookPath(name)
			if err != nil {
				missing = append(missing, name)
				continue
			}
			path = p
		}
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, name)
			continue
		}
		inits = append(inits, initProg{name: name, path: path, dashDash: name != nameDumbInit})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("peer inits not found: %s: run bench/run, which installs them (apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return inits, nil
}

// binaryInfo describes an executable: its size on disk, whether it is statically linked,
// and the shared libraries it needs when it is not (they are not counted in its size).
type binaryInfo struct {
	size   int64
	static bool
	needs  []string
}

func inspectBinary(path string) (binaryInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("binary %s: %w", path, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		return binaryInfo{}, fmt.Errorf("binary %s: not an ELF file: %w", path, err)
	}
	defer f.Close()
	info := binaryInfo{size: fi.Size(), static: true}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			info.static = false
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return binaryInfo{}, fmt.Errorf("binary %s: %w", path, err)
	}
	info.needs = libs
	return info, nil
}

func (b binaryInfo) linkage() string {
	if b.static {
		return "static"
	}
	return "dynamic: " + strings.Join(b.needs, ", ")
}
