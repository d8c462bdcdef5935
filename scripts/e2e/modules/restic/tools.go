//go:build tools

// Package tools pins restic's command (github.com/restic/restic/cmd/restic) for go.mod and go.sum.
package tools

import _ "github.com/restic/restic/cmd/restic"
