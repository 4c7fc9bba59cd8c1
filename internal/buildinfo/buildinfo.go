// Package buildinfo says which build a binary is, for --version: the version stamped in at
// build time, the commit it was built from and the Go that compiled it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Describe returns program's --version line, e.g. "svinit v1.2.3 (commit 0123456789ab,
// go1.26.8)". Only version is what svinit and svinit-net compare: the rest is for people.
func Describe(program, version string) string {
	info, _ := debug.ReadBuildInfo()
	return describe(program, version, info)
}

// describe takes the commit from the go command's VCS stamp, which needs no ldflags; builds
// without one (-buildvcs=false, or a tree without .git, as Dockerfile.example's) say "unknown".
func describe(program, version string, info *debug.BuildInfo) string {
	commit, modified, goVersion := "unknown", false, runtime.Version()
	if info != nil {
		goVersion = info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified && commit != "unknown" {
		commit += "+dirty"
	}
	return fmt.Sprintf("%s %s (commit %s, %s)", program, version, commit, goVersion)
}
