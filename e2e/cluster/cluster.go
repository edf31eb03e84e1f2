// Package cluster runs a real local Kubernetes for Sluice's end-to-end tests
// and demo: etcd and kube-apiserver (envtest), kube-controller-manager,
// kube-scheduler and kwok (a fake node whose pods become ready), one real
// backend process per ready pod in its own network namespace at the pod's
// IP, Traefik as the Gateway API data plane, Debian's Prometheus scraping
// Traefik and Sluice, the loadtester, and Sluice's manager. Everything
// listens on loopback or on a private bridge (10.213.0.1/24) that the
// cluster creates and removes.
package cluster

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-dev/sluice/internal/freeport"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// Gateway names the cluster's Gateway (in namespace GatewayNamespace).
const (
	GatewayNamespace = "infra"
	GatewayName      = "public"
	GatewayClass     = "traefik"
	NodeName         = "kwok-node-0"
)

// ManagerLeaseNamespace holds the manager's leader election Lease; the API
// server creates it at start.
const ManagerLeaseNamespace = "kube-system"

// Options configure a cluster.
type Options struct {
	// Dir holds logs, kubeconfig and data (a new temporary directory when empty).
	Dir string
	// Progress receives one line per start-up step (nothing when nil).
	Progress io.Writer
	// RealNode runs a real kubelet with containerd and runc, kube-proxy,
	// CoreDNS and metrics-server instead of kwok, and installs Sluice with
	// its Helm chart from the images of `make images` (see node.go).
	RealNode bool
}

// Cluster is a running local cluster.
type Cluster struct {
	Dir        string
	Config     *rest.Config
	Client     client.Client
	Kube       kubernetes.Interface
	KubeConfig string // path of an admin kubeconfig

	// GatewayURL is Traefik's entry point (the Gateway's listener).
	GatewayURL  string
	GatewayPort int
	// TraefikMetricsURL is Traefik's /metrics.
	TraefikMetricsURL string
	// PrometheusURL is the Prometheus that scrapes Traefik and Sluice.
	PrometheusURL string
	// LoadtesterURL is the loadtester's base URL, as the host reaches it.
	LoadtesterURL string
	// LoadtesterHookURL is the loadtester's base URL for Rollout webhooks,
	// as Sluice reaches it: on the real node its Service's DNS name
	// (resolved by the cluster's CoreDNS), else LoadtesterURL.
	LoadtesterHookURL string
	// LoadtesterToken is the loadtester's bearer token, needed to open
	// and close gates and start load runs: on the real node the one the
	// chart generated, else empty (the loadtester process has none).
	LoadtesterToken string
	// ManagerMetricsURL is Sluice's /metrics.
	ManagerMetricsURL string

	// Figures holds the start-up durations of each component.
	Figures []Figure

	bins     binaries
	stateDir string
	progress io.Writer
	env      *testenv.Env
	lock     *os.File

	mu      sync.Mutex
	procs   map[string]*Proc
	manager *Proc
	// mgrArgs are the manager's flags, kept across restarts; mgrHealth is
	// the address of its probes.
	mgrArgs   []string
	mgrHealth string
	pods      *podRunner
	node      *realNode
	// sluice is the main installation of the chart on the real node.
	sluice *Sluice
	gates  *readyGates
	// bg lives from the node's start to Stop: the harness's own watchers.
	bg             context.Context
	stopBackground context.CancelFunc
	// images maps a short name (manager, loadtester, testapp, coredns,
	// metrics-server) to the image reference the real node runs.
	images    map[string]string
	imagesDir string
	// holds keep the pods any of them returns true for not ready
	// (HoldReady); stories side by side each add their own.
	holdsMu sync.Mutex
	holds   map[int]func(*corev1.Pod) bool
	nextID  int
	stopped bool
}

// Figure is a measured duration.
type Figure struct {
	Name string
	D    time.Duration
}

func (c *Cluster) logf(format string, args ...any) {
	if c.progress != nil {
		_, _ = fmt.Fprintf(c.progress, "[cluster] "+format+"\n", args...)
	}
}

func (c *Cluster) measure(name string, start time.Time) {
	d := time.Since(start)
	c.Figures = append(c.Figures, Figure{name, d})
	c.logf("%s ready in %s", name, d.Round(time.Millisecond))
}

