//go:build tools

// Package tools pins the etcd main package built by
// e2e/scripts/build-controlplane.sh so `go mod tidy` keeps go.sum complete.
package tools

import _ "go.etcd.io/etcd/server/v3"
