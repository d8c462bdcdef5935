//go:build tools

// Package tools pins SeaweedFS's `weed` command (github.com/seaweedfs/seaweedfs/weed) for go.mod and go.sum.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
