package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// The real node's addresses. The API server and the kubelet listen on the
// bridge's own address (the pods' gateway), so pods reach them and nothing
// listens on the machine's other interfaces; pods get addresses from all of
// the bridge's /24 above the first ten (kwok's range, the upper half, is
// unused in this mode) and Services from a range routed nowhere but
// kube-proxy.
//
// The pod range is as wide as it can be because host-local hands addresses
// out in turn and reuses one only after the whole range: a reused address
// belongs to a new pod with a new MAC while a gateway's netns may still hold
// the old pod's in its neighbour cache, and sends to it for several seconds
// (seen in e2e: with 111 addresses a run of 180 pods wrapped around, and
// Traefik's requests to a target pod that had just started hung until the
// client gave up). A run of make e2e starts under 200 pods.
const (
	RealNodeName     = "sluice-node"
	APIServerPort    = 16443
	ServiceCIDR      = "10.214.0.0/24"
	kubernetesSvcIP  = "10.214.0.1"
	ClusterDNSIP     = "10.214.0.10"
	realPodRangeFrom = "10.213.0.10"
	realPodRangeTo   = "10.213.0.254"
	cniNetworkName   = "sluice-e2e"
	// forwardChain keeps pods from reaching anything beyond the bridge:
	// the bridge plugin turns on IP forwarding (Services need it), and
	// without this chain a pod's packets to any address would leave the
	// machine through its default route.
	forwardChain = "SLUICE-E2E-FWD"
)

//go:embed node-addons.yaml
var nodeAddons string

//go:embed traefik-pod.yaml
var traefikPod string

// gatewayPortOnNode is the Traefik pod's web entry point, which is also the
// Gateway listener's port.
const gatewayPortOnNode = 8000

// realNode is what the real-node mode runs beside the control plane.
type realNode struct {
	dir        string // <run dir>/node
	pki        pki
	containerd string // containerd's socket
	etcdURL    string
}

func (c *Cluster) startRealNode(ctx context.Context) error {
	n := &realNode{dir: filepath.Join(c.Dir, "node")}
	n.pki = pki{dir: filepath.Join(n.dir, "pki")}
	c.node = n
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	// Sweep finds this directory after a crashed run (mounts, shims).
	if err := os.WriteFile(filepath.Join(c.stateDir, "node-dir"), []byte(n.dir), 0o644); err != nil {
		return err
	}
	if err := saveSysctls(c.stateDir); err != nil {
		return err
	}
	if err := saveNftTables(c.stateDir); err != nil {
		return err
	}
	if err := fenceBridge(); err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP(BridgeIP), net.ParseIP(kubernetesSvcIP), net.ParseIP("127.0.0.1")}
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if err := n.pki.write(ips, names); err != nil {
		return fmt.Errorf("writing the node's certificates: %w", err)
	}
	c.KubeConfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.KubeConfig, []byte(n.pki.kubeconfig(fmt.Sprintf("https://%s:%d", BridgeIP, APIServerPort))), 0o600); err != nil {
		return err
	}

	t0 := time.Now()
	if err := c.startRealControlPlane(ctx, n); err != nil {
		return err
	}
	c.measure("etcd + kube-apiserver (with Sluice, Gateway API and Istio CRDs)", t0)

	t0 = time.Now()
	if err := c.startContainerd(ctx, n); err != nil {
		return err
	}
	c.measure("containerd + images", t0)

	t0 = time.Now()
	if err := c.startKubelet(ctx, n); err != nil {
		return err
	}
	c.measure("kube-controller-manager + kube-scheduler + kubelet + kube-proxy (node Ready)", t0)

	t0 = time.Now()
	if err := c.applyAddons(ctx); err != nil {
		return err
	}
	c.measure("coredns + metrics-server", t0)
	return nil
}

