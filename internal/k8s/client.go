// Package k8s is svinit's thin client for the few Kubernetes API calls it makes: get,
// create and merge-patch one Secret (the license ledger), get a Pod (the zombie sweeper), and
// get, create and update one Lease (--lock k8s-lease:NAME).
// It authenticates the standard in-cluster way, with the pod's service-account token, and
// speaks the real API: Status objects, 404, 409, and 403 reported with the permission the
// pod's Role lacks.
package k8s

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultSADir is where the kubelet mounts the service account; SVINIT_K8S_SA_DIR points
// elsewhere (tests, runs outside a cluster).
const DefaultSADir = "/var/run/secrets/kubernetes.io/serviceaccount"

// maxResponse bounds what svinit reads of one answer: a Secret is at most 1 MiB.
const maxResponse = 4 << 20

// requestTimeout bounds one call when the caller's context allows more (the heartbeat's has
// no deadline): an API server that accepts the connection and never answers must not hang
// svinit.
const requestTimeout = 30 * time.Second

// Client calls the API server as the pod's service account.
type Client struct {
	base      string // https://host:port
	namespace string
	tokenPath string
	http      *http.Client
}

// InCluster returns a Client configured from the pod's environment: the service-account
// directory (token, ca.crt, namespace) and KUBERNETES_SERVICE_HOST/_PORT.
func InCluster(lookup func(string) (string, bool)) (*Client, error) {
	dir, ok := lookup("SVINIT_K8S_SA_DIR")
	if !ok || dir == "" {
		dir = DefaultSADir
	}
	host, _ := lookup("KUBERNETES_SERVICE_HOST")
	port, _ := lookup("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("kubernetes: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: svinit is not running in a pod (outside a cluster, set them and SVINIT_K8S_SA_DIR)")
	}
	ns, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes: the pod's namespace: %w (is a service-account token mounted? automountServiceAccountToken must not be false)", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes: the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("kubernetes: %s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	c := &Client{
		base:      "https://" + net.JoinHostPort(host, port),
		namespace: strings.TrimSpace(string(ns)),
		tokenPath: filepath.Join(dir, "token"),
		http: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
		}},
	}
	if _, err := c.bearer(); err != nil {
		return nil, err
	}
	return c, nil
}

// Namespace is the pod's namespace, where the Secret and the Pods are.
func (c *Client) Namespace() string { return c.namespace }

// bearer reads the token for each call: the kubelet rotates the file (bound tokens expire
// within the hour) by swapping a symlink, so every read sees one whole token, and svinit
// makes too few calls for the read to matter.
func (c *Client) bearer() (string, error) {
	b, err := os.ReadFile(c.tokenPath)
	if err != nil {
		return "", fmt.Errorf("kubernetes: service-account token: %w", err)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", fmt.Errorf("kubernetes: service-account token %s is empty", c.tokenPath)
	}
	return token, nil
}

// APIError is an answer other than 2xx, with the server's Status object.
type APIError struct {
	Code     int    // HTTP status
	Reason   string // Status.reason: NotFound, AlreadyExists, Conflict, Forbidden...
	Message  string // Status.message
	Verb     string // what svinit was doing, for the error message
	Resource string // e.g. secrets/licenses
	Hint     string // what to grant, for 403
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("kubernetes: %s %s: %d %s: %s", e.Verb, e.Resource, e.Code, e.Reason, e.Message)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Permanent reports whether retrying cannot help: the request or the pod's rights are wrong.
func (e *APIError) Permanent() bool {
	return e.Code == http.StatusForbidden || e.Code == http.StatusUnauthorized ||
		e.Code == http.StatusBadRequest || e.Code == http.StatusUnprocessableEntity
}

// Is lets callers test with errors.Is(err, ErrNotFound) and friends.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrConflict:
		return e.Code == http.StatusConflict
	case ErrForbidden:
		return e.Code == http.StatusForbidden || e.Code == http.StatusUnauthorized
	}
	return false
}

// Error classes of APIError.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict") // AlreadyExists on create, a stale resourceVersion on update
	ErrForbidden = errors.New("forbidden")
)

