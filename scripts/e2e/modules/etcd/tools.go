//go:build tools

// Package tools pins etcd's main package (go.etcd.io/etcd/server/v3) for go.mod and go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3"
