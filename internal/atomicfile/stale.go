package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
)

// tempInfix names svinit's temporary files, so that one left by a killed svinit is
// recognised and removed by the next run.
const tempInfix = ".svinit-tmp-"

// tempPrefix is the name of DST's temporary files up to the random part; the base is
// shortened so that the name stays under NAME_MAX.
func tempPrefix(base string) string {
	if len(base) > 100 {
		base = base[:100]
	}
	return "." + base + tempInfix
}

// removeStaleTemps removes the temporary files of DST that a killed svinit left behind.
// svinit's lock makes sure no other svinit is writing them now.
func removeStaleTemps(dir, base string, log zerolog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // CreateTemp reports the problem
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		// A symlink is a DST replaced while a killed svinit was putting files in place
		// (or one planted under this name); removing it never follows it.
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() && e.Type() != fs.ModeSymlink {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			log.Warn().Err(err).Str("path", path).Msg("stale temporary file not removed")
			continue
		}
		log.Debug().Str("path", path).Msg("stale temporary file removed")
	}
}
