//go:build tools

// Package tools pins the Pulumi CLI's main package so that go.mod and go.sum cover it.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
