package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// podRunner gives each ready pod a real backend: the test app, in a network
// namespace of its own at the pod's IP, with the env of the pod's first
// container (literal values, configMapKeyRef and envFrom configMapRef
// resolved when the backend starts). The backend listens on the first
// container port.
type podRunner struct {
	c *Cluster

	mu       sync.Mutex
	backends map[string]*backend // by pod IP
	cancel   context.CancelFunc
	queue    chan string // pod keys to look at
}

type backend struct {
	uid      string
	key      string
	proc     *Proc
	stopping bool
}

// terminationGrace is how long a deleted pod's backend keeps answering.
const terminationGrace = 2 * time.Second

func newPodRunner(c *Cluster) *podRunner {
	return &podRunner{c: c, backends: map[string]*backend{}, queue: make(chan string, 4096)}
}

func (r *podRunner) start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	f := informers.NewSharedInformerFactoryWithOptions(r.c.Kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", NodeName).String()
		}))
	inf := f.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue <- key
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case key := <-r.queue:
				obj, exists, err := inf.GetIndexer().GetByKey(key)
				if err != nil {
					continue
				}
				var pod *corev1.Pod
				if exists {
					pod, _ = obj.(*corev1.Pod)
				}
				r.sync(ctx, key, pod)
			}
		}
	}()
	return nil
}

// sync starts or stops the backend of one pod.
func (r *podRunner) sync(ctx context.Context, key string, pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := pod != nil && pod.DeletionTimestamp == nil && pod.Status.PodIP != "" &&
		pod.Status.Phase == corev1.PodRunning
	if !want {
		// Like a terminating pod, keep answering for a grace period:
		// Traefik may still send requests to the IP until it has seen the
		// EndpointSlice change. A new pod given the IP meanwhile replaces it.
		for ip, b := range r.backends {
			if b.key == key && !b.stopping {
				b.stopping = true
				time.AfterFunc(terminationGrace, func() {
					r.mu.Lock()
					defer r.mu.Unlock()
					if cur := r.backends[ip]; cur == b {
						r.stopLocked(ip)
					}
				})
			}
		}
		return
	}
	ip := pod.Status.PodIP
	if b, ok := r.backends[ip]; ok {
		if b.uid == string(pod.UID) && !b.proc.Exited() {
			return
		}
		r.stopLocked(ip) // the IP was handed to a new pod
	}
	if err := r.startLocked(ctx, key, pod); err != nil {
		r.c.logf("backend of pod %s at %s: %v", key, ip, err)
	}
}

func (r *podRunner) startLocked(ctx context.Context, key string, pod *corev1.Pod) error {
	ip := pod.Status.PodIP
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("bad pod IP %q", ip)
	}
	if len(pod.Spec.Containers) == 0 {
		return fmt.Errorf("no container")
	}
	ctr := pod.Spec.Containers[0]
	port := int32(8080)
	if len(ctr.Ports) > 0 {
		port = ctr.Ports[0].ContainerPort
	}
	env, err := r.resolveEnv(ctx, pod.Namespace, ctr)
	if err != nil {
		return err
	}
	delPodNetwork(ip) // a stale namespace of a pod that had this IP before
	if err := addPodNetwork(ip); err != nil {
		return err
	}
	name := fmt.Sprintf("pod-%s-%s", pod.Namespace, pod.Name)
	p, err := startProc(r.c.stateDir, r.c.Dir, name, env, "ip",
		"netns", "exec", netnsName(ip), r.c.bins.testapp, "-listen", net.JoinHostPort(ip, strconv.Itoa(int(port))))
	if err != nil {
		delPodNetwork(ip)
		return err
	}
	r.backends[ip] = &backend{uid: string(pod.UID), key: key, proc: p}
	go r.markReady(ctx, pod.Namespace, pod.Name, string(pod.UID), net.JoinHostPort(ip, strconv.Itoa(int(port))))
	return nil
}

// readyWithin bounds how long a backend may take to accept connections.
const readyWithin = 10 * time.Second

// markReady sets the pod Ready once its backend accepts connections, as a
// kubelet does after a passing readiness probe (kwok's stages leave pods
// not ready: e2e/cluster/kwok-stages.yaml). A pod the cluster's HoldReady
// hook holds stays not ready, like a pod whose probe fails.
func (r *podRunner) markReady(ctx context.Context, ns, name, uid, addr string) {
	deadline := time.Now().Add(readyWithin)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			r.c.logf("backend of pod %s/%s at %s never answered: %v", ns, name, addr, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for ctx.Err() == nil {
		pod, err := r.c.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || string(pod.UID) != uid || pod.DeletionTimestamp != nil {
			return
		}
		if r.c.held(pod) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		now := metav1.Now().UTC().Format(time.RFC3339)
		patch := fmt.Sprintf(`{"status":{"conditions":[{"type":"Ready","status":"True","reason":"","lastTransitionTime":%q},{"type":"ContainersReady","status":"True","reason":"","lastTransitionTime":%q}]}}`, now, now)
		_, err = r.c.Kube.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
		if err != nil {
			r.c.logf("marking pod %s/%s ready: %v", ns, name, err)
		}
		return
	}
}

func (r *podRunner) stopLocked(ip string) {
	b := r.backends[ip]
	delete(r.backends, ip)
	if b != nil {
		b.proc.Stop(time.Second)
	}
	delPodNetwork(ip)
}

// resolveEnv reads the container's env as the kubelet would for the keys
// the test app uses.
func (r *podRunner) resolveEnv(ctx context.Context, ns string, ctr corev1.Container) ([]string, error) {
	var env []string
	for _, from := range ctr.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm, err := r.c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("envFrom configMap %s: %w", from.ConfigMapRef.Name, err)
		}
		for k, v := range cm.Data {
			env = append(env, from.Prefix+k+"="+v)
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := r.c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s from configMap %s: %w", e.Name, ref.Name, err)
			}
			env = append(env, e.Name+"="+cm.Data[ref.Key])
		}
	}
	return env, nil
}

// Backends returns the number of pod backends running.
func (c *Cluster) Backends() int {
	c.pods.mu.Lock()
	defer c.pods.mu.Unlock()
	return len(c.pods.backends)
}

func (r *podRunner) stopAll() {
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ip := range r.backends {
		r.stopLocked(ip)
	}
}
