// Package manager builds Sluice's controller manager: the scheme, a cache
// limited to what Sluice needs, and the Rollout controller. The manager
// binary and the envtest stories share it, so the tests run what ships.
package manager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	eventsclient "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/intern"
	"github.com/sluice-dev/sluice/internal/metricsendpoint"
	"github.com/sluice-dev/sluice/internal/ownwrites"
	"github.com/sluice-dev/sluice/internal/recorder"
	"github.com/sluice-dev/sluice/pkg/analysis"
	"github.com/sluice-dev/sluice/pkg/analysis/kubernetes"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/autoscaling/hpa"
	"github.com/sluice-dev/sluice/pkg/autoscaling/keda"
	"github.com/sluice-dev/sluice/pkg/egress"
	"github.com/sluice-dev/sluice/pkg/notify"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/traffic/routers"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// LeaderElectionID names the Lease the manager replicas elect a leader with.
const LeaderElectionID = "sluice-manager.sluice.dev"

// Options configure a manager.
type Options struct {
	MetricsAddr      string
	HealthProbeAddr  string
	LeaderElection   bool
	LeaderElectionNS string
	// Clock is the clock of the state machine (the real one when nil).
	Clock clock.PassiveClock
	// Metrics answers metric queries (analysis.NoProvider when nil).
	Metrics analysis.Querier
	// WebhookClient calls a Rollout's webhooks, event webhooks included.
	// When nil, a client whose connections pass the egress policy below;
	// a client given here is used as it is.
	WebhookClient *http.Client
	// WebhookEgressAllow and WebhookEgressDeny are the entries of the
	// egress policy (pkg/egress) of the destinations Rollout and
	// MetricTemplate authors choose: their webhooks and provider.address.
	// With neither, the policy denies link-local, loopback, unspecified and
	// cloud metadata addresses and the API server's own addresses.
	WebhookEgressAllow []string
	WebhookEgressDeny  []string
	// WebhookTokenFile holds a bearer token (the loadtester's) sent as
	// "Authorization: Bearer <token>" with the webhook calls to
	// WebhookTokenHosts, and to no other host: webhook URLs are written
	// by Rollout authors. The file is read again when it changes.
	WebhookTokenFile  string
	WebhookTokenHosts []string
	// PrometheusAddress is the Prometheus of built-in metrics and of
	// MetricTemplates without an address; PrometheusTimeout bounds a query;
	// GatewayFlavor names the Gateway API implementation whose metrics the
	// built-in checks read (envoy or traefik). Used when Metrics is nil.
	PrometheusAddress string
	PrometheusTimeout time.Duration
	// ClusterTemplateSecretNamespace is where the credentials Secrets of
	// ClusterMetricTemplates are read (the manager's namespace); empty: a
	// ClusterMetricTemplate cannot name a Secret.
	ClusterTemplateSecretNamespace string
	GatewayFlavor                  string
	// NotifySecret ("namespace/name") holds notification URLs (slack-url,
	// teams-url, webhook-url, event-url); EventWebhookURL is an event
	// webhook for every Rollout.
	NotifySecret    string
	EventWebhookURL string
	// AllowRestart lets one process build several managers in turn (tests
	// that stop and start Sluice); controller names are otherwise unique.
	AllowRestart bool
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election
	// (controller-runtime's defaults, 15s, 10s and 2s, when zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Shard is a label selector (as kubectl -l takes it) that limits the
	// manager to the Rollouts whose labels match; empty: every Rollout.
	// Each shard elects its own leader (see LeaseName).
	Shard string
	// ProfilingAddr serves Go's pprof endpoints; empty or "0": off.
	ProfilingAddr string
	// WatchNamespaces limits the manager to the Rollouts, and every other
	// namespaced object, of these namespaces: its cache lists and watches
	// them only, so that namespaced RBAC (a Role per namespace) is enough,
	// as when each tenant runs its own Sluice. Empty: every namespace.
	// The leader election Lease stays in LeaderElectionNS, and the CRD
	// metadata watch stays cluster-wide (see docs/operations.md, RBAC).
	WatchNamespaces []string
	// MaxConcurrentReconciles is how many Rollouts are reconciled at once
	// (rollout.DefaultMaxConcurrentReconciles when 0).
	MaxConcurrentReconciles int
}

// ShardLabel is the label that the chart's shards select Rollouts by.
const ShardLabel = "sluice.dev/shard"

