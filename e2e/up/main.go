// Command up starts the local cluster with a real node (`make cluster`) and
// keeps it up until Ctrl-C, then tears it down to nothing. It prints how
// to point kubectl at it.
//
//	go run ./e2e/up          # as root, after `make images`
//	go run ./e2e/up -kwok    # the kwok cluster instead (no kubelet)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sluice-dev/sluice/e2e/cluster"
)

func main() {
	kwok := flag.Bool("kwok", false, "start the kwok cluster (simulated node) instead of the real node")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	begin := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stdout, RealNode: !*kwok})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	fmt.Printf("\nCluster up in %s. Point kubectl at it:\n\n  export KUBECONFIG=%s\n  kubectl get nodes,pods -A\n\nGateway: %s   Prometheus: %s   Loadtester: %s\nLogs: %s\n\nPress Ctrl-C to tear it down.\n",
		time.Since(begin).Round(time.Millisecond), c.KubeConfig, c.GatewayURL, c.PrometheusURL, c.LoadtesterURL, c.Dir)
	<-ctx.Done()
	t0 := time.Now()
	c.Stop()
	_ = os.RemoveAll(c.Dir)
	fmt.Printf("Torn down in %s.\n", time.Since(t0).Round(time.Millisecond))
}
