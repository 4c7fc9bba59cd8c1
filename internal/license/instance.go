package license

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/atomicfile"
	"github.com/svinit/svinit/internal/regfile"

	"golang.org/x/sys/unix"
)

// Environment variables the integrator reads for InstanceID. The pod's name and UID come
// from the downward API:
//
//	env:
//	- {name: SVINIT_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
//	- {name: SVINIT_POD_UID,  valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
const (
	EnvInstanceID = "SVINIT_INSTANCE_ID"
	EnvPodName    = "SVINIT_POD_NAME"
	EnvPodUID     = "SVINIT_POD_UID"
)

// instanceFileSuffix names the file, next to the state journal, that keeps a generated id.
const instanceFileSuffix = ".instance-id"

// Instance ids travel as a URL path segment (Keygen Relay's node fingerprint, which its
// router decodes before matching: an escaped '/' is a 404) and as a query value (OPSWAT's
// deployment id), so only characters that need no escaping are accepted: letters, digits,
// '.', '_' and '-', starting with a letter or digit (no "." or ".." segment), at most
// MaxInstanceIDLength of them. A pod name and a UUID are of that form.
const MaxInstanceIDLength = 253

// maxInstanceFile bounds the read of the id file: an id, not a document.
const maxInstanceFile = 1024

// InstanceID returns the id this instance activates under (OPSWAT's deployment id, Keygen
// Relay's node fingerprint). It must stay the same across container restarts in one pod, so
// that a restarted container finds and reclaims its own activation:
//
//   - explicit (--instance-id) when set;
//   - else "<pod name>-<pod UID>" from the downward API;
//   - else a random UUID kept in "<journalPath>.instance-id", created on first use.
func InstanceID(explicit, podName, podUID, journalPath string) (string, error) {
	id, err := configuredInstanceID(explicit, podName, podUID, journalPath)
	if err != nil || id != "" {
		return id, err
	}
	return persistedInstanceID(journalPath + instanceFileSuffix)
}

// CheckInstanceSource reports what InstanceID would refuse, creating nothing: the options,
// and an id file already kept beside the journal.
func CheckInstanceSource(explicit, podName, podUID, journalPath string) error {
	id, err := configuredInstanceID(explicit, podName, podUID, journalPath)
	if err != nil || id != "" {
		return err
	}
	if _, err := readInstanceFile(journalPath + instanceFileSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// configuredInstanceID is the id the options give; "" when it comes from the file beside
// the journal.
func configuredInstanceID(explicit, podName, podUID, journalPath string) (string, error) {
	switch {
	case explicit != "":
		if err := CheckInstanceID(explicit); err != nil {
			return "", fmt.Errorf("--instance-id %q: %w", explicit, err)
		}
		return explicit, nil
	case podName != "" && podUID != "":
		id := podName + "-" + podUID
		if err := CheckInstanceID(id); err != nil {
			return "", fmt.Errorf("instance id %q from --pod-name and --pod-uid: %w; or set --instance-id", id, err)
		}
		return id, nil
	case podName != "" || podUID != "":
		return "", fmt.Errorf("instance id: only one of %s and %s is set; expose both through the downward API, or set --instance-id", EnvPodName, EnvPodUID)
	case journalPath == "":
		return "", fmt.Errorf("instance id: set --instance-id (%s), or %s and %s from the downward API, or --license-state so that a generated id can be kept", EnvInstanceID, EnvPodName, EnvPodUID)
	}
	return "", nil
}

// CheckInstanceID checks id against the documented form of instance ids (see
// MaxInstanceIDLength); the error suggests a form that passes.
func CheckInstanceID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > MaxInstanceIDLength {
		return fmt.Errorf("%d characters, want at most %d", len(id), MaxInstanceIDLength)
	}
	if !isIDStart(rune(id[0])) || strings.IndexFunc(id, func(r rune) bool { return !isIDChar(r) }) >= 0 {
		fix := strings.Map(func(r rune) rune {
			if isIDChar(r) {
				return r
			}
			return '-'
		}, id)
		fix = strings.TrimLeft(fix, "-._")
		msg := "use only letters, digits, '.', '_' and '-', starting with a letter or digit"
		if fix != "" && len(fix) <= MaxInstanceIDLength {
			msg += fmt.Sprintf(", e.g. %q", fix)
		}
		return errors.New(msg)
	}
	return nil
}

func isIDStart(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func isIDChar(r rune) bool { return isIDStart(r) || r == '.' || r == '_' || r == '-' }

func persistedInstanceID(path string) (string, error) {
	id, err := readInstanceFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	id, err = newUUID()
	if err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600, zerolog.Nop()); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// readInstanceFile reads the id kept at path; os.ErrNotExist when there is none. The file
// sits in a shared directory: a symlink planted there would make root read any file and
// send its first line to the license server, so none is followed, and only a regular file
// is read (non-blocking: a FIFO would wait forever).
func readInstanceFile(path string) (string, error) {
	f, err := regfile.Open(path, false)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", err
	case errors.Is(err, regfile.ErrNotRegular):
		return "", fmt.Errorf("instance id file %s: %w: remove it (a new id is generated) or put the id in a regular file", path, err)
	case err != nil:
		return "", fmt.Errorf("instance id: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInstanceFile))
	if err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", fmt.Errorf("instance id file %s is empty; delete it to generate a new id", path)
	}
	if err := CheckInstanceID(id); err != nil {
		return "", fmt.Errorf("instance id file %s: %w; delete it to generate a new id", path, err)
	}
	return id, nil
}

// newUUID returns a random (version 4) UUID, the form OPSWAT deployment ids take.
func newUUID() (string, error) {
	var b [16]byte
	if n, err := unix.Getrandom(b[:], 0); err != nil || n != len(b) { // crypto/rand's syscall, without its DRBG in PID 1
		return "", fmt.Errorf("getrandom: %d bytes, %v", n, err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