// StateDir is where the harness keeps its lock and the PIDs of what it
// started, so that the next run can clean up after a crashed one.
func StateDir() string {
	if d := os.Getenv("SLUICE_E2E_STATE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "sluice-e2e-state")
}

// Sweep removes what a previous run left behind: its processes (as
// recorded in the state directory), pod namespaces, veths and the bridge.
// It holds no lock; Start calls it under the run lock.
func Sweep() []string {
	var out []string
	for _, p := range sweepProcs(StateDir()) {
		out = append(out, "process "+p)
	}
	out = append(out, sweepNode(StateDir())...)
	return append(out, sweepNetwork()...)
}

// Start builds what is missing and starts the whole cluster. On error
// everything started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: opts.Dir, progress: opts.Progress, stateDir: StateDir(), procs: map[string]*Proc{}}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "sluice-e2e-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.stateDir, 0o755); err != nil {
		return nil, err
	}
	if err := c.takeLock(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	if left := Sweep(); len(left) > 0 {
		c.logf("removed leftovers of a previous run: %s", strings.Join(left, ", "))
	}
	t0 := time.Now()
	c.logf("building binaries (cached after the first run; the first Traefik build takes ~10 min)")
	if c.bins, err = buildBinaries(ctx, c.Dir, opts.RealNode, c.progress); err != nil {
		return c, err
	}
	c.measure("binaries", t0)

	if err = setupBridge(); err != nil {
		return c, fmt.Errorf("creating the test bridge: %w", err)
	}
	if opts.RealNode {
		return c, c.startOnRealNode(ctx)
	}

	t0 = time.Now()
	crds, err := testenv.RouterCRDPaths()
	if err != nil {
		return c, err
	}
	if c.env, err = testenv.Start(crds...); err != nil {
		return c, err
	}
	registerChildren(c.stateDir, "etcd", "kube-apiserver")
	c.Config = rest.CopyConfig(c.env.Config)
	c.Config.QPS, c.Config.Burst = 200, 400
	kc, err := c.env.KubeConfig()
	if err != nil {
		return c, err
	}
	c.KubeConfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.KubeConfig, kc, 0o600); err != nil {
		return c, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: manager.Scheme()}); err != nil {
		return c, err
	}
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	c.measure("etcd + kube-apiserver (with Sluice, Gateway API and Istio CRDs)", t0)

	t0 = time.Now()
	if err := c.startControlPlane(ctx, e2eNode); err != nil {
		return c, err
	}
	c.measure("kube-controller-manager + kube-scheduler + kwok (node Ready)", t0)

	c.pods = newPodRunner(c)
	if err := c.pods.start(ctx); err != nil {
		return c, err
	}

	t0 = time.Now()
	if err := c.startTraefik(ctx); err != nil {
		return c, err
	}
	c.measure("traefik (Gateway programmed)", t0)

	t0 = time.Now()
	if err := c.startLoadtester(ctx); err != nil {
		return c, err
	}
	if err := c.startPrometheus(ctx); err != nil {
		return c, err
	}
	c.measure("loadtester + prometheus", t0)

	t0 = time.Now()
	if err := c.StartManager(ctx); err != nil {
		return c, err
	}
	c.measure("sluice manager", t0)
	return c, nil
}