// LeaseName is the name of the leader election Lease of the managers that
// serve shard (a label selector; nil for all Rollouts) in namespaces (none
// for every namespace): each shard, and each set of watched namespaces,
// elects its own leader, so that one manager of each reconciles. Two
// tenants' Sluices installed in one namespace would otherwise share a Lease
// and one of them would never lead. Selectors that parse to the same
// requirements, and the same namespaces in any order, share a Lease.
func LeaseName(shard labels.Selector, namespaces ...string) string {
	key := ""
	if shard != nil && !shard.Empty() {
		key = shard.String()
	}
	if len(namespaces) > 0 {
		ns := slices.Clone(namespaces)
		slices.Sort(ns)
		// Not a selector's character: no selector hashes like a namespace set.
		key += "\x00namespaces=" + strings.Join(slices.Compact(ns), ",")
	}
	if key == "" {
		return LeaderElectionID
	}
	sum := sha256.Sum256([]byte(key))
	return "sluice-manager-" + hex.EncodeToString(sum[:])[:10] + ".sluice.dev"
}

// nonZero is d, or nil for zero (controller-runtime's default).
func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// parseShard parses the --shard selector; nil when empty.
func parseShard(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--shard %q is not a label selector: %w", s, err)
	}
	if sel.Empty() {
		return nil, nil
	}
	return sel, nil
}

