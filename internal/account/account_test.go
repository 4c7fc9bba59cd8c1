package account

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const passwd = `root:x:0:0:root:/root:/bin/sh
# a comment
sv:x:1234:1234:SV Server:/home/sv:/bin/sh
agdb:x:1000:1000::/agdb:/sbin/nologin
short:x:1
`

const group = `root:x:0:
sv:x:1234:
agdb:x:1000:
audit:x:1500:sv,agdb
backup:x:1600:sv
`

func files(t *testing.T) Files {
	dir := t.TempDir()
	f := Files{Passwd: filepath.Join(dir, "passwd"), Group: filepath.Join(dir, "group")}
	if err := os.WriteFile(f.Passwd, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Group, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLookup(t *testing.T) {
	f := files(t)
	for _, tc := range []struct {
		spec string
		want Account
	}{
		{"sv", Account{Name: "sv", UID: 1234, GID: 1234, Groups: []uint32{1234, 1500, 1600}, Home: "/home/sv"}},
		{"1234", Account{Name: "sv", UID: 1234, GID: 1234, Groups: []uint32{1234, 1500, 1600}, Home: "/home/sv"}},
		{"sv:audit", Account{Name: "sv", UID: 1234, GID: 1500, Groups: []uint32{1500}, Home: "/home/sv"}},
		{"agdb:1000", Account{Name: "agdb", UID: 1000, GID: 1000, Groups: []uint32{1000}, Home: "/agdb"}},
		{"agdb", Account{Name: "agdb", UID: 1000, GID: 1000, Groups: []uint32{1000, 1500}, Home: "/agdb"}},
		{"4321:4321", Account{UID: 4321, GID: 4321, Groups: []uint32{4321}, Home: "/"}},
		{"4321:backup", Account{UID: 4321, GID: 1600, Groups: []uint32{1600}, Home: "/"}},
	} {
		got, err := f.Lookup(tc.spec)
		if err != nil {
			t.Errorf("Lookup(%q): %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	f := files(t)
	for spec, want := range map[string]string{
		"nobody":        `user "nobody": no such user in ` + f.Passwd,
		"sv:wheel":      `group "wheel": no such group in ` + f.Group,
		"4321":          "user 4321: no entry in " + f.Passwd + ", so its group is unknown; give one, e.g. --user 4321:4321",
		"":              "want USER or USER:GROUP",
		"sv:":           "want USER or USER:GROUP",
		"99999999999:1": `user "99999999999": no such user`,
	} {
		_, err := f.Lookup(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
}

func TestLookupWithoutFiles(t *testing.T) {
	// A FROM scratch image has neither file: numbers still work.
	f := Files{Passwd: "/nonexistent/passwd", Group: "/nonexistent/group"}
	got, err := f.Lookup("1234:1234")
	if err != nil || got.UID != 1234 || got.GID != 1234 || got.Home != "/" {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
}
