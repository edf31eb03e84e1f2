package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// Sluice is one installation of the chart on the real node: a Helm release
// in a namespace of its own, whose managers serve the Rollouts of one shard
// and elect their leader with a Lease of their own.
//
// The cluster installs the main one, which serves every Rollout without the
// sluice.dev/shard label. A story that kills, stops or upgrades managers
// installs one of its own (InstallShard) and labels its Rollouts for it, so
// that what it does to its managers never reaches the other stories'
// Rollouts and all stories can run side by side.
type Sluice struct {
	c *Cluster
	// Release is the Helm release; the chart names the manager Deployment
	// <Release>-manager (the release name holds the chart's name).
	Release   string
	Namespace string
	// Shard is the --shard selector its managers serve.
	Shard      string
	lease      string
	loadtester bool
	// extraArgs are more manager flags (the chart's extraArgs).
	extraArgs []string
}

func (c *Cluster) newSluice(release, namespace, shard string, loadtester bool) *Sluice {
	sel, err := labels.Parse(shard)
	if err != nil {
		panic(fmt.Sprintf("shard selector %q: %v", shard, err)) // a constant of this package
	}
	return &Sluice{c: c, Release: release, Namespace: namespace, Shard: shard,
		lease: manager.LeaseName(sel), loadtester: loadtester}
}

// Sluice is the main installation (nil without the real node).
func (c *Cluster) Sluice() *Sluice { return c.sluice }

// InstallShard installs another Sluice, release sluice-<name> in namespace
// sluice-<name>, whose two managers serve only the Rollouts labelled
// sluice.dev/shard=<name> (ShardLabels), and waits until they are ready
// with a leader. Real node only.
func (c *Cluster) InstallShard(ctx context.Context, name string, managerArgs ...string) (*Sluice, error) {
	if c.node == nil {
		return nil, fmt.Errorf("a Sluice of its own needs the real node")
	}
	s := c.newSluice("sluice-"+name, "sluice-"+name, manager.ShardLabel+"="+name, false)
	s.extraArgs = managerArgs
	return s, s.Install(ctx, c.images["manager"])
}

// ShardLabels are the labels that put a Rollout in shard name.
func ShardLabels(name string) map[string]string {
	return map[string]string{manager.ShardLabel: name}
}

// Deployment is the name of the managers' Deployment.
func (s *Sluice) Deployment() string { return s.Release + "-manager" }

// Install installs (or upgrades to) the chart with the manager image ref,
// as a user would: helm, 2 replicas, leader election, the chart's RBAC, the
// loadtester for the main installation. It waits until both managers are
// ready and one leads.
func (s *Sluice) Install(ctx context.Context, managerImage string) error {
	c := s.c
	repo, tag, _ := strings.Cut(managerImage, ":")
	// The shard flag goes through a values file: --set would split and
	// unescape it.
	values := filepath.Join(c.Dir, "helm", s.Release+"-values.yaml")
	if err := os.MkdirAll(filepath.Dir(values), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("extraArgs:\n")
	for _, a := range append([]string{"--shard=" + s.Shard}, s.extraArgs...) {
		fmt.Fprintf(&b, "  - %q\n", a)
	}
	if err := os.WriteFile(values, []byte(b.String()), 0o644); err != nil {
		return err
	}
	args := []string{"upgrade", "--install", s.Release, filepath.Join(testenv.RepoRoot(), "charts", "sluice"),
		"--kubeconfig", c.KubeConfig, "--namespace", s.Namespace, "--create-namespace",
		"--wait", "--timeout", "3m", "--values", values,
		"--set", "image.repository=" + repo, "--set", "image.tag=" + tag, "--set", "image.pullPolicy=Never",
		"--set", "replicas=2",
		"--set", "prometheus.address=" + c.PrometheusURL,
		"--set", "gatewayFlavor=traefik",
		"--set", "routers.gatewayAPI.enabled=true", "--set", "routers.istio.enabled=true",
		"--set", "logDev=true",
	}
	if s.loadtester {
		ltRepo, ltTag, _ := strings.Cut(c.images["loadtester"], ":")
		args = append(args, "--set", "loadtester.enabled=true",
			"--set", "loadtester.image.repository="+ltRepo, "--set", "loadtester.image.tag="+ltTag,
			"--set", "loadtester.image.pullPolicy=Never")
	}
	cmd := exec.CommandContext(ctx, c.bins.helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(c.Dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.Dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(c.Dir, "helm", "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm upgrade --install %s: %v\n%s", s.Release, err, out)
	}
	if s.loadtester {
		if err := s.readLoadtester(ctx); err != nil {
			return err
		}
	}
	return c.waitFor(ctx, 60*time.Second, "a leader of "+s.Release, func() (bool, error) {
		return s.LeaseHolder(ctx) != "", nil
	})
}

// readLoadtester reads the chart's loadtester Service and token into the
// cluster's loadtester fields.
func (s *Sluice) readLoadtester(ctx context.Context) error {
	c := s.c
	svc := &corev1.Service{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Release + "-loadtester"}, svc); err != nil {
		return fmt.Errorf("the chart's loadtester Service: %w", err)
	}
	c.LoadtesterURL = fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	c.LoadtesterHookURL = fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port)
	// The chart generated the loadtester's token: read it as an approver would.
	token := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Release + "-loadtester-token"}, token); err != nil {
		return fmt.Errorf("the chart's loadtester token Secret: %w", err)
	}
	if c.LoadtesterToken = string(token.Data["token"]); c.LoadtesterToken == "" {
		return fmt.Errorf("the chart's loadtester token Secret %s/%s has no token", s.Namespace, token.Name)
	}
	return nil
}