// Scheme returns the scheme with the Kubernetes types and Sluice's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := sluicev1.AddToScheme(s); err != nil {
		panic(err)
	}
	// Router kinds are known to the scheme whether or not their CRDs are
	// installed; routers check the API server before they use them.
	if err := gwv1.Install(s); err != nil {
		panic(err)
	}
	if err := istiov1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// New returns a manager with the Rollout controller set up.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if opts.MaxConcurrentReconciles < 0 {
		return nil, fmt.Errorf("--max-concurrent-reconciles %d: want at least 1", opts.MaxConcurrentReconciles)
	}
	// First, so that a wrong namespace, egress or token flag fails before
	// anything starts.
	watched, err := watchNamespaces(opts.WatchNamespaces)
	if err != nil {
		return nil, err
	}
	policy, err := egress.New(opts.WebhookEgressAllow, opts.WebhookEgressDeny, apiServerAddrs(cfg))
	if err != nil {
		return nil, err
	}
	hc, err := webhookClient(opts, policy)
	if err != nil {
		return nil, err
	}
	managed := labels.SelectorFromSet(labels.Set{traffic.ManagedByLabel: traffic.ManagedByValue})
	shard, err := parseShard(opts.Shard)
	if err != nil {
		return nil, err
	}
	// Every kind's transform ends by sharing the strings its objects repeat
	// (label and annotation keys, namespaces, owner kinds) across the
	// cache: several percent of the heap of a large fleet (internal/intern).
	defaultTransform := intern.Transform(cache.TransformStripManagedFields())
	workloads := &rollout.CachedWorkloads{}
	byObject := map[client.Object]cache.ByObject{
		// Only the Services Sluice creates, and their EndpointSlices (which
		// carry the Services' labels), stripped to what Sluice counts.
		&corev1.Service{}:            {Label: managed, Transform: intern.Transform(traffic.StripService)},
		&discoveryv1.EndpointSlice{}: {Label: managed, Transform: intern.Transform(rollout.StripEndpointSlice)},
		// ConfigMaps and Secrets are watched as metadata only, and cached
		// without their annotations (kubectl's last-applied-configuration
		// holds the data); the controller reads the content of the ones a
		// target uses, uncached.
		&corev1.ConfigMap{}: {Transform: intern.Transform(rollout.StripConfigMetadata)},
		&corev1.Secret{}:    {Transform: intern.Transform(rollout.StripConfigMetadata)},
		// Every workload, whole only when a Rollout targets or owns it.
		&appsv1.Deployment{}: {Transform: intern.Transform(workloads.Transform)},
		&appsv1.DaemonSet{}:  {Transform: intern.Transform(workloads.Transform)},
	}
	// A shard sees only its Rollouts: every other object is reached from a
	// Rollout (owner references, the target index), so the objects of other
	// shards' Rollouts are never acted on.
	rollouts := cache.ByObject{Transform: intern.Transform(rollout.StripRollout)}
	if shard != nil {
		rollouts.Label = shard
	}
	byObject[&sluicev1.Rollout{}] = rollouts
	profiling := opts.ProfilingAddr
	if profiling == "" {
		profiling = "0"
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"}, // served below, by metricsMux
		HealthProbeBindAddress:  opts.HealthProbeAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        LeaseName(shard, watched...),
		PprofBindAddress:        profiling,
		LeaderElectionNamespace: opts.LeaderElectionNS,
		LeaseDuration:           nonZero(opts.LeaseDuration),
		RenewDeadline:           nonZero(opts.RenewDeadline),
		RetryPeriod:             nonZero(opts.RetryPeriod),
		// A stopping leader (a rolling update, a scale-down) hands the Lease
		// over at once instead of making the other replica wait out its
		// duration. Safe because the Lease is released only after the
		// reconciles have ended, and the binary exits right after.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.AllowRestart)},
		Cache: cache.Options{
			DefaultTransform:  defaultTransform,
			ByObject:          byObject,
			DefaultNamespaces: cacheNamespaces(watched),
		},
	})
	if err != nil {
		return nil, err
	}
	// Workloads are cached whole only when a Rollout targets them, which
	// the cached Rollouts' target index answers (rollout.CachedWorkloads).
	workloads.Rollouts = mgr.GetCache()
	if addr := opts.MetricsAddr; addr != "" && addr != "0" {
		// Sluice's own /metrics rather than controller-runtime's server,
		// which builds every series as objects at each scrape. Added as an
		// HTTP server, it serves from the start, before the caches sync and
		// whether or not this replica leads.
		endpoint := &manager.Server{Name: "metrics", Server: &http.Server{
			Addr:              addr,
			Handler:           metricsMux(),
			MaxHeaderBytes:    1 << 20,
			IdleTimeout:       90 * time.Second,
			ReadHeaderTimeout: 30 * time.Second,
		}, ShutdownTimeout: ptr.To(time.Minute)}
		if err := mgr.Add(endpoint); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	ready := &cacheSynced{cache: mgr.GetCache()}
	if err := mgr.Add(ready); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("cache-synced", ready.check); err != nil {
		return nil, err
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	metrics := opts.Metrics
	if metrics == nil {
		// The API reader: the cache keeps no Secret data, and MetricTemplates
		// are read only when a check uses them.
		external, err := kubernetes.NewRESTClient(mgr.GetConfig())
		if err != nil {
			return nil, fmt.Errorf("external metrics client: %w", err)
		}
		p, err := analysis.NewPrometheus(mgr.GetAPIReader(), analysis.PrometheusOptions{
			Address: opts.PrometheusAddress, Timeout: opts.PrometheusTimeout,
			Gateway: analysis.GatewayFlavor(opts.GatewayFlavor), Egress: policy,
			ClusterSecretNamespace: opts.ClusterTemplateSecretNamespace,
			Kube:                   external,
		})
		if err != nil {
			return nil, fmt.Errorf("metrics provider: %w", err)
		}
		metrics = p
	}
	hooks := &webhooks.Client{HTTP: hc}
	dispatcher, err := notifier(cfg, opts, hooks)
	if err != nil {
		return nil, err
	}
	// Sluice's own recorder rather than controller-runtime's: client-go's
	// broadcaster kept a copy of every Event for six minutes or more.
	eventsAPI, err := eventsclient.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("events client: %w", err)
	}
	events := recorder.New(eventsAPI, mgr.GetScheme(), "sluice", ctrl.Log.WithName("events"))
	// The Services and routes are read and written through one client that
	// remembers its own writes (internal/ownwrites).
	routes := ownwrites.NewClient(mgr.GetClient())
	meta, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("metadata client: %w", err)
	}
	r := &rollout.Reconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Sharded:     shard != nil,
		Recorder:    rollout.CountEvents(events),
		Clock:       clk,
		Routers:     routers.New(routes, mgr.GetRESTMapper()).For,
		RouteClient: routes,
		// The status writes, answered with metadata only.
		RolloutMetadata: meta.Resource(sluicev1.GroupVersion.WithResource("rollouts")),
		Metrics:         metrics,
		Webhooks:        hooks,
		Notifier:        dispatcher,
		AlertHTTP:       alertClient(policy),
		// Autoscalers are read from the cache itself: the client would read
		// unstructured kinds (KEDA's ScaledObjects) live on every reconcile.
		Autoscalers: autoscaling.New(mgr.GetClient(), mgr.GetCache(), mgr.GetRESTMapper(), hpa.Kind{}, keda.Kind{}),

		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return &outlasting{Manager: mgr, outlets: []manager.Runnable{events, manager.RunnableFunc(dispatcher.Run)}}, nil
}

// outlasting is a manager that runs the outlets of the reconcilers' words,
// the event recorder and the notifier, from before it starts until after it
// has stopped. Added to the manager, as runnables that need no leader, they
// stopped first: controller-runtime stops those before the reconcilers, and
// a stop waits for the reconciles that record the answers of the hooks in
// flight (controllers/rollout's drain). Those reconciles recorded decisions
// whose events and notifications then went to nobody.
type outlasting struct {
	manager.Manager
	outlets []manager.Runnable
}

