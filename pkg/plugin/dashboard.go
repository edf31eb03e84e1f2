package plugin

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/plugin/dashboard"
)

// defaultDashboardAddress is where the dashboard listens unless told: the
// loopback interface, so only this machine's browsers reach it.
const defaultDashboardAddress = "127.0.0.1:3100"

func newDashboardCommand(o *options) *cobra.Command {
	var address string
	var all bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a live web page of the Rollouts, with the actions as buttons",
		Long: "Serve a live web page of the Rollouts in the namespace (-A: every namespace)\n" +
			"from this process, until interrupted. The page shows each Rollout's phase,\n" +
			"steps, traffic, metrics, gates, conditions and events, and asks for actions\n" +
			"as you: the plugin uses your kubeconfig's credentials, so RBAC decides.\n\n" +
			"It listens on " + defaultDashboardAddress + " unless --address says otherwise, answers only\n" +
			"requests addressed to that host and port, and needs the page's CSRF token\n" +
			"for every action.",
		Example: "  kubectl sluice dashboard -n test\n" +
			"  kubectl sluice dashboard -A --address 127.0.0.1:8080",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.dashboard(cmd.Context(), address, all)
		},
	}
	cmd.Flags().StringVar(&address, "address", defaultDashboardAddress, "host:port to listen on (port 0 picks a free one)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "show Rollouts in every namespace")
	return cmd
}

// dashboard serves the dashboard until ctx ends.
func (o *options) dashboard(ctx context.Context, address string, all bool) error {
	c, err := o.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if all {
		ns = metav1.NamespaceAll
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", address, err)
	}
	defer func() { _ = ln.Close() }()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		fmt.Fprintf(o.streams.ErrOut, "warning: listening on %s, which other machines may reach: whoever loads the page acts as you\n", ln.Addr())
	}
	srv, err := dashboard.New(dashboard.Options{
		Dynamic: c.dyn, Kube: c.kube, Namespace: ns, User: c.whoAmI(ctx),
		Ask: func(ctx context.Context, ns, name string, action sluicev1.Action) (string, error) {
			asked, err := c.requestAction(ctx, ns, name, action)
			return asked.By, err
		},
	}, ln.Addr())
	if err != nil {
		return err
	}
	scope := "namespace " + ns
	if all {
		scope = "all namespaces"
	}
	fmt.Fprintf(o.streams.Out, "Sluice dashboard (%s) at http://%s/ (Ctrl-C to stop)\n", scope, ln.Addr())
	err = srv.Serve(ctx, ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