// Pods lists the managers' pods.
func (s *Sluice) Pods(ctx context.Context) ([]corev1.Pod, error) {
	l := &corev1.PodList{}
	err := s.c.Client.List(ctx, l, client.InNamespace(s.Namespace), client.MatchingLabels{"app.kubernetes.io/name": "sluice", "app.kubernetes.io/component": "manager"})
	return l.Items, err
}

// Log returns the end of the manager pods' container logs, read from the
// kubelet's log directory.
func (s *Sluice) Log(n int) string {
	files, _ := filepath.Glob(filepath.Join(s.c.Dir, "pod-logs", s.Namespace+"_"+s.Deployment()+"-*", "manager", "*.log"))
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "----- %s -----\n%s\n", filepath.Base(filepath.Dir(filepath.Dir(f))), tailFile(f, n))
	}
	return b.String()
}

// WaitReady waits until the managers are all ready and one holds the Lease.
func (s *Sluice) WaitReady(ctx context.Context) error {
	return s.c.waitFor(ctx, 90*time.Second, "the managers of "+s.Release+" to be ready, one of them leading", func() (bool, error) {
		d, err := s.c.Kube.AppsV1().Deployments(s.Namespace).Get(ctx, s.Deployment(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ReadyReplicas < want || d.Status.UpdatedReplicas < want || d.Status.Replicas != want {
			return false, nil
		}
		// The Deployment's status may not have seen a pod just deleted.
		pods, err := s.Pods(ctx)
		if err != nil {
			return false, err
		}
		// The Lease may still name a pod just deleted (a restarted
		// container can win it back before its pod goes): the leader must
		// be one of the ready pods.
		leader := s.LeaderPod(ctx)
		ready, leads := int32(0), false
		for _, p := range pods {
			if p.DeletionTimestamp == nil && PodReady(&p) {
				ready++
				leads = leads || p.Name == leader
			}
		}
		return ready == want && leads, nil
	})
}

// LeaseHolder returns the identity that holds the managers' Lease ("" when
// none does).
func (s *Sluice) LeaseHolder(ctx context.Context) string {
	l := &coordinationv1.Lease{}
	if err := s.c.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.lease}, l); err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// LeaderPod is the manager pod that holds the Lease ("" when none does).
// controller-runtime names the holder <hostname>_<uuid>, and a pod's
// hostname is its name.
func (s *Sluice) LeaderPod(ctx context.Context) string {
	name, _, _ := strings.Cut(s.LeaseHolder(ctx), "_")
	return name
}

// CrashLeader kills the leading manager's process with SIGKILL, through
// containerd, as an out-of-memory kill or a crash would: nothing runs on
// its way out, the Lease is not handed over, and the kubelet restarts the
// container in its pod. (Deleting the pod, even with grace 0, has the
// kubelet send SIGTERM first, and the manager then hands the Lease over.)
// It returns the leader's pod.
func (s *Sluice) CrashLeader(ctx context.Context) (string, error) {
	name := s.LeaderPod(ctx)
	if name == "" {
		return "", fmt.Errorf("no leader of %s", s.Release)
	}
	pod, err := s.c.Kube.CoreV1().Pods(s.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return name, err
	}
	for _, cs := range pod.Status.ContainerStatuses {
		id, ok := strings.CutPrefix(cs.ContainerID, "containerd://")
		if cs.Name != "manager" || !ok {
			continue
		}
		out, err := exec.CommandContext(ctx, "ctr", "--address", s.c.node.containerd, "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id).CombinedOutput()
		if err != nil {
			return name, fmt.Errorf("ctr tasks kill %s (pod %s): %v: %s", id, name, err, out)
		}
		return name, nil
	}
	return name, fmt.Errorf("pod %s has no running manager container", name)
}

// DeletePod deletes a manager pod at once (grace 0).
func (s *Sluice) DeletePod(ctx context.Context, name string) error {
	return s.c.Kube.CoreV1().Pods(s.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
}

// StopLeaderGracefully deletes the leader's pod with its own grace period,
// as Kubernetes stops the old pod of a rolling upgrade.
func (s *Sluice) StopLeaderGracefully() { s.deleteLeaderPod(nil) }

func (s *Sluice) deleteLeaderPod(grace *int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if name := s.LeaderPod(ctx); name != "" {
		_ = s.c.Kube.CoreV1().Pods(s.Namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: grace})
	}
}

// NonLeaderMetricsURL is the metrics URL of a running manager pod that does
// not hold the Lease.
func (s *Sluice) NonLeaderMetricsURL(ctx context.Context) (string, error) {
	return s.metricsURL(ctx, false)
}

// LeaderMetricsURL is the metrics URL of the manager that holds the Lease.
func (s *Sluice) LeaderMetricsURL(ctx context.Context) (string, error) {
	return s.metricsURL(ctx, true)
}

func (s *Sluice) metricsURL(ctx context.Context, leader bool) (string, error) {
	name := s.LeaderPod(ctx)
	pods, err := s.Pods(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range pods {
		if (p.Name == name) == leader && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			return fmt.Sprintf("http://%s:8080/metrics", p.Status.PodIP), nil
		}
	}
	return "", fmt.Errorf("no running manager pod of %s (leader %q, want the leader: %v)", s.Release, name, leader)
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
