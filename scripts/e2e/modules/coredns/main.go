// Command coredns is CoreDNS with only the plugins the e2e cluster's DNS uses: the real node's pods resolve
// Service names (hub, proxy-api, ...) through the kubernetes plugin and nothing is forwarded off the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The plugin chain in execution order (CoreDNS's plugin.cfg order, restricted to the plugins above).
func init() {
	dnsserver.Directives = []string{"bind", "health", "ready", "log", "errors", "cache", "kubernetes"}
}

func main() { coremain.Run() }
