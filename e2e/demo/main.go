// Command demo starts the local e2e cluster, installs Sluice, deploys a demo
// app behind a Rollout on the Gateway API (Traefik), sends it real traffic,
// and shows a good release being promoted and a bad one rolled back, live.
//
//	go run ./e2e/demo            # as root; `make demo`
//	DEMO_KEEP=1 go run ./e2e/demo  # leave the cluster up and print a KUBECONFIG
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

const (
	ns   = "demo"
	name = "podinfo"
	host = "podinfo.demo.sluice.test"
)

func main() {
	// The demo talks to the cluster through controller-runtime's client,
	// which logs nothing a viewer needs; without a logger it prints a stack
	// trace ("log.SetLogger(...) was never called") instead.
	ctrllog.SetLogger(logr.Discard())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	keep := os.Getenv("DEMO_KEEP") != ""

	say("Starting a local cluster with a real node: etcd, kube-apiserver, controller-manager, scheduler, a kubelet with containerd, kube-proxy, CoreDNS, metrics-server, Traefik, Prometheus, and Sluice installed by its Helm chart")
	begin := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stdout, RealNode: true})
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	say("Cluster up in %s", time.Since(begin).Round(time.Second))

	image := c.Image("testapp")
	app := cluster.App{Namespace: ns, Name: name, Version: "v1", Replicas: 3, Image: image}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := c.Client.Create(ctx, app.Deployment()); err != nil {
		return err
	}
	ro := app.GatewayRollout(host, sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
		{SetWeight: ptr.To[int32](10)}, {SetWeight: ptr.To[int32](25)}, {SetWeight: ptr.To[int32](50)},
	}}}, &sluicev1.Analysis{
		Interval:  &metav1.Duration{Duration: 3 * time.Second},
		Threshold: 2,
		// The built-in checks, read from Traefik's own metrics
		// (--gateway-flavor traefik); hold while the canary has no traffic yet.
		Metrics: []sluicev1.MetricCheck{
			{Name: sluicev1.MetricRequestSuccessRate, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}, Interval: &metav1.Duration{Duration: 6 * time.Second}, OnNoData: sluicev1.NoDataHold},
			{Name: sluicev1.MetricRequestDuration, ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(500.0)}, Interval: &metav1.Duration{Duration: 6 * time.Second}, OnNoData: sluicev1.NoDataHold},
		},
		// Traefik splits by a fixed rotation, not at random: at 10
		// requests/s beside the demo's 40, the loadtester's requests
		// could fall on every canary turn for a while, and the table
		// (which counts the demo's own requests) show 0% on the canary at
		// a 10% weight. At 7 a second they cannot keep step with it.
		Webhooks: []sluicev1.Webhook{{
			Name: "load", Type: sluicev1.HookRollout, URL: c.LoadtesterHookURL + "/",
			Metadata: map[string]string{"url": c.GatewayURL + "/", "header-Host": host, "rate": "7", "duration": "3s"},
		}},
	})
	if err := c.Client.Create(ctx, ro); err != nil {
		return err
	}
	say("Deployed %s/%s v1 (3 real containers with readiness probes) with a canary Rollout on Gateway %s/%s: steps 10%%, 25%%, 50%%, 3s each, success rate >= 99%%, p99 <= 500ms", ns, name, cluster.GatewayNamespace, cluster.GatewayName)
	if err := waitPhase(ctx, c, sluicev1.PhaseInitialized, 90*time.Second); err != nil {
		return err
	}
	load := c.StartLoad(host, 40, nil)
	defer load.Stop()
	say("Sending 40 requests/s to %s (Host: %s) and counting which version answers each", c.GatewayURL, host)
	time.Sleep(3 * time.Second)

	say("Release 1: v2, a good version")
	if err := setVersion(ctx, c, cluster.App{Namespace: ns, Name: name, Version: "v2", Replicas: 3, Image: image}); err != nil {
		return err
	}
	stable := "v1"
	ph, err := watch(ctx, c, load, stable, "v2", sluicev1.PhaseSucceeded)
	if err != nil {
		return err
	}
	say("Release 1 ended: %s", ph)
	if ph == sluicev1.PhaseSucceeded {
		stable = "v2"
	}

	say("Release 2: v3, a bad version (30%% of its answers are 500s)")
	if err := setVersion(ctx, c, cluster.App{Namespace: ns, Name: name, Version: "v3", Replicas: 3, ErrorRate: 0.3, Image: image}); err != nil {
		return err
	}
	ph, err = watch(ctx, c, load, stable, "v3", sluicev1.PhaseFailed)
	if err != nil {
		return err
	}
	say("Release 2 ended: %s; traffic is back on %s", ph, stable)
	time.Sleep(3 * time.Second)
	sp := load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
	say("Last 2s of traffic: %s", sp)
	printEvents(ctx, c)

	if keep {
		say("DEMO_KEEP is set: the cluster stays up. Explore it with:\n\n  export KUBECONFIG=%s\n  kubectl get rollouts,deploy,pods,httproutes -A\n  kubectl top pods -A\n  curl -H 'Host: %s' %s/\n  Prometheus: %s\n\n"+
			"Watch and steer the Rollouts in a browser with the plugin's dashboard:\n\n  go run ./cmd/kubectl-sluice dashboard --kubeconfig %s -n %s\n  then open http://%s/ (add -A for every namespace)\n\n"+
			"Press Ctrl-C to tear it down.", c.KubeConfig, host, c.GatewayURL, c.PrometheusURL, c.KubeConfig, ns, dashboardAddress)
		<-ctx.Done()
	}
	load.Stop()
	c.Stop()
	stopped = true
	_ = os.RemoveAll(c.Dir)
	say("Torn down.")
	return nil
}

