// Command heapbeat is the yardstick of a heartbeat's memory: a minimal Go program doing what
// each license call costs svinit's PID 1, and nothing of svinit's: start a helper with pipes
// for its output and an environment, wait for it, decode its JSON answer. It prints its
// RssAnon after 1, 11 and 101 calls (bench/README.md).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	for i := 1; i <= 101; i++ {
		call()
		if i == 1 || i == 11 || i == 101 {
			fmt.Printf("after %d calls: RssAnon %s\n", i, rssAnon())
		}
	}
}

// call is one helper run, as svinit makes it: /bin/echo stands in for svinit-net.
func call() {
	cmd := exec.Command("/bin/echo", `{"lease":{"id":"pod-a","ttl":"1m0s"}}`)
	cmd.Env = append(os.Environ(), "SVINIT_NET_PROVIDER=keygen-relay", "SVINIT_INSTANCE_ID=pod-a")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "heapbeat:", err)
		os.Exit(1)
	}
	var reply map[string]any
	json.Unmarshal(stdout.Bytes(), &reply)
}

func rssAnon() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
