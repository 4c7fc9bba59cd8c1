// Command bench measures svinit side by side with tini, dumb-init and catatonit on this
// machine, and prints one table: each figure's median and spread, and svinit's ratios.
//
// Run it as bench/run [-quick] from the repository root (it installs the peers first), or
// go run ./bench. It needs root: most figures run the init as PID 1 of a new PID
// namespace. The binary is also every helper child (BENCH_HELPER selects which).
package main

import (
	"os"
)

func main() {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