// dashboardAddress is where `kubectl sluice dashboard` listens by default.
const dashboardAddress = "127.0.0.1:3100"

// metricTemplates read the canary's success rate and p99 from Traefik's
// metrics.
func say(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func waitPhase(ctx context.Context, c *cluster.Cluster, phase sluicev1.Phase, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ro := &sluicev1.Rollout{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ro); err == nil && ro.Status.Phase == phase {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Rollout did not reach %s within %s:\n%s", phase, timeout, c.ManagerLog(3000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func setVersion(ctx context.Context, c *cluster.Cluster, app cluster.App) error {
	// Sluice scales the target: retry on a conflict with it.
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		app.Apply(&d.Spec.Template)
		return c.Client.Update(ctx, d)
	})
}

// watch prints one line per second until the Rollout reaches want or Failed.
func watch(ctx context.Context, c *cluster.Cluster, load *cluster.Load, stable, canary string, want sluicev1.Phase) (sluicev1.Phase, error) {
	fmt.Printf("\n%-8s %-17s %5s %6s %9s %8s   %-24s\n", "time", "phase", "step", "weight", "success", "p99", "answered by (last 2s)")
	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	svc := cluster.TraefikService(ns, name+"-canary", 80)
	for {
		ro := &sluicev1.Rollout{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ro); err != nil {
			return "", err
		}
		st := ro.Status
		sr := "-"
		if v, ok, _ := c.PromQuery(ctx, fmt.Sprintf(`100 * (1 - (sum(rate(traefik_service_requests_total{service=%q,code=~"5.."}[10s])) or on() vector(0)) / (sum(rate(traefik_service_requests_total{service=%q}[10s])) > 0))`, svc, svc)); ok {
			sr = fmt.Sprintf("%.1f%%", v)
		}
		p99 := "-"
		if v, ok, _ := c.PromQuery(ctx, fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=%q}[10s]))) * 1000 >= 0`, svc)); ok {
			p99 = fmt.Sprintf("%.0fms", v)
		}
		sp := load.SplitBetween(time.Now().Add(-2*time.Second), time.Now())
		share := fmt.Sprintf("%s %5.1f%%  %s %5.1f%%", stable, sp.Share(stable), canary, sp.Share(canary))
		if sp.Errors > 0 {
			share += fmt.Sprintf("  (%d errors)", sp.Errors)
		}
		// The step as kubectl shows it ("2/3"), blank outside a run.
		fmt.Printf("%-8s %-17s %5s %5d%% %9s %8s   %s\n", fmt.Sprintf("+%.0fs", time.Since(start).Seconds()), st.Phase, st.StepProgress, st.CanaryWeight, sr, p99, share)
		if time.Since(start) > 3*time.Second && (st.Phase == want || st.Phase == sluicev1.PhaseFailed) {
			if st.Message != "" {
				fmt.Printf("         %s\n", st.Message)
			}
			return st.Phase, nil
		}
		if time.Now().After(deadline) {
			return st.Phase, fmt.Errorf("the release did not end within 4 minutes")
		}
		select {
		case <-ctx.Done():
			return st.Phase, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func printEvents(ctx context.Context, c *cluster.Cluster) {
	list := &corev1.EventList{}
	if err := c.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return
	}
	fmt.Println("\nRollout events:")
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Rollout" {
			fmt.Printf("  %-8s %-22s %s\n", e.Type, e.Reason, e.Message)
		}
	}
}
