package manager

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apiServerLookupTimeout bounds the look-ups of the API server's addresses
// at start.
const apiServerLookupTimeout = 5 * time.Second

// apiServerAddrs returns the API server's own addresses, as host:port, for
// the egress policy to deny by default: the host of cfg (and what its name
// resolves to now), and the ClusterIPs and ports of the `kubernetes` Service
// in `default`, when it can be read. In a cluster both are usually the same
// ClusterIP:443. Address:port pairs, not whole addresses: another service
// may listen on the API server's address (a Prometheus on its node). What
// cannot be found is logged and left out: the deny entries cover it. A
// manager limited to some namespaces (--watch-namespaces) usually may not
// read `default`: that is logged too, never fatal; in a cluster its config's
// host is the same ClusterIP anyway.
func apiServerAddrs(cfg *rest.Config) []string {
	log := ctrl.Log.WithName("egress")
	ctx, cancel := context.WithTimeout(context.Background(), apiServerLookupTimeout)
	defer cancel()
	var out []string
	add := func(host string, port int) {
		if hp := net.JoinHostPort(host, strconv.Itoa(port)); !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}

	if u, _, err := rest.DefaultServerUrlFor(cfg); err != nil {
		log.Info("the API server's URL could not be parsed: its address is not denied", "host", cfg.Host, "error", err.Error())
	} else {
		port := 443
		if u.Scheme == "http" {
			port = 80
		}
		if p, err := strconv.Atoi(u.Port()); err == nil {
			port = p
		}
		host := u.Hostname()
		add(host, port)
		if _, err := netip.ParseAddr(host); err != nil {
			ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			if err != nil {
				log.Info("the API server's name did not resolve: only the name is denied", "host", host, "error", err.Error())
			}
			for _, ip := range ips {
				add(ip.Unmap().String(), port)
			}
		}
	}

	// A plain client: the manager's cache holds only the Services Sluice
	// creates, and is not running yet.
	c, err := client.New(cfg, client.Options{})
	if err == nil {
		svc := &corev1.Service{}
		if err = c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, svc); err == nil {
			ips := svc.Spec.ClusterIPs
			if len(ips) == 0 && svc.Spec.ClusterIP != "" {
				ips = []string{svc.Spec.ClusterIP}
			}
			for _, ip := range ips {
				if _, perr := netip.ParseAddr(ip); perr != nil {
					continue
				}
				for _, p := range svc.Spec.Ports {
					add(ip, int(p.Port))
				}
			}
		}
	}
	if err != nil {
		log.Info("the kubernetes Service could not be read: its ClusterIP is not denied unless --webhook-egress-deny names it", "error", err.Error())
	}
	return out
}
