package cluster

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// ReadyGate is the readiness gate the test app's pods carry on the real
// node. The kubelet reports a pod Ready only when its probe passes and
// this condition is True; the harness sets it True on every pod that
// HoldReady does not hold, so a story can keep chosen pods not ready (as
// a failing probe would) without changing their template.
const ReadyGate corev1.PodConditionType = "e2e.sluice.dev/ready"

// readyGates opens the gate of the app pods on the real node.
type readyGates struct {
	c     *Cluster
	store cache.Store
	kick  chan struct{}
}

func (c *Cluster) startReadyGates(ctx context.Context) {
	f := informers.NewSharedInformerFactory(c.Kube, 0)
	inf := f.Core().V1().Pods().Informer()
	g := &readyGates{c: c, store: inf.GetStore(), kick: make(chan struct{}, 1)}
	c.gates = g
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { g.sync(ctx, o) },
		UpdateFunc: func(_, o any) { g.sync(ctx, o) },
	})
	f.Start(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.kick:
				for _, o := range g.store.List() {
					g.sync(ctx, o)
				}
			}
		}
	}()
}

// resync re-checks every pod (after HoldReady changed).
func (g *readyGates) resync() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *readyGates) sync(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok || pod.DeletionTimestamp != nil || pod.Status.PodIP == "" {
		return
	}
	gated := false
	for _, rg := range pod.Spec.ReadinessGates {
		gated = gated || rg.ConditionType == ReadyGate
	}
	if !gated {
		return
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == ReadyGate && cond.Status == corev1.ConditionTrue {
			return // already open: held pods that were ready stay ready
		}
	}
	if g.c.held(pod) {
		return
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{{
		Type: ReadyGate, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now()),
	}}}})
	_, _ = g.c.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
}

// PodVersion is the test app's VERSION in a pod's spec.
func PodVersion(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "VERSION" {
				return e.Value
			}
		}
	}
	return ""
}
