package render

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestAgdbLikeSed renders the agdb ConfigMap's files as its start.sh did with sed, from the
// explicit index (the pod-index label) and from the hostname ordinal, and compares bytes.
func TestAgdbLikeSed(t *testing.T) {
	for _, name := range []string{"agdb_server.yaml", "start.sh"} {
		src, err := filepath.Abs(filepath.Join("testdata", "agdb", name))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			want := sed(t, src, itoa(i))
			for _, from := range []struct{ explicit, hostname string }{
				{itoa(i), "laptop"},               // --replica-index / SVINIT_REPLICA_INDEX
				{"", "agdb-" + itoa(i)},           // the StatefulSet pod's hostname
				{"", "agdb-" + itoa(i) + ".agdb"}, // setHostnameAsFQDN
			} {
				index, ok, err := ReplicaIndex(from.explicit, from.hostname)
				if err != nil || !ok || index != i {
					t.Fatalf("ReplicaIndex(%q, %q) = %d, %v, %v; want %d", from.explicit, from.hostname, index, ok, err, i)
				}
				dst := filepath.Join(t.TempDir(), "agdb", name)
				render(t, []Spec{{Src: src, Dst: dst}}, Options{Data: Data{Index: index, HasIndex: ok, Hostname: from.hostname}})
				if got := readFile(t, dst); got != string(want) {
					t.Errorf("%s, index %d from %+v:\n got %q\nwant %q", name, i, from, got, want)
				}
				if m, want := modeOf(t, dst), modeOf(t, src); m != want {
					t.Errorf("%s: mode %v, want SRC's %v", dst, m, want)
				}
			}
		}
	}
}

// TestLikeSedRandom compares the {id} replacement with sed on inputs made of the pieces
// that could trip it: partial and nested braces, NUL, invalid UTF-8, a missing final newline.
func TestLikeSedRandom(t *testing.T) {
	pieces := []string{"{id}", "{", "}", "id", "i", "d", "{{id}}", "{i{id}d}", "\n", "x", "\x00", "\xff", "é", "$", "&", "\\", "/"}
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	n := 150
	if testing.Short() {
		n = 30
	}
	for c := range n {
		var in bytes.Buffer
		for range rng.IntN(40) {
			in.WriteString(pieces[rng.IntN(len(pieces))])
		}
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		index := rng.IntN(1000)
		got, err := renderFile(path, in.Bytes(), false, Data{Index: index, HasIndex: true}, defaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if want := sed(t, path, itoa(index)); !bytes.Equal(got, want) {
			t.Fatalf("case %d, index %d, input %q:\n got %q\nwant %q", c, index, in.Bytes(), got, want)
		}
	}
}

func TestReplicaIndex(t *testing.T) {
	for _, tc := range []struct {
		explicit, hostname string
		want               int
		ok                 bool
	}{
		{"0", "", 0, true},
		{"2", "agdb-7", 2, true}, // the explicit value wins
		{"", "agdb-2", 2, true},
		{"", "agdb-0", 0, true},
		{"", "my-db-12", 12, true},
		{"", "agdb-3.agdb.default.svc.cluster.local", 3, true},
		{"2147483647", "", 2147483647, true},
		{"", "agdb", 0, false},
		{"", "agdb2", 0, false},
		{"", "agdb-", 0, false},
		{"", "agdb-01", 0, false}, // not how a StatefulSet names a pod
		{"", "agdb-x", 0, false},
		{"", "", 0, false},
		{"", "a.b-3", 0, false}, // the ordinal is in the first label only
		{"", "agdb-1-2", 2, true},
		{"", "agdb-12345678901", 0, false},
		{"", "agdb--2", 2, true},
	} {
		got, ok, err := ReplicaIndex(tc.explicit, tc.hostname)
		if err != nil || ok != tc.ok || got != tc.want {
			t.Errorf("ReplicaIndex(%q, %q) = %d, %v, %v; want %d, %v", tc.explicit, tc.hostname, got, ok, err, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{"-1", "+1", "01", " 1", "1 ", "one", "1.0", "2147483648", "99999999999"} {
		_, _, err := ReplicaIndex(bad, "agdb-1")
		want := `replica index "` + bad + `": want a whole number from 0 without leading zeros or spaces, e.g. 2 (set it from the apps.kubernetes.io/pod-index label)`
		if err == nil || err.Error() != want {
			t.Errorf("ReplicaIndex(%q) error = %v; want %s", bad, err, want)
		}
	}
}
