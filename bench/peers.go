package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Names of the columns: svinit, the minimal Go init (bench/mininit), an earlier svinit
// build (-baseline), the three established inits, and the bash loop the lock replaces.
const (
	nameSvinit    = "svinit"
	nameMinInit   = "min Go init"
	nameBaseline  = "svinit before"
	nameTini      = "tini"
	nameDumbInit  = "dumb-init"
	nameCatatonit = "catatonit"
	nameBashLoop  = "bash loop"
)

// peerNames are the established inits, found in PATH.
var peerNames = []string{nameTini, nameDumbInit, nameCatatonit}

// columns is the order of the table's columns after svinit's, and of its ratios.
var columns = []string{nameMinInit, nameBaseline, nameTini, nameDumbInit, nameCatatonit, nameBashLoop}

// licenseOpts configure a license with no network and no lease to renew: the exec
// provider's activate command exits 0 and prints nothing, which is a lease without a TTL.
var licenseOpts = []string{"--instance-id", "bench", "--license-provider", "exec",
	"--license-activate-cmd", "/bin/true", "--license-deactivate-cmd", "/bin/true"}

// initProg is one init under test.
type initProg struct {
	name string
	path string
	// opts go before the program (and before "--").
	opts []string
	// dashDash says the init takes "--" before the program; dumb-init does not (it would
	// try to run a program called "--").
	dashDash bool
}

// argv is the command line that runs prog under the init.
func (p initProg) argv(prog ...string) []string {
	out := append([]string{p.path}, p.opts...)
	if p.dashDash {
		out = append(out, "--")
	}
	return append(out, prog...)
}

// findPeers resolves the established inits' binaries; missing ones are reported together,
// with the command that installs them.
func findPeers(paths map[string]string) ([]initProg, error) {
	var (
		inits   []initProg
		missing []string
	)
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
