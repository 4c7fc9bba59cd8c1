// Command svinit-net makes svinit's network calls, one per run, so that PID 1 links no HTTP,
// TLS or Kubernetes client: the license servers' requests and the Kubernetes ledger's. svinit
// runs it; it is not meant to be run by hand (see internal/license/helper.go).
package main

import (
	"os"

	"github.com/svinit/svinit/internal/netcmd"
)

// version is stamped at build time with -ldflags "-X main.version=...", as svinit's is: the
// two must match.
var version = "dev"

func main() {
	os.Exit(netcmd.Run(os.Args, os.LookupEnv, os.Stdout, os.Stderr, version))
}
