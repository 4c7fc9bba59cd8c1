package cluster

import (
	"strings"
	"testing"
)

func TestSplitDocuments(t *testing.T) {
	stream := "# leading comment\n---\napiVersion: v1\nkind: A\n---\n\n# only a comment\n---\napiVersion: v1\nkind: B\n  ---  \nx: y\n---\n"
	docs := SplitDocuments([]byte(stream))
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2: %q", len(docs), docs)
	}
	if got := string(docs[0]); got != "apiVersion: v1\nkind: A\n" {
		t.Errorf("first document %q", got)
	}
	// Only a line that is exactly --- separates documents.
	if !strings.Contains(string(docs[1]), "  ---  \nx: y") {
		t.Errorf("second document %q", docs[1])
	}
}

func TestReadTypeMeta(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      TypeMeta
	}{
		{"yaml", "# c\napiVersion: apps/v1 # trailing\nkind: StatefulSet\nmetadata:\n  labels:\n    name: not-this\n  name: agdb\nspec:\n  name: nor-this\n",
			TypeMeta{"apps/v1", "StatefulSet", "agdb"}},
		{"quoted", "apiVersion: \"v1\"\nkind: 'Secret'\nmetadata:\n    name: \"a # b\"\n",
			TypeMeta{"v1", "Secret", "a # b"}},
		{"json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`,
			TypeMeta{"v1", "ConfigMap", "c"}},
		{"no name", "apiVersion: v1\nkind: Namespace\n", TypeMeta{"v1", "Namespace", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTypeMeta([]byte(tc.doc))
			if err != nil || got != tc.want {
				t.Errorf("ReadTypeMeta = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := ReadTypeMeta([]byte("metadata:\n  name: x\n")); err == nil {
		t.Error("a document without apiVersion and kind was read")
	}
}

func TestCollectionPath(t *testing.T) {
	for _, tc := range []struct{ apiVersion, kind, want string }{
		{"v1", "ConfigMap", "/api/v1/namespaces/ns/configmaps"},
		{"apps/v1", "StatefulSet", "/apis/apps/v1/namespaces/ns/statefulsets"},
		{"rbac.authorization.k8s.io/v1", "RoleBinding", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings"},
		{"policy/v1", "PodDisruptionBudget", "/apis/policy/v1/namespaces/ns/poddisruptionbudgets"},
		{"rbac.authorization.k8s.io/v1", "ClusterRole", "/apis/rbac.authorization.k8s.io/v1/clusterroles"},
	} {
		got, err := CollectionPath(tc.apiVersion, tc.kind, "ns")
		if err != nil || got != tc.want {
			t.Errorf("CollectionPath(%s, %s) = %q, %v; want %q", tc.apiVersion, tc.kind, got, err, tc.want)
		}
	}
	if _, err := CollectionPath("apps/v1beta1", "Deployment", "ns"); err == nil {
		t.Error("an unknown apiVersion/kind got a path")
	}
}
