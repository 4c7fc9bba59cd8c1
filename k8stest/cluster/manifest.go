package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// TypeMeta is what identifies an object in a manifest.
type TypeMeta struct {
	APIVersion, Kind, Name string
}

type resource struct {
	plural     string
	namespaced bool
}

// resources maps apiVersion/kind to the REST resource: the kinds the examples and the tests
// use. A kind missing here is an error, not a guess at its plural.
var resources = map[string]resource{
	"v1/ConfigMap":                                    {"configmaps", true},
	"v1/Secret":                                       {"secrets", true},
	"v1/Service":                                      {"services", true},
	"v1/ServiceAccount":                               {"serviceaccounts", true},
	"v1/PersistentVolumeClaim":                        {"persistentvolumeclaims", true},
	"v1/PersistentVolume":                             {"persistentvolumes", false},
	"v1/Pod":                                          {"pods", true},
	"v1/Namespace":                                    {"namespaces", false},
	"apps/v1/StatefulSet":                             {"statefulsets", true},
	"apps/v1/Deployment":                              {"deployments", true},
	"policy/v1/PodDisruptionBudget":                   {"poddisruptionbudgets", true},
	"coordination.k8s.io/v1/Lease":                    {"leases", true},
	"rbac.authorization.k8s.io/v1/Role":               {"roles", true},
	"rbac.authorization.k8s.io/v1/RoleBinding":        {"rolebindings", true},
	"rbac.authorization.k8s.io/v1/ClusterRole":        {"clusterroles", false},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": {"clusterrolebindings", false},
}

// CollectionPath returns the REST path of the collection objects of apiVersion and kind
// are created in (POST), in namespace ns for a namespaced kind: "/api/v1/namespaces/NS/configmaps",
// "/apis/apps/v1/namespaces/NS/statefulsets", "/apis/rbac.authorization.k8s.io/v1/clusterroles".
func CollectionPath(apiVersion, kind, ns string) (string, error) {
	r, ok := resources[apiVersion+"/"+kind]
	if !ok {
		return "", fmt.Errorf("kind %s %s: not in k8stest/cluster's table of resources", apiVersion, kind)
	}
	path := "/apis/" + apiVersion
	if apiVersion == "v1" {
		path = "/api/v1"
	}
	if r.namespaced {
		if ns == "" {
			return "", fmt.Errorf("%s is namespaced: no namespace given", kind)
		}
		path += "/namespaces/" + ns
	}
	return path + "/" + r.plural, nil
}

// SplitDocuments splits a YAML stream on the lines that are exactly "---" and drops the
// documents that hold only blank lines and comments. A JSON object is one document.
func SplitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if string(bytes.TrimRight(line, "\r\n")) == "---" {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// ReadTypeMeta reads apiVersion, kind and metadata.name from one document: a JSON object,
// or YAML whose top-level keys start in column 0 (the block style manifests are written
// in; flow style at the top level is not read).
func ReadTypeMeta(doc []byte) (TypeMeta, error) {
	if trimmed := bytes.TrimSpace(doc); len(trimmed) > 0 && trimmed[0] == '{' {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return TypeMeta{}, fmt.Errorf("read JSON object: %w", err)
		}
		return checkType(TypeMeta{obj.APIVersion, obj.Kind, obj.Metadata.Name}, doc)
	}

	var tm TypeMeta
	inMetadata := false
	metadataIndent := -1
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimRight(line, "\r")
		content := strings.TrimSpace(line)
		if content == "" || strings.HasPrefix(content, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if indent == 0 {
			inMetadata = false
			key, value, _ := strings.Cut(line, ":")
			switch key {
			case "apiVersion":
				tm.APIVersion = scalar(value)
			case "kind":
				tm.Kind = scalar(value)
			case "metadata":
				inMetadata = true
			}
			continue
		}
		if !inMetadata {
			continue
		}
		if metadataIndent < 0 {
			metadataIndent = indent
		}
		if indent == metadataIndent {
			if key, value, ok := strings.Cut(content, ":"); ok && key == "name" {
				tm.Name = scalar(value)
			}
		}
	}
	return checkType(tm, doc)
}

func checkType(tm TypeMeta, doc []byte) (TypeMeta, error) {
	if tm.APIVersion == "" || tm.Kind == "" {
		first, _, _ := strings.Cut(strings.TrimSpace(string(doc)), "\n")
		return tm, fmt.Errorf("no apiVersion or kind in the document starting %q", first)
	}
	return tm, nil
}

// scalar returns a plain or quoted YAML scalar without its quotes and trailing comment.
func scalar(value string) string {
	value = strings.TrimSpace(value)
	if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') {
		if end := strings.IndexByte(value[1:], value[0]); end >= 0 {
			return value[1 : end+1]
		}
	}
	if i := strings.Index(value, " #"); i >= 0 {
		value = value[:i]
	}
	return strings.TrimSpace(value)
}