func (c *Cluster) startRealControlPlane(ctx context.Context, n *realNode) error {
	etcdPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		return err
	}
	n.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	if _, err := c.start("etcd", nil, filepath.Join(assets, "etcd"),
		"--data-dir="+filepath.Join(n.dir, "etcd"),
		"--listen-client-urls="+n.etcdURL,
		"--advertise-client-urls="+n.etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return err
	}
	p := n.pki.path
	if _, err := c.start("kube-apiserver", nil, filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+n.etcdURL,
		"--bind-address="+BridgeIP,
		"--advertise-address="+BridgeIP,
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--tls-cert-file="+p("apiserver.crt"),
		"--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"),
		"--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+p("admin.crt"),
		"--kubelet-client-key="+p("admin.key"),
		"--kubelet-preferred-address-types=InternalIP",
		// The aggregation layer, for metrics.k8s.io (metrics-server).
		"--requestheader-client-ca-file="+p("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--proxy-client-cert-file="+p("front-proxy-client.crt"),
		"--proxy-client-key-file="+p("front-proxy-client.key"),
		"--enable-aggregator-routing=true",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeConfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.Config = cfg
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := c.waitFor(ctx, 60*time.Second, "the API server", func() (bool, error) {
		if p := c.procs["kube-apiserver"]; p.Exited() {
			return false, fmt.Errorf("kube-apiserver exited:\n%s", p.Tail(4000))
		}
		body, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && strings.TrimSpace(string(body)) == "ok", nil
	}); err != nil {
		return err
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: manager.Scheme()}); err != nil {
		return err
	}
	crds, err := testenv.RouterCRDPaths()
	if err != nil {
		return err
	}
	crds = append(crds, filepath.Join(testenv.RepoRoot(), "config", "crd", "bases"))
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	return nil
}

// containerdConfig is the node's own containerd: its own socket, root and
// state under the run's directory, never the machine's containerd.
// restrict_oom_score_adj: nothing here may lower an OOM score (no
// CAP_SYS_RESOURCE), and the CRI asks for -998 on every sandbox. The pause
// image is the project's own (nothing can be pulled).
const containerdConfig = `version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
[grpc]
  address = "{{.Socket}}"
[ttrpc]
  address = "{{.Socket}}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{{.CNIDir}}"
`

// cniConfig puts pods on the harness's bridge. The bridge is their default
// route (the API server and the kubelet listen there, Service addresses are
// translated on the host); no masquerade, and fenceBridge drops anything
// forwarded off the bridge, so nothing leaves the machine.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "{{.Name}}",
  "plugins": [{
    "type": "bridge",
    "bridge": "{{.Bridge}}",
    "isGateway": true,
    "isDefaultGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "{{.Subnet}}", "rangeStart": "{{.From}}", "rangeEnd": "{{.To}}", "gateway": "{{.Gateway}}"}]],
      "dataDir": "{{.IPAMDir}}"
    }
  }]
}
`

func render(tmpl string, data any) ([]byte, error) {
	t, err := template.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, data)
	return b.Bytes(), err
}

func writeRendered(path, tmpl string, data any) error {
	b, err := render(tmpl, data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (c *Cluster) startContainerd(ctx context.Context, n *realNode) error {
	dir := filepath.Join(n.dir, "containerd")
	n.containerd = filepath.Join(dir, "containerd.sock")
	cniDir := filepath.Join(n.dir, "cni")
	if err := writeRendered(filepath.Join(cniDir, "10-sluice-e2e.conflist"), cniConfig, map[string]string{
		"Name": cniNetworkName, "Bridge": BridgeName, "Subnet": "10.213.0.0/24", "Gateway": BridgeIP,
		"From": realPodRangeFrom, "To": realPodRangeTo, "IPAMDir": filepath.Join(n.dir, "ipam"),
	}); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := writeRendered(cfg, containerdConfig, map[string]string{"Dir": dir, "Socket": n.containerd, "CNIDir": cniDir}); err != nil {
		return err
	}
	if _, err := c.start("containerd", nil, "containerd", "--config="+cfg, "--log-level=warn"); err != nil {
		return err
	}
	if err := c.waitFor(ctx, 30*time.Second, "containerd", func() (bool, error) {
		if p := c.procs["containerd"]; p.Exited() {
			return false, fmt.Errorf("containerd exited:\n%s", p.Tail(4000))
		}
		return exec.CommandContext(ctx, "ctr", "--address", n.containerd, "version").Run() == nil, nil
	}); err != nil {
		return err
	}
	archives, err := filepath.Glob(filepath.Join(c.imagesDir, "*.tar"))
	if err != nil || len(archives) == 0 {
		return fmt.Errorf("no images in %s: run make images", c.imagesDir)
	}
	for _, a := range archives {
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.containerd, "-n", "k8s.io", "images", "import", "--digests", a).CombinedOutput()
		if err != nil {
			return fmt.Errorf("importing %s: %v: %s", a, err, out)
		}
	}
	return nil
}

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {{.IP}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.CA}}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{{.Socket}}
clusterDNS: [{{.DNS}}]
clusterDomain: cluster.local
resolvConf: {{.ResolvConf}}
podLogsDir: {{.LogsDir}}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
maxPods: 110
protectKernelDefaults: false
`

