package license

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/atomicfile"
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

// InstanceID returns the id this instance activates under (OPSWAT's deployment id, Keygen
// Relay's node fingerprint). It must stay the same across container restarts in one pod, so
// that a restarted container finds and reclaims its own activation:
//
//   - explicit (SVINIT_INSTANCE_ID) when set;
//   - else "<pod name>-<pod UID>" from the downward API;
//   - else a random UUID kept in "<journalPath>.instance-id", created on first use.
func InstanceID(explicit, podName, podUID, journalPath string) (string, error) {
	switch {
	case explicit != "":
		return explicit, checkInstanceID(explicit, EnvInstanceID)
	case podName != "" && podUID != "":
		id := podName + "-" + podUID
		return id, checkInstanceID(id, EnvPodName+"/"+EnvPodUID)
	case podName != "" || podUID != "":
		return "", fmt.Errorf("instance id: only one of %s and %s is set; expose both through the downward API", EnvPodName, EnvPodUID)
	case journalPath != "":
		return persistedInstanceID(journalPath + instanceFileSuffix)
	default:
		return "", fmt.Errorf("instance id: set %s, or %s and %s from the downward API, or --license-state so that a generated id can be kept", EnvInstanceID, EnvPodName, EnvPodUID)
	}
}

func checkInstanceID(id, from string) error {
	if strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("instance id from %s %q: contains spaces or control characters", from, id)
	}
	if len(id) > 253 {
		return fmt.Errorf("instance id from %s: %d bytes, want at most 253", from, len(id))
	}
	return nil
}

func persistedInstanceID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if id == "" {
			return "", fmt.Errorf("instance id file %s is empty; delete it to generate a new id", path)
		}
		return id, checkInstanceID(id, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("instance id: %w", err)
	}
	id, err := newUUID()
	if err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600, zerolog.Nop()); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// newUUID returns a random (version 4) UUID, the form OPSWAT deployment ids take.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