// call sends one request. verb and resource name the call for errors ("patch",
// "secrets/licenses"); out, when not nil, receives the decoded answer.
func (c *Client) call(ctx context.Context, method, verb, resource, contentType string, body []byte, out any) error {
	token, err := c.bearer()
	if err != nil {
		return err
	}
	kind, name, _ := strings.Cut(resource, "/")
	path := groups[kind].prefix + "/namespaces/" + url.PathEscape(c.namespace) + "/" + kind
	if name != "" {
		path += "/" + url.PathEscape(name)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes: %s %s: %w", verb, resource, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("kubernetes: %s %s: read answer: %w", verb, resource, err)
	}
	if resp.StatusCode/100 != 2 {
		return c.apiError(resp, data, verb, resource, kind, name)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("kubernetes: %s %s: decode answer: %w", verb, resource, err)
	}
	return nil
}

// groups are the API groups of the kinds svinit uses, and the example whose Role grants them.
var groups = map[string]struct{ prefix, example string }{
	"secrets": {"/api/v1", "examples/k8s/icap"},
	"pods":    {"/api/v1", "examples/k8s/icap"},
	"leases":  {"/apis/coordination.k8s.io/v1", "examples/k8s/lease"},
}

// maxForeignBody is how much of an error answer that is not a Kubernetes Status goes into
// the error.
const maxForeignBody = 512

func (c *Client) apiError(resp *http.Response, data []byte, verb, resource, kind, name string) error {
	var st struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &st) != nil || st.Message == "" {
		// Not a Status: a proxy's error page, perhaps. Enough of it to recognise, not a
		// page of HTML in the log.
		st.Message = strings.ToValidUTF8(strings.TrimSpace(string(data[:min(len(data), maxForeignBody)])), "")
		if len(data) > maxForeignBody {
			st.Message += " ..."
		}
	}
	if st.Reason == "" {
		st.Reason = http.StatusText(resp.StatusCode)
	}
	e := &APIError{Code: resp.StatusCode, Reason: st.Reason, Message: st.Message, Verb: verb, Resource: resource}
	switch resp.StatusCode {
	case http.StatusForbidden:
		scope := ""
		if name != "" && verb != "create" {
			scope = fmt.Sprintf(" (resourceNames: [%s])", name)
		}
		e.Hint = fmt.Sprintf("the pod's ServiceAccount lacks permission %q on %s%s in namespace %s: add it to its Role (see %s)", verb, kind, scope, c.namespace, groups[kind].example)
	case http.StatusUnauthorized:
		e.Hint = "the service-account token was refused: is it expired or from another cluster?"
	}
	return e
}

// Secret is the part of a Secret svinit uses.
type Secret struct {
	ResourceVersion string
	Data            map[string][]byte
}

type secretObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data"` // base64 in JSON, as the API wants
}

type objectMeta struct {
	Name            string            `json:"name"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
}

// GetSecret reads the Secret name.
func (c *Client) GetSecret(ctx context.Context, name string) (Secret, error) {
	var obj secretObject
	if err := c.call(ctx, http.MethodGet, "get", "secrets/"+name, "", nil, &obj); err != nil {
		return Secret{}, err
	}
	return Secret{ResourceVersion: obj.Metadata.ResourceVersion, Data: obj.Data}, nil
}

// CreateSecret creates the Secret name holding data; ErrConflict when it exists.
func (c *Client) CreateSecret(ctx context.Context, name string, data map[string][]byte) error {
	body, err := json.Marshal(secretObject{
		APIVersion: "v1", Kind: "Secret", Type: "Opaque", Data: data,
		Metadata: objectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "svinit"}},
	})
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, "create", "secrets", "application/json", body, nil)
}

// PatchSecretKey sets one key of the Secret's data with a JSON merge patch, or removes it
// when value is nil. A merge patch touches that key alone, so pods patching their own
// keys at the same time never lose each other's.
func (c *Client) PatchSecretKey(ctx context.Context, name, key string, value []byte) error {
	var v any // JSON null removes the key
	if value != nil {
		v = value // []byte marshals as base64
	}
	body, err := json.Marshal(map[string]any{"data": map[string]any{key: v}})
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPatch, "patch", "secrets/"+name, "application/merge-patch+json", body, nil)
}

// PodUID returns the UID of the Pod name; ErrNotFound when there is none.
func (c *Client) PodUID(ctx context.Context, name string) (string, error) {
	var obj struct {
		Metadata objectMeta `json:"metadata"`
	}
	if err := c.call(ctx, http.MethodGet, "get", "pods/"+name, "", nil, &obj); err != nil {
		return "", err
	}
	return obj.Metadata.UID, nil
}