const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: {{.Kubeconfig}}}
hostnameOverride: {{.Node}}
bindAddress: {{.IP}}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: 10.213.0.0/24
nodePortAddresses: [{{.IP}}/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false, masqueradeAll: false, syncPeriod: 30s, minSyncPeriod: 0s}
`

func (c *Cluster) startKubelet(ctx context.Context, n *realNode) error {
	p := n.pki.path
	if _, err := c.start("kube-controller-manager", nil, c.bins.kcm,
		"--kubeconfig="+c.KubeConfig,
		"--controllers=*",
		"--leader-elect=false",
		"--secure-port=0",
		"--bind-address=127.0.0.1",
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--horizontal-pod-autoscaler-sync-period=5s",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--v=1",
	); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", nil, c.bins.scheduler,
		"--kubeconfig="+c.KubeConfig, "--leader-elect=false", "--secure-port=0", "--bind-address=127.0.0.1", "--v=1",
	); err != nil {
		return err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	// Pods with dnsPolicy Default (CoreDNS itself) get this: nothing
	// outside the machine is asked.
	if err := os.WriteFile(resolv, []byte("nameserver "+ClusterDNSIP+"\n"), 0o644); err != nil {
		return err
	}
	kcfg := filepath.Join(n.dir, "kubelet.yaml")
	if err := writeRendered(kcfg, kubeletConfig, map[string]string{
		"IP": BridgeIP, "CA": p("ca.crt"), "Socket": n.containerd, "DNS": ClusterDNSIP, "ResolvConf": resolv,
		// Outside the node's directory, which teardown removes: the pods'
		// logs stay with the components' when a test fails.
		"LogsDir": filepath.Join(c.Dir, "pod-logs"),
	}); err != nil {
		return err
	}
	if _, err := c.start("kubelet", nil, c.bins.kubelet,
		"--config="+kcfg,
		"--kubeconfig="+c.KubeConfig,
		"--hostname-override="+RealNodeName,
		"--node-ip="+BridgeIP,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet", "pki"),
		"--v=1",
	); err != nil {
		return err
	}
	pcfg := filepath.Join(n.dir, "kube-proxy.yaml")
	if err := writeRendered(pcfg, kubeProxyConfig, map[string]string{"Kubeconfig": c.KubeConfig, "Node": RealNodeName, "IP": BridgeIP}); err != nil {
		return err
	}
	if _, err := c.start("kube-proxy", nil, c.bins.kubeProxy, "--config="+pcfg, "--v=1"); err != nil {
		return err
	}
	return c.waitFor(ctx, 90*time.Second, "the node to be Ready", func() (bool, error) {
		for _, name := range []string{"kubelet", "kube-proxy", "kube-controller-manager"} {
			if p := c.procs[name]; p.Exited() {
				return false, fmt.Errorf("%s exited:\n%s", name, p.Tail(4000))
			}
		}
		node := &corev1.Node{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: RealNodeName}, node); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, t := range node.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
				return false, nil
			}
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// applyAddons creates CoreDNS and metrics-server (node-addons.yaml) and
// waits until both serve.
func (c *Cluster) applyAddons(ctx context.Context) error {
	y, err := render(nodeAddons, map[string]string{
		"DNS": ClusterDNSIP, "CoreDNSImage": c.images["coredns"], "MetricsServerImage": c.images["metrics-server"],
	})
	if err != nil {
		return err
	}
	if err := c.ApplyYAML(ctx, y); err != nil {
		return err
	}
	return c.waitFor(ctx, 120*time.Second, "CoreDNS and metrics-server", func() (bool, error) {
		for _, name := range []string{"coredns", "metrics-server"} {
			d, err := c.Kube.AppsV1().Deployments("kube-system").Get(ctx, name, metav1.GetOptions{})
			if err != nil || d.Status.ReadyReplicas < 1 {
				return false, err
			}
		}
		// The aggregated API answers once metrics-server has scraped the
		// kubelet once.
		if _, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").DoRaw(ctx); err != nil {
			return false, nil
		}
		// Cluster DNS resolves a Service by name (asked at the kube-dns
		// Service address, through kube-proxy, as a pod asks).
		return resolveInCluster(ctx, "kubernetes.default.svc.cluster.local") == kubernetesSvcIP, nil
	})
}

// resolveInCluster looks name up at the cluster's DNS Service ("" when
// it does not resolve).
func resolveInCluster(ctx context.Context, name string) string {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(ClusterDNSIP, "53"))
	}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil || len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

// ApplyYAML creates or updates every object of a multi-document YAML with
// server-side apply.
func (c *Cluster) ApplyYAML(ctx context.Context, y []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		err := c.Client.Patch(ctx, u, client.Apply, client.FieldOwner("sluice-e2e"), client.ForceOwnership)
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if err != nil {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// SluiceNamespace is where the chart installs Sluice on the real node.
const SluiceNamespace = "sluice-system"

// startOnRealNode brings up the real node, Traefik, Prometheus and Sluice
// (manager and loadtester from the chart).
func (c *Cluster) startOnRealNode(ctx context.Context) error {
	if err := c.findImages(); err != nil {
		return err
	}
	// The main Sluice serves every Rollout that no story's own Sluice does
	// (see Sluice); Prometheus scrapes its pods from the start.
	c.sluice = c.newSluice("sluice", SluiceNamespace, "!"+manager.ShardLabel, true)
	if err := c.startRealNode(ctx); err != nil {
		return err
	}
	// The harness's own watchers live until Stop, not just through Start,
	// and never outlive the API server (a retry to the bridge address
	// after teardown would leave the machine).
	bg, cancel := context.WithCancel(context.Background())
	c.stopBackground = cancel
	c.startReadyGates(bg)
	c.bg = bg
	t0 := time.Now()
	if err := c.startTraefik(ctx); err != nil {
		return err
	}
	c.measure("traefik (Gateway programmed)", t0)
	t0 = time.Now()
	if err := c.startPrometheus(ctx); err != nil {
		return err
	}
	c.measure("prometheus", t0)
	t0 = time.Now()
	if err := c.sluice.Install(ctx, c.images["manager"]); err != nil {
		return err
	}
	c.measure("sluice (helm install: 2 managers + loadtester)", t0)
	return nil
}

// ImagesDir is where `make images` leaves the image archives.
func ImagesDir() string {
	if d := os.Getenv("SLUICE_IMAGES"); d != "" {
		return d
	}
	cache := os.Getenv("SLUICE_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = filepath.Join(os.TempDir(), "cache")
		}
		cache = filepath.Join(base, "sluice")
	}
	return filepath.Join(cache, "images")
}

// findImages reads the image names from the archives' index (the
// org.opencontainers.image.ref.name annotation make images writes).
func (c *Cluster) findImages() error {
	c.imagesDir = ImagesDir()
	c.images = map[string]string{}
	archives, _ := filepath.Glob(filepath.Join(c.imagesDir, "*.tar"))
	for _, a := range archives {
		ref, err := archiveRef(a)
		if err != nil {
			return err
		}
		repo := ref[:strings.LastIndex(ref, ":")]
		short := strings.TrimPrefix(repo[strings.LastIndex(repo, "/")+1:], "sluice-")
		c.images[short] = ref
	}
	for _, want := range []string{"manager", "loadtester", "testapp", "pause", "coredns", "metrics-server", "prometheus"} {
		if c.images[want] == "" {
			return fmt.Errorf("image %q missing in %s: run `make images`", want, c.imagesDir)
		}
	}
	return nil
}

// Image returns the image reference of a short name (testapp, manager, ...).
func (c *Cluster) Image(short string) string { return c.images[short] }

// archiveRef reads the image name from an OCI archive's index.json.
func archiveRef(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", fmt.Errorf("%s: no index.json with an image name: %v", path, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", path, err)
		}
		for _, m := range idx.Manifests {
			for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
				if ref := m.Annotations[k]; strings.Contains(ref, "/") && strings.Contains(ref, ":") {
					return ref, nil
				}
			}
		}
		return "", fmt.Errorf("%s: index.json names no image", path)
	}
}

// RealNode reports whether the cluster runs a real kubelet.
func (c *Cluster) RealNode() bool { return c.node != nil }

// TagImage gives an image a second tag on the node (the same content under
// a new name, as a new release of Sluice would have) and returns it.
func (c *Cluster) TagImage(ref, suffix string) (string, error) {
	next := ref + "-" + suffix
	out, err := exec.Command("ctr", "--address", c.node.containerd, "-n", "k8s.io", "images", "tag", "--force", ref, next).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr images tag %s %s: %v: %s", ref, next, err, out)
	}
	return next, nil
}

// prometheusConfigDir holds what the Prometheus pod mounts: its
// configuration and the manager targets the harness writes.
func (c *Cluster) prometheusConfigDir() string { return filepath.Join(c.Dir, "prometheus") }

func (c *Cluster) managerTargetsFile() string {
	return filepath.Join(c.prometheusConfigDir(), "sluice-targets.json")
}

//go:embed prometheus-pod.yaml
var prometheusPod string

// prometheusUID is the user the images run as (hack/tools/images).
const prometheusUID = 65532

// startPrometheusPod runs Prometheus as a pod (Debian's build, see
// prometheus-pod.yaml). It scrapes Traefik's pod and the manager pods by
// their addresses, which the harness keeps in a file it reads (it has no
// Kubernetes discovery); the host, Sluice and the stories reach it at its
// pod's address.
func (c *Cluster) startPrometheusPod(ctx context.Context) error {
	if c.images["prometheus"] == "" {
		return fmt.Errorf("image prometheus missing in %s: run `make prometheus images-node`", c.imagesDir)
	}
	cfgDir, dataDir := c.prometheusConfigDir(), filepath.Join(c.Dir, "prometheus-data")
	for _, d := range []string{cfgDir, dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chown(dataDir, prometheusUID, prometheusUID); err != nil {
		return err
	}
	traefik := strings.TrimSuffix(strings.TrimPrefix(c.TraefikMetricsURL, "http://"), "/metrics")
	cfg := prometheusConfig(traefik, fmt.Sprintf("file_sd_configs: [{files: [%q], refresh_interval: 1s}]", c.managerTargetsFile()))
	if err := os.WriteFile(filepath.Join(cfgDir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	go c.writeManagerTargets(c.bg)
	y, err := render(prometheusPod, map[string]any{
		"Namespace": "monitoring", "Image": c.images["prometheus"], "ConfigDir": cfgDir, "DataDir": dataDir,
	})
	if err != nil {
		return err
	}
	if err := c.ApplyYAML(ctx, y); err != nil {
		return err
	}
	return c.waitFor(ctx, 60*time.Second, "the Prometheus pod", func() (bool, error) {
		p := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "monitoring", Name: "prometheus"}, p); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.Status.PodIP != "" {
				c.PrometheusURL = fmt.Sprintf("http://%s:9090", p.Status.PodIP)
				return httpOK(c.PrometheusURL + "/-/ready"), nil
			}
		}
		return false, nil
	})
}

// writeManagerTargets keeps Prometheus's file of manager targets in step
// with the manager pods (one target per running pod with an IP, labelled
// with its name) until ctx ends.
func (c *Cluster) writeManagerTargets(ctx context.Context) {
	last := ""
	for {
		type group struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		}
		groups := []group{}
		if pods, err := c.sluice.Pods(ctx); err == nil {
			for _, p := range pods {
				if p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning {
					groups = append(groups, group{Targets: []string{fmt.Sprintf("%s:8080", p.Status.PodIP)}, Labels: map[string]string{"pod": p.Name}})
				}
			}
		}
		b, _ := json.Marshal(groups)
		if string(b) != last {
			tmp := c.managerTargetsFile() + ".tmp"
			if os.WriteFile(tmp, b, 0o644) == nil && os.Rename(tmp, c.managerTargetsFile()) == nil {
				last = string(b)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// HostAddr is the host address a story's own server listens on so that
// Sluice reaches it: the bridge on the real node, loopback on kwok.
func (c *Cluster) HostAddr() string {
	if c.node != nil {
		return BridgeIP
	}
	return "127.0.0.1"
}

// startTraefikPod runs Traefik as a pod (the image of make images-node)
// behind a Service; the host and the pods reach it at the Service's
// address, through kube-proxy.
func (c *Cluster) startTraefikPod(ctx context.Context) error {
	if c.images["traefik"] == "" {
		return fmt.Errorf("image traefik missing in %s: run `make images-node`", c.imagesDir)
	}
	y, err := render(traefikPod, map[string]any{
		"Namespace": GatewayNamespace, "Image": c.images["traefik"], "Port": gatewayPortOnNode, "Buckets": traefikBuckets,
	})
	if err != nil {
		return err
	}
	if err := c.ApplyYAML(ctx, y); err != nil {
		return err
	}
	c.GatewayPort = gatewayPortOnNode
	// The stories' clients go to the pod's address, as a load balancer in
	// front of a gateway would, not through kube-proxy's Service rules.
	return c.waitFor(ctx, 90*time.Second, "the Traefik pod", func() (bool, error) {
		pods := &corev1.PodList{}
		if err := c.Client.List(ctx, pods, client.InNamespace(GatewayNamespace), client.MatchingLabels{"app": "traefik"}); err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			ready := false
			for _, cond := range p.Status.Conditions {
				ready = ready || (cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue)
			}
			if ready && p.Status.PodIP != "" {
				c.GatewayURL = fmt.Sprintf("http://%s:%d", p.Status.PodIP, gatewayPortOnNode)
				c.TraefikMetricsURL = fmt.Sprintf("http://%s:9100/metrics", p.Status.PodIP)
				return httpOK(c.TraefikMetricsURL), nil
			}
		}
		return false, nil
	})
}
