// Command manager runs the Sluice operator against a kubeconfig or in-cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/cliflag"
	"github.com/sluice-dev/sluice/internal/lazylog"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/egress"
)

func main() {
	if tuneGC(os.Getenv, cgroupMemoryLimits) {
		followCollections(pace)
	}
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-manager:", err)
		os.Exit(1)
	}
}

// allowRestart lets tests call run more than once in one process.
var allowRestart = false

// run parses the flags, builds the manager and runs it until ctx ends.
func run(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var (
		kubeconfig = fs.String("kubeconfig", "", "path to a kubeconfig; empty means $KUBECONFIG or in-cluster")
		opts       manager.Options
		logLevel   = fs.String("log-level", "info", "log level: debug, info or error")
		devLogs    = fs.Bool("log-dev", false, "human-readable logs instead of JSON")
		limits     apiLimits
		tokenHosts string
	)
	fs.Float64Var(&limits.qps, "kube-api-qps", -1, "client-side limit of API requests per second; -1 (the default) turns it off and leaves fairness to the API server's priority and fairness")
	fs.IntVar(&limits.burst, "kube-api-burst", 0, "client-side burst of API requests, with --kube-api-qps >= 0 (0: client-go's default of 10)")
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint; 0 disables it")
	fs.StringVar(&opts.HealthProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes; 0 disables them")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among replicas, so that one reconciles at a time; --leader-elect=false for a single manager run by hand")
	fs.StringVar(&opts.PrometheusAddress, "prometheus-address", "", "Prometheus for built-in metrics and MetricTemplates without an address, e.g. http://prometheus.monitoring:9090")
	fs.DurationVar(&opts.PrometheusTimeout, "prometheus-timeout", 10*time.Second, "timeout of one metric query")
	fs.StringVar(&opts.GatewayFlavor, "gateway-flavor", "envoy", "Gateway API implementation whose metrics the built-in checks read: envoy or traefik")
	fs.StringVar(&opts.NotifySecret, "notify-secret", "", "NAMESPACE/NAME of a Secret with notification URLs (slack-url, teams-url, webhook-url, event-url)")
	fs.StringVar(&opts.EventWebhookURL, "event-webhook-url", "", "URL that receives every Rollout event as a webhook payload")
	fs.StringVar(&opts.Shard, "shard", "", "label selector of the Rollouts this manager serves, e.g. sluice.dev/shard=team-a, or !sluice.dev/shard for the Rollouts of no shard; each shard elects its own leader (empty: all Rollouts)")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", rollout.DefaultMaxConcurrentReconciles, "how many Rollouts are reconciled at once; hooks and checks run beside them and hold none")
	fs.StringVar(&opts.ProfilingAddr, "profiling-address", "", "address of Go's pprof endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; empty: off")
	fs.StringVar(&opts.WebhookTokenFile, "webhook-token-file", "", "file whose content is sent as 'Authorization: Bearer <token>' with the webhook calls to --webhook-token-hosts, e.g. the loadtester's token (read again when it changes)")
	fs.StringVar(&tokenHosts, "webhook-token-hosts", "", "comma-separated host names (ports ignored) of the webhooks that get --webhook-token-file's token; no other webhook gets it")
	fs.Func("watch-namespaces", "comma-separated namespaces whose Rollouts (and every other namespaced object) this manager serves, watching nothing elsewhere, so that a Role per namespace is enough RBAC; repeatable (empty: all namespaces)",
		namespaceList(&opts.WatchNamespaces))
	fs.StringVar(&opts.ClusterTemplateSecretNamespace, "cluster-template-secret-namespace", "", "namespace whose opted-in Secrets ClusterMetricTemplates may name as credentials (default: the pod's namespace; outside a cluster, none)")
	fs.StringVar(&opts.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace; required outside a cluster)")
	fs.DurationVar(&opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long the other replicas wait, after the leader's last renewal, before one takes over from a leader that died without handing the Lease over (a graceful stop hands it over at once)")
	fs.DurationVar(&opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew the Lease before it stops leading (below --leader-election-lease-duration)")
	fs.DurationVar(&opts.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often the replicas try to acquire or renew the Lease (below --leader-election-renew-deadline)")
	fs.Func("webhook-egress-allow", "comma-separated CIDRs, addresses, address:port, host names or host:port that Rollout webhooks and MetricTemplate addresses may reach although denied by default (link-local, loopback, unspecified, cloud metadata, the API server), e.g. 127.0.0.1/32; repeatable",
		appendList(&opts.WebhookEgressAllow))
	fs.Func("webhook-egress-deny", "comma-separated CIDRs, addresses, address:port, host names or host:port that Rollout webhooks and MetricTemplate addresses may never reach; wins over --webhook-egress-allow; repeatable",
		appendList(&opts.WebhookEgressDeny))
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.WebhookTokenHosts = cliflag.SplitList(tokenHosts)
	if opts.MaxConcurrentReconciles < 1 {
		return fmt.Errorf("--max-concurrent-reconciles %d: want at least 1", opts.MaxConcurrentReconciles)
	}
	if opts.RetryPeriod <= 0 || opts.RenewDeadline <= opts.RetryPeriod || opts.LeaseDuration <= opts.RenewDeadline {
		return fmt.Errorf("leader election: want 0 < --leader-election-retry-period (%s) < --leader-election-renew-deadline (%s) < --leader-election-lease-duration (%s)",
			opts.RetryPeriod, opts.RenewDeadline, opts.LeaseDuration)
	}
	level, err := zapcore.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// Checked here too, so that a mistyped entry fails before the manager
	// connects anywhere.
	if _, err := egress.New(opts.WebhookEgressAllow, opts.WebhookEgressDeny, nil); err != nil {
		return err
	}
	if opts.LeaderElection {
		if opts.LeaderElectionNS, err = leaseNamespace(opts.LeaderElectionNS); err != nil {
			return err
		}
	}
	if opts.ClusterTemplateSecretNamespace == "" {
		// Outside a cluster there is none: ClusterMetricTemplates then
		// cannot name a Secret, which their checks say.
		if b, err := os.ReadFile(podNamespaceFile); err == nil {
			opts.ClusterTemplateSecretNamespace = strings.TrimSpace(string(b))
		}
	}
	opts.AllowRestart = allowRestart
	// Lazy: a reconcile's logger gets its fields for every reconcile, and
	// nearly every reconcile logs nothing (internal/lazylog).
	logger := lazylog.New(zap.New(zap.WriteTo(logOut), zap.Level(level), zap.UseDevMode(*devLogs)))
	// controller-runtime's global logger takes the first logger it is given.
	ctrl.SetLogger(logger)
	// client-go logs through klog (leader election among others): into the
	// same logs, not plain text on stderr.
	klog.SetLogger(logger)

	cfg, err := restConfig(*kubeconfig, limits)
	if err != nil {
		return err
	}
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		return fmt.Errorf("setting up the manager: %w", err)
	}
	logger.WithName("setup").Info("starting", "leaderElection", opts.LeaderElection, "leaseNamespace", opts.LeaderElectionNS, "metrics", opts.MetricsAddr, "shard", opts.Shard, "watchNamespaces", opts.WatchNamespaces)
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// appendList returns a flag.Func that appends the comma-separated entries
// of each use of the flag to list.
func appendList(list *[]string) func(string) error {
	return func(v string) error {
		*list = append(*list, cliflag.SplitList(v)...)
		return nil
	}
}

// namespaceList is appendList for namespace names: an entry that cannot be
// a namespace's name fails the flag, before the manager starts, instead of
// making a manager that watches a namespace that never exists.
func namespaceList(list *[]string) func(string) error {
	add := appendList(list)
	return func(v string) error {
		for _, e := range cliflag.SplitList(v) {
			if err := manager.CheckNamespaceName(e); err != nil {
				return err
			}
		}
		return add(v)
	}
}

// podNamespaceFile holds the pod's namespace when running in a cluster.
var podNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// leaseNamespace returns the namespace of the leader election Lease: the
// flag's, else the pod's. Outside a cluster there is no pod namespace;
// controller-runtime would then fail naming its Go option, so the error here
// names the flags that fix it.
func leaseNamespace(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	b, err := os.ReadFile(podNamespaceFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", errors.New("leader election is on (the default) but the manager runs outside a cluster, " +
			"so it has no namespace for its Lease: pass --leader-election-namespace=NAMESPACE, " +
			"or --leader-elect=false to run a single manager without election")
	}
	if err != nil {
		return "", fmt.Errorf("reading the pod's namespace for the leader election Lease: %w", err)
	}
	ns := strings.TrimSpace(string(b))
	if ns == "" {
		return "", fmt.Errorf("%s is empty: pass --leader-election-namespace=NAMESPACE", podNamespaceFile)
	}
	return ns, nil
}

// apiLimits is the client-side rate limit of the manager's API requests.
type apiLimits struct {
	qps   float64
	burst int
}

// restConfig builds the client config from --kubeconfig, else $KUBECONFIG or
// in-cluster, with the same client-side limits on every path: client-go's
// 5 requests/s would otherwise throttle a --kubeconfig manager (and drop its
// events) while an in-cluster one had no limit.
func restConfig(kubeconfig string, limits apiLimits) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	} else if cfg, err = ctrl.GetConfig(); err != nil {
		return nil, fmt.Errorf("no kubeconfig given and none found (in-cluster or $KUBECONFIG): %w", err)
	}
	cfg.QPS = float32(limits.qps)
	cfg.Burst = limits.burst
	return cfg, nil
}