// Start runs the manager until ctx ends, the outlets until it has stopped;
// it returns once they have written what they hold (the recorder drains
// its queue, for at most a few seconds).
func (m *outlasting) Start(ctx context.Context) error {
	outletCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, o := range m.outlets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o.Start(outletCtx); err != nil {
				ctrl.Log.Error(err, "an outlet of events or notifications stopped")
			}
		}()
	}
	err := m.Manager.Start(ctx)
	stop()
	wg.Wait()
	return err
}

// webhookClient is the HTTP client of the webhook calls: the given one (when
// nil, a client whose connections pass the egress policy), sending the
// token of WebhookTokenFile to WebhookTokenHosts when set. It has no timeout
// of its own: each attempt has its webhook's timeout (pkg/webhooks), which a
// shorter one would cut silently.
func webhookClient(opts Options, policy *egress.Policy) (*http.Client, error) {
	hc := opts.WebhookClient
	if hc == nil {
		hc = &http.Client{Transport: policy.Transport(nil)}
	}
	if opts.WebhookTokenFile == "" {
		if len(opts.WebhookTokenHosts) > 0 {
			return nil, errors.New("--webhook-token-hosts needs --webhook-token-file")
		}
		return hc, nil
	}
	if len(opts.WebhookTokenHosts) == 0 {
		return nil, errors.New("--webhook-token-file needs --webhook-token-hosts: the webhook hosts the token is sent to (never every webhook: Rollout authors choose their URLs)")
	}
	hc, err := webhooks.WithToken(hc, opts.WebhookTokenFile, opts.WebhookTokenHosts)
	if err != nil {
		return nil, fmt.Errorf("--webhook-token-file: %w", err)
	}
	return hc, nil
}

// alertClient is the HTTP client of the alerts: AlertProviders' URLs are
// their authors' choice, so every connection passes the egress policy, no
// redirect is followed (a 3xx is a failed delivery), and no token is sent.
func alertClient(policy *egress.Policy) *http.Client {
	return &http.Client{
		Transport:     policy.Transport(nil),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cacheSynced is the readiness of a manager: ready once its informer cache
// has synced, so a replica that cannot list from the API server is not
// ready. The cache runs on every replica, leader or not, so both replicas of
// an HA pair become ready. It latches: an informer added later (a router's
// route kind, watched once a Rollout uses it) that cannot sync, say for want
// of RBAC, stalls those Rollouts, not the whole manager.
type cacheSynced struct {
	cache  cache.Cache
	synced atomic.Bool
}

// Start waits for the first sync of the cache. It runs on every replica.
func (c *cacheSynced) Start(ctx context.Context) error {
	if c.cache.WaitForCacheSync(ctx) {
		c.synced.Store(true)
	}
	return nil
}

// NeedLeaderElection is false: a replica waiting for the Lease is ready too.
func (*cacheSynced) NeedLeaderElection() bool { return false }

func (c *cacheSynced) check(*http.Request) error {
	if !c.synced.Load() {
		return errors.New("the informer cache has not synced yet")
	}
	return nil
}

// notifier builds the notification dispatcher from the Secret and the event
// webhook URL. It always exists: Rollouts' own event webhooks go through it,
// called by hooks; the operator's targets are trusted and called directly.
func notifier(cfg *rest.Config, opts Options, hooks *webhooks.Client) (*notify.Dispatcher, error) {
	var senders []notify.Sender
	if opts.NotifySecret != "" {
		ns, name, ok := strings.Cut(opts.NotifySecret, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--notify-secret %q: want NAMESPACE/NAME", opts.NotifySecret)
		}
		// Read once at start with a plain client: the manager's cache is
		// not running yet and keeps no Secret data anyway.
		c, err := client.New(cfg, client.Options{})
		if err != nil {
			return nil, err
		}
		sec := &corev1.Secret{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, sec); err != nil {
			return nil, fmt.Errorf("--notify-secret %s: %w", opts.NotifySecret, err)
		}
		s, err := notify.FromSecretData(sec.Data)
		if err != nil {
			return nil, fmt.Errorf("--notify-secret %s: %w", opts.NotifySecret, err)
		}
		senders = append(senders, s...)
	}
	if opts.EventWebhookURL != "" {
		s, err := notify.EventSender(opts.EventWebhookURL)
		if err != nil {
			return nil, fmt.Errorf("--event-webhook-url: %w", err)
		}
		senders = append(senders, s)
	}
	return notify.NewDispatcher(senders, hooks, notifyQueueSize, ctrl.Log.WithName("notify")), nil
}

// notifyQueueSize bounds the notifications waiting per sender.
const notifyQueueSize = 100

// metricsMux serves /metrics: what controller-runtime and Sluice register
// in the registry, then each Rollout's state, written from the cache.
func metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsendpoint.Handler(ctrlmetrics.Registry, rollout.RolloutState))
	return mux
}
