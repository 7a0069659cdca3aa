//go:build tools

// Package tools pins the helm command that e2e/scripts/build-helm.sh builds,
// so `go mod tidy` keeps every module it needs in go.mod/go.sum and a clean
// clone can build it from the module proxy with -mod=readonly.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