// takeLock makes sure one cluster runs at a time on this machine (they
// share the bridge and its range).
func (c *Cluster) takeLock() error {
	f, err := os.OpenFile(filepath.Join(c.stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return fmt.Errorf("another e2e cluster runs on this machine (lock %s held): %w", f.Name(), err)
	}
	c.lock = f
	return nil
}

func (c *Cluster) start(name string, env []string, bin string, args ...string) (*Proc, error) {
	p, err := startProc(c.stateDir, c.Dir, name, env, bin, args...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p, nil
}

// fakeNode shapes the control plane's kwok node: its kwok configuration and
// stages, where pod IPs come from, how many pods it holds, and extra flags
// for the controllers and the scheduler.
type fakeNode struct {
	stages   []byte
	cidr     string
	pods     string
	ctrlArgs []string
}

// e2eNode is the e2e cluster's node: pods Ready only when their backend
// answers, in the bridge's range.
var e2eNode = fakeNode{stages: kwokStages, cidr: PodCIDR, pods: "5000"}

func (c *Cluster) startControlPlane(ctx context.Context, fn fakeNode) error {
	if _, err := c.start("kube-controller-manager", nil, c.bins.kcm, append([]string{
		"--kubeconfig=" + c.KubeConfig,
		"--controllers=deployment,replicaset,endpointslice,endpoint,garbagecollector,serviceaccount,namespace,nodelifecycle",
		"--leader-elect=false",
		"--secure-port=0",
		"--bind-address=127.0.0.1",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--v=1",
	}, fn.ctrlArgs...)...); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", nil, c.bins.scheduler, append([]string{
		"--kubeconfig=" + c.KubeConfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--bind-address=127.0.0.1",
		"--v=1",
	}, fn.ctrlArgs...)...); err != nil {
		return err
	}
	kwokAddr, err := freeAddr()
	if err != nil {
		return err
	}
	stages := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, fn.stages, 0o644); err != nil {
		return err
	}
	if _, err := c.start("kwok", nil, c.bins.kwok,
		"--kubeconfig="+c.KubeConfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=",
		"--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=",
		"--cidr="+fn.cidr,
		"--node-ip="+NodeIP,
		"--node-lease-duration-seconds=40",
		"--server-address="+kwokAddr,
		"--config="+stages,
	); err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux"},
		},
		Spec: corev1.NodeSpec{PodCIDR: fn.cidr, PodCIDRs: []string{fn.cidr}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{"cpu": resource.MustParse("64"), "memory": resource.MustParse("256Gi"), "pods": resource.MustParse(fn.pods)},
			Capacity:    corev1.ResourceList{"cpu": resource.MustParse("64"), "memory": resource.MustParse("256Gi"), "pods": resource.MustParse(fn.pods)},
		},
	}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating the fake node: %w", err)
	}
	// Ready when the node is Ready and has no taint left (nodelifecycle
	// removes the not-ready taint).
	return c.waitFor(ctx, 60*time.Second, "the fake node to be Ready and untainted", func() (bool, error) {
		n := &corev1.Node{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: NodeName}, n); err != nil {
			return false, err
		}
		if len(n.Spec.Taints) > 0 {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// traefikBuckets are the latency buckets Traefik exports (seconds).
const traefikBuckets = "0.005,0.01,0.025,0.05,0.075,0.1,0.15,0.2,0.25,0.3,0.4,0.5,0.75,1,2.5,5"

func (c *Cluster) startTraefik(ctx context.Context) error {
	if c.node != nil {
		if err := c.startTraefikPod(ctx); err != nil {
			return err
		}
		return c.createGateway(ctx, c.GatewayPort, nil)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	// On the real node the Gateway listens on the bridge, where pods (the
	// loadtester) reach it too.
	host := "127.0.0.1"
	if c.node != nil {
		host = BridgeIP
	}
	c.GatewayPort = port
	c.GatewayURL = fmt.Sprintf("http://%s:%d", host, port)
	c.TraefikMetricsURL = "http://" + metricsAddr + "/metrics"
	if _, err := c.start("traefik", []string{"KUBECONFIG=" + c.KubeConfig}, c.bins.traefik,
		"--global.checkNewVersion=false",
		"--global.sendAnonymousUsage=false",
		"--log.level=INFO",
		fmt.Sprintf("--entryPoints.web.address=%s:%d", host, port),
		"--entryPoints.metrics.address="+metricsAddr,
		"--providers.kubernetesgateway=true",
		// Apply route changes at once (the default holds them for 2s).
		"--providers.providersThrottleDuration=100ms",
		"--metrics.prometheus=true",
		"--metrics.prometheus.entryPoint=metrics",
		"--metrics.prometheus.addServicesLabels=true",
		"--metrics.prometheus.addRoutersLabels=true",
		"--metrics.prometheus.buckets="+traefikBuckets,
	); err != nil {
		return err
	}
	return c.createGateway(ctx, port, c.procs["traefik"])
}

// createGateway creates the GatewayClass and the Gateway (listener on
// port) and waits until Traefik has programmed it; proc, when set, is the
// Traefik process to watch.
func (c *Cluster) createGateway(ctx context.Context, port int, proc *Proc) error {
	objs := []client.Object{
		&gwv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: GatewayClass},
			Spec:       gwv1.GatewayClassSpec{ControllerName: "traefik.io/gateway-controller"},
		},
		&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: GatewayName, Namespace: GatewayNamespace},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: GatewayClass,
				Listeners: []gwv1.Listener{{
					Name: "web", Port: gwv1.PortNumber(port), Protocol: gwv1.HTTPProtocolType,
					AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr.To(gwv1.NamespacesFromAll)}},
				}},
			},
		},
	}
	if proc != nil {
		objs = append([]client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: GatewayNamespace}}}, objs...)
	}
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return c.waitFor(ctx, 60*time.Second, "Traefik to program the Gateway", func() (bool, error) {
		if proc != nil && proc.Exited() {
			return false, fmt.Errorf("traefik exited:\n%s", proc.Tail(4000))
		}
		gw := &gwv1.Gateway{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: GatewayNamespace, Name: GatewayName}, gw); err != nil {
			return false, err
		}
		for _, cond := range gw.Status.Conditions {
			if cond.Type == string(gwv1.GatewayConditionProgrammed) && cond.Status == metav1.ConditionTrue {
				return httpOK(c.TraefikMetricsURL), nil
			}
		}
		return false, nil
	})
}

