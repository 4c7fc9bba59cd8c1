// Package k8stest holds svinit's tests against a real Kubernetes API server (see package
// cluster): the Secret ledger and zombie sweep, and the manifests in examples/k8s/.
package k8stest
