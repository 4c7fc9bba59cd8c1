package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestDescribe(t *testing.T) {
	vcs := func(settings ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{GoVersion: "go1.26.8"}
		for i := 0; i < len(settings); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return info
	}
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"stamped", vcs("vcs", "git", "vcs.revision", rev, "vcs.modified", "false"), "svinit v1.2.3 (commit 0123456789ab, go1.26.8)"},
		{"edited tree", vcs("vcs.revision", rev, "vcs.modified", "true"), "svinit v1.2.3 (commit 0123456789ab+dirty, go1.26.8)"},
		{"-buildvcs=false", vcs("-trimpath", "true"), "svinit v1.2.3 (commit unknown, go1.26.8)"},
		{"no build info", nil, "svinit v1.2.3 (commit unknown, " + runtime.Version() + ")"},
	} {
		if got := describe("svinit", "v1.2.3", tc.info); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A test binary has build info but no VCS stamp.
func TestDescribeThisBinary(t *testing.T) {
	if got, want := Describe("svinit", "dev"), "svinit dev (commit unknown, "+runtime.Version()+")"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
