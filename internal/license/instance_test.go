package license

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInstanceIDFileBesideJournalIsNeverFollowed(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow")
	if err := os.WriteFile(secret, []byte("root-secret-line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, "journal")
	if err := os.Symlink(secret, journal+instanceFileSuffix); err != nil {
		t.Fatal(err)
	}
	id, err := InstanceID("", "", "", journal)
	if err == nil || !strings.Contains(err.Error(), "symlink") || strings.Contains(err.Error(), "root-secret-line") {
		t.Errorf("a planted symlink gave id %q, error %v; want a refusal that names the symlink", id, err)
	}
	if err := CheckInstanceSource("", "", "", journal); err == nil {
		t.Error("CheckInstanceSource accepted the planted symlink")
	}

	fifoJournal := filepath.Join(dir, "fifo-journal")
	if err := unix.Mkfifo(fifoJournal+instanceFileSuffix, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InstanceID("", "", "", fifoJournal); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a FIFO id file: %v, want refused as not a regular file", err)
	}
}

func TestInstanceIDsHaveADocumentedForm(t *testing.T) {
	for id, ok := range map[string]bool{
		"pod-a-uid-1": true, "3f2c9a1e-0b7d-4c1a-9e5f-2d8b6a4c0e11": true, "web-0.ns_1": true,
		strings.Repeat("a", MaxInstanceIDLength): true, strings.Repeat("a", MaxInstanceIDLength+1): false,
		"": false, "a b": false, "ns/pod": false, "..": false, ".hidden": false, "-x": false, "tab\there": false, "ünï": false, "a%2Fb": false,
	} {
		if err := CheckInstanceID(id); (err == nil) != ok {
			t.Errorf("CheckInstanceID(%.20q) = %v, want ok %v", id, err, ok)
		}
	}
	if err := CheckInstanceID("ns/pod"); err == nil || !strings.Contains(err.Error(), `"ns-pod"`) {
		t.Errorf("ns/pod: %v, want a suggestion of ns-pod", err)
	}
}
