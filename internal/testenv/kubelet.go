package testenv

import (
	"context"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// AvailableAnnotation on a Deployment caps the replicas the fake kubelet
// reports available (the others updated but not ready), for stories of
// partly ready workloads.
const AvailableAnnotation = "testenv.sluice.dev/available"

// RunFakeKubelet stands in for the Deployment controller and kubelet, which
// envtest does not run: until ctx ends it reports every Deployment in ns as
// fully rolled out, except that those limit returns true for run at most
// the replicas it returns available (0: all held unavailable), and every DaemonSet in ns as rolled out on FakeNodes nodes
// (none while parked). It polls, as test scaffolding, every 50ms.
func RunFakeKubelet(ctx context.Context, c client.Client, ns string, limit func(*appsv1.Deployment) (available int32, limited bool)) {
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var list appsv1.DeploymentList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range list.Items {
				d := &list.Items[i]
				n := int32(1)
				if d.Spec.Replicas != nil {
					n = *d.Spec.Replicas
				}
				want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
				if limit != nil {
					if v, limited := limit(d); limited && v < want.AvailableReplicas {
						want.ReadyReplicas, want.AvailableReplicas = v, v
					}
				}
				if v, err := strconv.Atoi(d.Annotations[AvailableAnnotation]); err == nil && int32(v) < want.AvailableReplicas {
					want.ReadyReplicas, want.AvailableReplicas = int32(v), int32(v)
				}
				s := d.Status
				if s.ObservedGeneration == want.ObservedGeneration && s.Replicas == want.Replicas &&
					s.UpdatedReplicas == want.UpdatedReplicas && s.AvailableReplicas == want.AvailableReplicas {
					continue
				}
				d.Status = want
				_ = c.Status().Update(ctx, d)
			}
			reportDaemonSets(ctx, c, ns)
		}
	}()
}

// FakeNodes is the number of nodes every DaemonSet the fake kubelet sees
// runs on, unless parked.
const FakeNodes = 3

// reportDaemonSets stands in for the DaemonSet controller: every DaemonSet
// in ns runs its current spec on FakeNodes nodes, or on none while parked
// (it requires workload.ParkedNodeLabel, which no node carries), with
// AvailableAnnotation capping the nodes where its pod is available.
func reportDaemonSets(ctx context.Context, c client.Client, ns string) {
	var list appsv1.DaemonSetList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		n := int32(FakeNodes)
		if workload.IsParked(&d.Spec.Template.Spec) {
			n = 0
		}
		want := appsv1.DaemonSetStatus{ObservedGeneration: d.Generation, DesiredNumberScheduled: n, CurrentNumberScheduled: n,
			UpdatedNumberScheduled: n, NumberReady: n, NumberAvailable: n}
		if v, err := strconv.Atoi(d.Annotations[AvailableAnnotation]); err == nil && int32(v) < n {
			want.NumberReady, want.NumberAvailable, want.NumberUnavailable = int32(v), int32(v), n-int32(v)
		}
		if equality.Semantic.DeepEqual(d.Status, want) {
			continue
		}
		d.Status = want
		_ = c.Status().Update(ctx, d)
	}
}
