// Command pulumi-resource-kubernetes serves the Kubernetes provider from its Go module.
//
// The module's own main package embeds two files its build generates and its module zip lacks
// (schema-embed.json, terraform-mapping-embed.json); scripts/e2e/setup.sh generates them beside this
// file from the schema.json and terraform-mapping.json that the module zip does carry.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