func (c *Cluster) startLoadtester(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	c.LoadtesterURL = "http://" + addr
	c.LoadtesterHookURL = c.LoadtesterURL
	if _, err := c.start("loadtester", nil, c.bins.loadtester,
		"--listen="+addr, "--state-file="+filepath.Join(c.Dir, "gates.json")); err != nil {
		return err
	}
	return c.waitFor(ctx, 20*time.Second, "the loadtester", func() (bool, error) {
		resp, err := http.Post(c.LoadtesterURL+"/gate/approve", "application/json", strings.NewReader(`{"name":"probe","namespace":"probe"}`))
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
}

func (c *Cluster) startPrometheus(ctx context.Context) error {
	if c.node != nil {
		return c.startPrometheusPod(ctx)
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		bin = "/usr/bin/prometheus"
		if _, err := os.Stat(bin); err != nil {
			return errors.New("prometheus not found: run hack/prometheus/install.sh (Debian's prometheus package)")
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	mgrAddr, err := freeAddr()
	if err != nil {
		return err
	}
	traefikTarget := strings.TrimSuffix(strings.TrimPrefix(c.TraefikMetricsURL, "http://"), "/metrics")
	// Traefik and Sluice every second; Sluice's target is its process.
	c.ManagerMetricsURL = "http://" + mgrAddr + "/metrics"
	cfg := prometheusConfig(traefikTarget, fmt.Sprintf("static_configs: [{targets: [%q]}]", mgrAddr))
	cfgPath := filepath.Join(c.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	c.PrometheusURL = "http://" + addr
	if _, err := c.start("prometheus", nil, bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(c.Dir, "prometheus-data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	); err != nil {
		return err
	}
	return c.waitFor(ctx, 20*time.Second, "prometheus", func() (bool, error) {
		return httpOK(c.PrometheusURL + "/-/ready"), nil
	})
}

// prometheusConfig scrapes Traefik and Sluice (scrapeSluice, a scrape
// config's targets part) every second.
func prometheusConfig(traefikTarget, scrapeSluice string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: traefik
    static_configs: [{targets: [%q]}]
  - job_name: sluice
    %s
`, traefikTarget, scrapeSluice)
}

//go:embed kwok-stages.yaml
var kwokStages []byte

// HoldReady keeps the pods for which hold returns true not ready (their
// backend runs, but the pod is not marked Ready), like pods whose readiness
// probe fails, until the returned release is called. Pods already ready are
// not changed. Holds add up: stories running side by side each keep their
// own pods.
func (c *Cluster) HoldReady(hold func(*corev1.Pod) bool) (release func()) {
	c.holdsMu.Lock()
	if c.holds == nil {
		c.holds = map[int]func(*corev1.Pod) bool{}
	}
	id := c.nextID
	c.nextID++
	c.holds[id] = hold
	c.holdsMu.Unlock()
	return func() {
		c.holdsMu.Lock()
		delete(c.holds, id)
		c.holdsMu.Unlock()
		if c.gates != nil {
			c.gates.resync()
		}
	}
}

// held reports whether a HoldReady keeps pod not ready.
func (c *Cluster) held(pod *corev1.Pod) bool {
	c.holdsMu.Lock()
	defer c.holdsMu.Unlock()
	for _, hold := range c.holds {
		if hold(pod) {
			return true
		}
	}
	return false
}

// StartManager starts Sluice's manager binary (again, after StopManager or
// KillManager) and waits for its health probe.
func (c *Cluster) StartManager(ctx context.Context) error {
	if c.node != nil {
		return c.sluice.WaitReady(ctx)
	}
	c.mu.Lock()
	if c.mgrArgs == nil {
		health, err := freeAddr()
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.mgrHealth = health
		c.mgrArgs = []string{
			"--kubeconfig=" + c.KubeConfig,
			// Leader election on, as it ships; kube-system always exists.
			// A manager started after a kill waits for the dead one's
			// Lease to expire (about 15s) before it reconciles.
			"--leader-election-namespace=" + ManagerLeaseNamespace,
			"--prometheus-address=" + c.PrometheusURL,
			// The loadtester and the stories' hook receivers run on
			// loopback next to this manager, which the egress policy
			// denies by default. (On the real node they are pods and
			// the host's bridge address: nothing to allow.)
			"--webhook-egress-allow=127.0.0.1/32",
			"--gateway-flavor=traefik",
			"--metrics-bind-address=" + strings.TrimSuffix(strings.TrimPrefix(c.ManagerMetricsURL, "http://"), "/metrics"),
			"--health-probe-bind-address=" + health,
			"--log-dev",
		}
	}
	args, health := c.mgrArgs, c.mgrHealth
	c.mu.Unlock()
	p, err := c.start("sluice-manager", nil, c.bins.manager, args...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.manager = p
	c.mu.Unlock()
	return c.waitFor(ctx, 30*time.Second, "the Sluice manager", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("the manager exited:\n%s", p.Tail(4000))
		}
		return httpOK("http://" + health + "/readyz"), nil
	})
}

// StartSecondManager starts another manager process with the same flags
// but its own metrics and probe addresses, as a second replica or the new
// pod of a rolling upgrade would run; it returns the process and its
// metrics URL. The caller stops it. On the real node the chart's second
// replica is that manager: no process, and the URL of its pod's metrics.
func (c *Cluster) StartSecondManager(ctx context.Context) (*Proc, string, error) {
	if c.node != nil {
		// The chart already runs two: the second is the one without the Lease.
		url, err := c.sluice.NonLeaderMetricsURL(ctx)
		return nil, url, err
	}
	c.mu.Lock()
	base := append([]string(nil), c.mgrArgs...)
	c.mu.Unlock()
	if base == nil {
		return nil, "", fmt.Errorf("the first manager was never started")
	}
	health, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	var args []string
	for _, a := range base {
		switch {
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + health
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + metrics
		}
		args = append(args, a)
	}
	p, err := c.start("sluice-manager-2", nil, c.bins.manager, args...)
	if err != nil {
		return nil, "", err
	}
	err = c.waitFor(ctx, 30*time.Second, "the second Sluice manager", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("the second manager exited:\n%s", p.Tail(4000))
		}
		return httpOK("http://" + health + "/readyz"), nil
	})
	return p, "http://" + metrics + "/metrics", err
}

// StopManagerGracefully stops the manager (the leader's pod on the real
// node) gracefully (SIGTERM), as Kubernetes stops the old pod of a rolling
// upgrade.
func (c *Cluster) StopManagerGracefully() {
	if c.node != nil {
		c.sluice.StopLeaderGracefully()
		return
	}
	c.mu.Lock()
	p := c.manager
	c.manager = nil
	c.mu.Unlock()
	if p != nil {
		p.Stop(10 * time.Second)
	}
}

// ManagerLeaseHolder returns the identity that holds the manager's Lease
// ("" when none does).
func (c *Cluster) ManagerLeaseHolder(ctx context.Context) string {
	if c.node != nil {
		return c.sluice.LeaseHolder(ctx)
	}
	l := &coordinationv1.Lease{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ManagerLeaseNamespace, Name: manager.LeaderElectionID}, l); err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// KillManager kills the manager with SIGKILL (a crash: no graceful stop).
func (c *Cluster) KillManager() {
	if c.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.sluice.CrashLeader(ctx)
		return
	}
	c.mu.Lock()
	p := c.manager
	c.manager = nil
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// EnsureManager starts the manager when it is not running (after a story
// that killed it failed before restarting it).
func (c *Cluster) EnsureManager(ctx context.Context) error {
	if c.node != nil {
		return c.sluice.WaitReady(ctx)
	}
	c.mu.Lock()
	running := c.manager != nil && !c.manager.Exited()
	c.mu.Unlock()
	if running {
		return nil
	}
	return c.StartManager(ctx)
}

// ManagerLog returns the end of the manager's log.
func (c *Cluster) ManagerLog(n int) string {
	if c.node != nil {
		return c.sluice.Log(n)
	}
	return tailFile(filepath.Join(c.Dir, "sluice-manager.log"), n)
}

// Logs returns the end of each component's log, for a failed test.
func (c *Cluster) Logs(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for name, p := range c.procs {
		fmt.Fprintf(&b, "----- %s (%s) -----\n%s\n", name, p.Log, p.Tail(n))
	}
	return b.String()
}

// Stop stops everything in reverse order and removes the pod namespaces,
// veths and the bridge. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	procs := c.procs
	c.mu.Unlock()
	if c.node != nil {
		// How far into the pod range this run went: host-local hands the
		// addresses out in turn, and a run that wraps around reuses ones
		// a gateway may still map to a gone pod (see node.go).
		if last, err := os.ReadFile(filepath.Join(c.node.dir, "ipam", cniNetworkName, "last_reserved_ip.0")); err == nil {
			c.logf("last pod address handed out: %s (range %s-%s)", strings.TrimSpace(string(last)), realPodRangeFrom, realPodRangeTo)
		}
	}
	c.logf("tearing down")
	if c.stopBackground != nil {
		c.stopBackground()
	}
	ordered := []string{"sluice-manager", "loadtester", "prometheus", "traefik", "kwok", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"}
	for name, p := range procs {
		// What a caller started itself (StartProcess) goes first.
		if !slices.Contains(ordered, name) && name != "containerd" && name != "kube-apiserver" && name != "etcd" {
			p.Stop(5 * time.Second)
		}
	}
	for _, name := range ordered {
		if p := procs[name]; p != nil {
			p.Stop(5 * time.Second)
		}
	}
	if c.node != nil {
		// The pods die with their shims; containerd goes after them, then
		// the API server and etcd, then what they left on the host.
		killPods()
		if p := procs["containerd"]; p != nil {
			p.Stop(5 * time.Second)
		}
		for _, name := range []string{"kube-apiserver", "etcd"} {
			if p := procs[name]; p != nil {
				p.Stop(5 * time.Second)
			}
		}
		sweepNode(c.stateDir)
	}
	if c.pods != nil {
		c.pods.stopAll()
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			c.logf("stopping the API server: %v", err)
		} else if old, err := filepath.Glob(filepath.Join(c.stateDir, "procs", "envtest-*")); err == nil {
			for _, f := range old {
				_ = os.Remove(f)
			}
		}
	}
	sweepNetwork()
	if c.lock != nil {
		_ = c.lock.Close()
	}
}

func (c *Cluster) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not done within %s (last error: %v)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PostLoadtester POSTs a JSON body to one of the loadtester's endpoints,
// as an approver would, with the token when there is one, and returns the
// status code and the answer's text.
func (c *Cluster) PostLoadtester(ctx context.Context, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.LoadtesterURL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.LoadtesterToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.LoadtesterToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

func httpOK(url string) bool {
	hc := http.Client{Timeout: time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freeAddr() (string, error) { return freeport.Addr() }

func freePort() (int, error) { return freeport.Port() }
