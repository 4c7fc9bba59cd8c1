package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/config"
)

var utcClock = regexp.MustCompile(`\d\d:\d\d:\d\d(\.\d+)?Z`)

// Log times are UTC whatever the local zone, in both formats.
func TestLogTimesAreUTC(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+9", 9*3600)
	defer func() { time.Local = local }()

	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log := newLogger(config.Config{LogFormat: format, LogLevel: "info"}, &buf)
		log.Info().Msg("hello")
		line := buf.String()
		if !utcClock.MatchString(line) || strings.Contains(line, "+09:00") {
			t.Errorf("%s: %q, want a UTC time (…Z)", format, line)
		}
	}
}

// Log times carry milliseconds in both formats: start-up events a few ms apart must be
// told apart and ordered when read beside other logs.
func TestLogTimesHaveMilliseconds(t *testing.T) {
	millis := regexp.MustCompile(`\d\d:\d\d:\d\d\.\d\d\dZ`)
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log := newLogger(config.Config{LogFormat: format, LogLevel: "info"}, &buf)
		log.Info().Msg("hello")
		if line := buf.String(); !millis.MatchString(line) {
			t.Errorf("%s: %q, want a time with milliseconds (…:05.123Z)", format, line)
		}
	}
}

// A duration's field names its unit (elapsed_ms), and the value is in that unit: a reader
// of `"grace":10000` could not tell milliseconds from seconds.
func TestLogDurationsNameTheirUnit(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(config.Config{LogFormat: "json", LogLevel: "info"}, &buf)
	log.Info().Dur("grace_ms", 1500*time.Millisecond).Msg("hello")
	if !strings.Contains(buf.String(), `"grace_ms":1500`) {
		t.Errorf("%q, want grace_ms in milliseconds (1500)", buf.String())
	}

	key := regexp.MustCompile(`\bDur\("([a-z_]+)"`)
	for path, src := range productSources(t) {
		for _, m := range key.FindAllStringSubmatch(src, -1) {
			if !strings.HasSuffix(m[1], "_ms") {
				t.Errorf("%s: duration field %q does not name its unit: call it %s_ms", path, m[1], m[1])
			}
		}
	}
}
