package docker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `docker exec C svinit stop --wait` returns 0 once svinit is done, as the README promises
// for a preStop hook: neither svinit's clean-up of the processes left (the child leaves a
// daemon here) nor the end of the PID namespace with PID 1 takes the waiter with it.
func TestStopWaitByDockerExec(t *testing.T) {
	c := newContainer(t)
	c.start(helper("parent"), "--", helperPath)
	c.waitLog("daemonized")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := docker(ctx, "exec", c.name, svinitPath, "stop", "--wait")
	if err != nil || !strings.Contains(out, "stopped") {
		t.Errorf("docker exec svinit stop --wait: %v, want exit 0 and \"stopped\":\n%s", err, out)
	}
	if code := c.wait(); code != 143 {
		t.Errorf("exit code %d, want the child's 143 (SIGTERM)", code)
	}
	if logs := c.logs(); !strings.Contains(logs, `"svinit exiting"`) {
		t.Errorf("svinit did not finish its stop:\n%s", logs)
	}
}

// With the defaults, a plain `docker stop` (SIGKILL after 10 s) leaves svinit the time to
// SIGKILL a child that ignores SIGTERM and then give the license seat back, on a slow
// license server: svinit exits on its own, the deactivation done, before Docker's SIGKILL.
func TestDockerStopDefaultsLeaveTimeToDeactivate(t *testing.T) {
	dir := shared(t, 0)
	vendor := filepath.Join(dir, "license")
	// A slow license server: the deactivation takes 2 s, within the time svinit keeps for it.
	writeFile(t, vendor, "#!/bin/sh\n[ \"$SVINIT_LICENSE_ACTION\" = deactivate ] && sleep 2\necho \"$SVINIT_LICENSE_ACTION\" >> /data/license.log\n")
	if err := os.Chmod(vendor, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t)
	c.start(append(helper("ignore-term"), "-v", dir+":/data", "-e", "SVINIT_LICENSE_KEY=key-of-the-test"),
		"--license-provider", "exec", "--license-activate-cmd", "/data/license", "--license-deactivate-cmd", "/data/license",
		"--instance-id", "docker-stop", "--", helperPath)
	c.waitLog("ready")
	sent := time.Now()
	mustDocker(t, "stop", c.name)
	t.Logf("docker stop (default -t) returned after %s", time.Since(sent).Round(time.Millisecond))
	c.wait()
	logs := c.logs()
	for _, want := range []string{`"child outlived the grace period`, `"license deactivated"`, `"svinit exiting"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("svinit's log lacks %s: Docker's SIGKILL came first:\n%s", want, logs)
		}
	}
	if calls := string(readFile(t, filepath.Join(dir, "license.log"))); calls != "activate\ndeactivate\n" {
		t.Errorf("license commands run: %q, want activate and deactivate", calls)
	}
}
