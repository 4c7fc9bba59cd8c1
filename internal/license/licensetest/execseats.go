package licensetest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// ExecSeats is a license server played by the exec provider's command itself (a test binary
// run as --license-activate-cmd and --license-deactivate-cmd): each activation is a file in
// dir/seats with an id of its own, so a seat can be given back only by that id or by instance.
// It follows the exec contract's exit codes and environment, and refuses an
// SVINIT_ACTIVATION_ID that is set but empty (the contract says unset).
//
// Hooks, files in dir: hold-ACTION (activate, heartbeat or deactivate) makes the command
// write ACTION to dir/held and block once it has done its work, before it answers, until it
// is killed or the file is removed; ttl holds the lease TTL to print (a Go duration).
func ExecSeats(dir string) int {
	action, instance := os.Getenv("SVINIT_LICENSE_ACTION"), os.Getenv("SVINIT_INSTANCE_ID")
	id, idSet := os.LookupEnv("SVINIT_ACTIVATION_ID")
	seats := filepath.Join(dir, "seats")
	if err := os.MkdirAll(seats, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "exec seats:", err)
		return 75
	}
	prefix := url.PathEscape(instance) + "."
	if idSet && id == "" {
		fmt.Fprintln(os.Stderr, "exec seats: SVINIT_ACTIVATION_ID is set but empty; unset means by instance")
		return 78
	}
	code := 0
	var out string
	switch action {
	case "activate":
		f, err := os.CreateTemp(seats, prefix+"*")
		if err != nil {
			fmt.Fprintln(os.Stderr, "exec seats:", err)
			return 75
		}
		f.Close()
		ttl, _ := os.ReadFile(filepath.Join(dir, "ttl"))
		b, _ := json.Marshal(map[string]string{"id": filepath.Base(f.Name()), "ttl": strings.TrimSpace(string(ttl))})
		out = string(b)
	case "heartbeat":
		if _, err := os.Stat(filepath.Join(seats, filepath.Base(id))); err != nil {
			code = 67
		}
	case "deactivate":
		if idSet {
			if os.Remove(filepath.Join(seats, filepath.Base(id))) != nil {
				code = 67
			}
			break
		}
		mine, _ := filepath.Glob(filepath.Join(seats, globEscape(prefix)+"*"))
		for _, m := range mine {
			os.Remove(m)
		}
		proctest.AppendLine(filepath.Join(dir, "by-instance"), instance)
	default:
		fmt.Fprintf(os.Stderr, "exec seats: unknown action %q\n", action)
		return 78
	}
	hold(dir, action)
	if out != "" {
		fmt.Println(out)
	}
	return code
}

// hold blocks while dir/hold-action exists, after saying so in dir/held.
func hold(dir, action string) {
	flag := filepath.Join(dir, "hold-"+action)
	if _, err := os.Stat(flag); err != nil {
		return
	}
	proctest.AppendLine(filepath.Join(dir, "held"), action)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(flag); err != nil {
			return
		}
	}
}

// ExecSeatsLive returns the ids of the activations held in dir.
func ExecSeatsLive(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "seats"))
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// ExecSeatsLapse ends activation id at once, as a server culling a lease would.
func ExecSeatsLapse(dir, id string) error {
	return os.Remove(filepath.Join(dir, "seats", filepath.Base(id)))
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}
