// Command svinit is a PID 1 init and entrypoint supervisor for containers.
package main

import (
	"os"

	"github.com/svinit/svinit/internal/cli"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(cli.Run(os.Args, os.Stdout, os.Stderr, version))
}
