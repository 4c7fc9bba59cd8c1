package license

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

func TestJournal(t *testing.T) {
	ctx := context.Background()
	path, j := journalIn(t)
	if _, found := loadRecord(t, j); found {
		t.Fatal("a new journal has a record")
	}
	if err := j.Delete(ctx); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
	rec := Record{Instance: "web-0", Provider: ProviderOPSWAT, State: StateActive, ActivationID: "act-1", Earlier: []string{"act-0"},
		ByInstance: true, Pending: []Seat{{Instance: "web-0-old", ID: "act-x"}, {Instance: "web-0-old"}}, Updated: time.Now().UTC().Truncate(time.Second)}
	if err := j.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, found := loadRecord(t, j)
	if !found || !reflect.DeepEqual(got, rec) {
		t.Errorf("Load = %+v, %v; want %+v", got, found, rec)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode = %v, %v; want 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Save; want the journal alone (no temporary files)", len(entries))
	}
	if err := j.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, found := loadRecord(t, j); found {
		t.Error("record left after Delete")
	}

	if err := os.WriteFile(path, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Load(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a corrupt journal = %v; want an error naming the file", err)
	}

	// A journal an earlier svinit left is still read.
	v1 := `{"version": 1, "instance": "web-0", "provider": "opswat", "state": "active", "activation_id": "act-1"}`
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, found := loadRecord(t, j); !found || got.ActivationID != "act-1" || got.State != StateActive {
		t.Errorf("Load of a version 1 journal = %+v, %v", got, found)
	}
	v2 := `{"version": 2, "instance": "web-0", "provider": "exec", "state": "active", "activation_id": "act-2", "earlier_activation_ids": ["act-1"]}`
	if err := os.WriteFile(path, []byte(v2), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, found := loadRecord(t, j); !found || !slices.Equal(got.ids(), []string{"act-2", "act-1"}) || got.ByInstance || got.Pending != nil {
		t.Errorf("Load of a version 2 journal = %+v, %v", got, found)
	}
}

func TestInstanceID(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "license.json")

	if id, err := InstanceID("explicit-1", "web-0", "uid", journal); err != nil || id != "explicit-1" {
		t.Errorf("explicit = %q, %v", id, err)
	}
	if id, err := InstanceID("", "web-0", "3f2c-uid", journal); err != nil || id != "web-0-3f2c-uid" {
		t.Errorf("downward API = %q, %v", id, err)
	}
	if _, err := InstanceID("", "web-0", "", journal); err == nil || !strings.Contains(err.Error(), EnvPodUID) {
		t.Errorf("pod name without UID = %v; want an error naming %s", err, EnvPodUID)
	}
	if _, err := InstanceID("has space", "", "", journal); err == nil {
		t.Error("an id with a space was accepted")
	}
	if _, err := InstanceID("", "", "", ""); err == nil {
		t.Error("no source at all was accepted")
	}

	first, err := InstanceID("", "", "", journal)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(first) {
		t.Errorf("generated id %q is not a version 4 UUID", first)
	}
	second, err := InstanceID("", "", "", journal)
	if err != nil || second != first {
		t.Errorf("second call = %q, %v; want the persisted %q", second, err, first)
	}
	if data, _ := os.ReadFile(journal + instanceFileSuffix); strings.TrimSpace(string(data)) != first {
		t.Errorf("id file holds %q; want %q", data, first)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte("from-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	both := env(map[string]string{EnvKey: "svinit-key", EnvVendorKey: "vendor-key"})
	for _, tc := range []struct {
		name         string
		lookup       func(string) (string, bool)
		file         string
		key, source  string
		wantErrorFor string
	}{
		{"file wins", both, file, "from-secret", file, ""},
		{"svinit variable first", both, "", "svinit-key", EnvKey, ""},
		{"vendor variable", env(map[string]string{EnvVendorKey: "vendor-key"}), "", "vendor-key", EnvVendorKey, ""},
		{"none", env(nil), "", "", "", ""},
		{"missing file", both, filepath.Join(dir, "absent"), "", "", "absent"},
		{"empty file", both, empty, "", "", "empty"},
		{"FIFO refused, not waited on", both, fifo, "", "", "not a regular file"},
		{"short key refused", env(map[string]string{EnvKey: "abc"}), "", "", "", "license key from " + EnvKey + ": 3 characters, want at least 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, source, err := LoadKey(tc.lookup, tc.file)
			if tc.wantErrorFor != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrorFor) {
					t.Errorf("LoadKey = %v; want an error naming %s", err, tc.wantErrorFor)
				}
				return
			}
			if err != nil || key != tc.key || source != tc.source {
				t.Errorf("LoadKey = %q, %q, %v; want %q, %q", key, source, err, tc.key, tc.source)
			}
		})
	}
}

func TestScrubEnv(t *testing.T) {
	got := ScrubEnv([]string{"PATH=/bin", EnvKey + "=a", EnvVendorKey + "=b", "LICENSE_KEY_FILE=/k", "HOME=/"})
	if strings.Join(got, " ") != "PATH=/bin LICENSE_KEY_FILE=/k HOME=/" {
		t.Errorf("ScrubEnv = %q", got)
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor(testKey, "")
	js, _ := json.Marshal(testKey)
	for _, s := range []string{
		"key " + testKey + " here",
		"GET https://x/activation?key=" + url.QueryEscape(testKey) + "&deployment=d",
		"PUT https://x/v1/nodes/" + url.PathEscape(testKey),
		`{"key":` + string(js) + `}`,
		"https://x/a?key=" + strings.ReplaceAll(url.QueryEscape(testKey), "+", "%20"),
	} {
		got := r.Redact(s)
		assertNoKey(t, "redacted", got)
		if !strings.Contains(got, Redacted) {
			t.Errorf("Redact(%q) = %q; want %s in it", s, got, Redacted)
		}
	}
	if got := NewRedactor().Redact("nothing secret"); got != "nothing secret" {
		t.Errorf("empty redactor changed the text: %q", got)
	}

	var buf bytes.Buffer
	log := zerolog.New(r.Writer(&buf))
	log.Error().Str("url", "https://x/?key="+url.QueryEscape(testKey)).Msg("failed with " + testKey)
	assertNoKey(t, "log line", buf.String())
	if !json.Valid(buf.Bytes()) {
		t.Errorf("redacted log line is not JSON: %s", buf.String())
	}
}
