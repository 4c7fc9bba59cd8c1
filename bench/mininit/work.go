//go:build work

package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
)

// With -tags work, the minimal Go init also does what every start of svinit does with
// svinit's dependencies, and nothing of svinit's own: options parsed by flag, JSON log
// lines by zerolog, a JSON state file written, errors gathered by go-multierror. Its
// figures say how much of svinit's size and memory these alone cost (bench/README.md).
func init() {
	work = func(args []string, child int) {
		fs := flag.NewFlagSet("mininit", flag.ContinueOnError)
		grace := fs.Duration("grace", 5*time.Second, "")
		level := fs.String("log-level", "info", "")
		var errs *multierror.Error
		if err := fs.Parse(nil); err != nil {
			errs = multierror.Append(errs, err)
		}
		lvl, err := zerolog.ParseLevel(*level)
		if err != nil {
			errs = multierror.Append(errs, err)
		}
		log := zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
		log.Debug().Str("version", "work").Int("pid", os.Getpid()).Err(errs.ErrorOrNil()).Msg("svinit starting")
		log.Info().Int("pid", child).Strs("argv", args).Dur("grace_ms", *grace).Msg("child started")
		state, _ := json.Marshal(map[string]any{"phase": "running", "pid": os.Getpid(),
			"child": map[string]any{"pid": child, "argv": args, "started": time.Now().UTC()}})
		dir, _ := os.MkdirTemp("", "mininit-work")
		os.WriteFile(filepath.Join(dir, "state.json"), state, 0o644)
		os.RemoveAll(dir)
	}
}
