//go:build tools

// Package apiserverbuild only pins k8s.io/kubernetes, so that k8stest/build-apiserver can
// build the Kubernetes components the tests run from it; nothing imports it. It is a module
// of its own so that the test module's go.mod stays small and `go test` never loads the
// Kubernetes graph.
package apiserverbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
