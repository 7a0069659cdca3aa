//go:build tools

// Package tools pins the main packages that e2e/scripts/build-controlplane.sh
// builds, so `go mod tidy` keeps every module they need in go.mod/go.sum and
// a clean clone can build them offline-from-cache or from the module proxy.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
