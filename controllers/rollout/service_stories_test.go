package rollout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// serviceName names the apex Service.
func serviceName(name string) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.Service.Name = name }
}

// serviceMeta gives the apex, primary and canary Services labels and annotations.
func serviceMeta(apex, primary, canary *sluicev1.ServiceMetadata) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Service.Apex, ro.Spec.Service.Primary, ro.Spec.Service.Canary = apex, primary, canary
	}
}

func TestTheServicesTakeTheApexNameAndTheLabelsAndAnnotationsTheRolloutGives(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", serviceName("podinfo-web"), serviceMeta(
		&sluicev1.ServiceMetadata{Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"example.com/owner": "shop"}},
		&sluicev1.ServiceMetadata{Labels: map[string]string{"track": "stable"}},
		&sluicev1.ServiceMetadata{Annotations: map[string]string{"example.com/track": "canary"}},
	))

	apex := s.getService("podinfo-web")
	if apex.Spec.Selector["app"] != "podinfo-primary" {
		t.Errorf("apex Service podinfo-web selects %v, want the primary", apex.Spec.Selector)
	}
	if apex.Labels["tier"] != "web" || apex.Annotations["example.com/owner"] != "shop" {
		t.Errorf("apex Service metadata: labels %v annotations %v", apex.Labels, apex.Annotations)
	}
	if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Service named after the target: %v, want none with service.name set", err)
	}
	if l := s.getService("podinfo-primary").Labels["track"]; l != "stable" {
		t.Errorf("primary Service label track = %q, want stable", l)
	}
	if a := s.getService("podinfo-canary").Annotations["example.com/track"]; a != "canary" {
		t.Errorf("canary Service annotation example.com/track = %q, want canary", a)
	}

	// Someone else labels the apex Service; the Rollout's labels change.
	patch := client.MergeFrom(apex.DeepCopy())
	apex.Labels["team"] = "storefront"
	s.must(k8sClient.Patch(s.ctx, apex, patch))
	ro := s.getRollout("podinfo")
	rpatch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Service.Apex = &sluicev1.ServiceMetadata{Labels: map[string]string{"tier": "frontend"}}
	s.must(k8sClient.Patch(s.ctx, ro, rpatch))
	s.eventually(storyTimeout, "the apex Service's metadata follows the spec", func() error {
		svc := s.getService("podinfo-web")
		if svc.Labels["tier"] != "frontend" {
			return fmt.Errorf("label tier = %q", svc.Labels["tier"])
		}
		if _, ok := svc.Annotations["example.com/owner"]; ok {
			return fmt.Errorf("the annotation removed from the spec is still there")
		}
		if svc.Labels["team"] != "storefront" {
			return fmt.Errorf("the label someone else set is gone: %v", svc.Labels)
		}
		return nil
	})

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if sel := s.getService("podinfo-web").Spec.Selector; sel["app"] != "podinfo-primary" {
		t.Errorf("apex Service selects %v after the promotion, want the primary", sel)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)

	// Deleting the Rollout hands the renamed apex Service back to the target.
	s.deleteRollout("podinfo")
	apex = s.getService("podinfo-web")
	if apex.Spec.Selector["app"] != "podinfo" || metav1.GetControllerOf(apex) != nil {
		t.Errorf("apex Service podinfo-web selects %v, controller %v; want the target's pods and no owner", apex.Spec.Selector, metav1.GetControllerOf(apex))
	}
}

// TestTheServicesCarryTheExtraPortsAndAppProtocolsTheRolloutGives: several
// ports per Service and appProtocol (issue 15). Every generated Service
// carries them; an edit of the Rollout's ports is applied to all three.
func TestTheServicesCarryTheExtraPortsAndAppProtocolsTheRolloutGives(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	grpc := intstr.FromString("grpc")
	s.initialized("podinfo", func(ro *sluicev1.Rollout) {
		ro.Spec.Service.AppProtocol = "kubernetes.io/h2c"
		ro.Spec.Service.Ports = []sluicev1.ServicePort{
			{Name: "grpc", Port: 9999, TargetPort: &grpc, AppProtocol: "grpc"},
			{Name: "metrics", Port: 9797},
		}
	})
	want := func(svc *corev1.Service, names ...string) error {
		var got []string
		for _, p := range svc.Spec.Ports {
			got = append(got, fmt.Sprintf("%s:%d->%s/%s", p.Name, p.Port, p.TargetPort.String(), ptr.Deref(p.AppProtocol, "")))
		}
		if fmt.Sprint(got) != fmt.Sprint(names) {
			return fmt.Errorf("Service %s ports %v, want %v", svc.Name, got, names)
		}
		return nil
	}
	for _, name := range []string{"podinfo", "podinfo-primary", "podinfo-canary"} {
		if err := want(s.getService(name), "http:9898->9898/kubernetes.io/h2c", "grpc:9999->grpc/grpc", "metrics:9797->9797/"); err != nil {
			t.Error(err)
		}
	}

	ro := s.getRollout("podinfo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Service.Ports = ro.Spec.Service.Ports[:1]
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.eventually(storyTimeout, "the metrics port gone from every Service", func() error {
		for _, name := range []string{"podinfo", "podinfo-primary", "podinfo-canary"} {
			if err := want(s.getService(name), "http:9898->9898/kubernetes.io/h2c", "grpc:9999->grpc/grpc"); err != nil {
				return err
			}
		}
		return nil
	})
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func withPorts(ports ...corev1.ContainerPort) deployOpt {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Ports = append(d.Spec.Template.Spec.Containers[0].Ports, ports...)
	}
}

// portsOf lists a Service's ports as name:port.
func (s *story) portsOf(name string) string {
	var out []string
	for _, p := range s.getService(name).Spec.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Name, p.Port))
	}
	return strings.Join(out, " ")
}

// TestDiscoveredPortsFollowTheTemplatesAndLeaveOnlyOnceNoPrimaryPodDeclaresThem:
// service.portDiscovery (issue 15). The Services carry the containerPorts of
// the pod template besides the spec's ports; a release that adds a port
// brings it, and a port it drops stays on the apex and -primary Services
// while the primary's pods still run the template that declares it.
func TestDiscoveredPortsFollowTheTemplatesAndLeaveOnlyOnceNoPrimaryPodDeclaresThem(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0", withPorts(corev1.ContainerPort{Name: "metrics", ContainerPort: 9797}, corev1.ContainerPort{ContainerPort: 5000}))
	s.initialized("podinfo", iterations(1), func(ro *sluicev1.Rollout) {
		ro.Spec.Service.PortDiscovery = true
		// service.ports wins over the container port it repeats.
		ro.Spec.Service.Ports = []sluicev1.ServicePort{{Name: "prom", Port: 9797}}
	})
	all := []string{"podinfo", "podinfo-primary", "podinfo-canary"}
	s.eventually(storyTimeout, "the template's ports on every Service", func() error {
		for _, name := range all {
			if got := s.portsOf(name); got != "http:9898 prom:9797 tcp-5000:5000" {
				return fmt.Errorf("Service %s ports %s", name, got)
			}
		}
		return nil
	})

	// Version 2 declares a gRPC port and no longer port 5000; its primary
	// pods are held back from becoming available after the promotion.
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "podinfo-primary" && image(d) == "podinfo:2.0" })
	d := s.getDeployment("podinfo")
	patch := client.MergeFrom(d.DeepCopy())
	c := &d.Spec.Template.Spec.Containers[0]
	c.Image = "podinfo:2.0"
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}, {Name: "metrics", ContainerPort: 9797}, {Name: "grpc", ContainerPort: 9090}}
	s.must(k8sClient.Patch(s.ctx, d, patch))

	s.eventually(storyTimeout, "the canary Service following version 2's ports", func() error {
		if got := s.portsOf("podinfo-canary"); got != "http:9898 prom:9797 grpc:9090" {
			return fmt.Errorf("canary Service ports %s", got)
		}
		return nil
	})
	s.eventually(storyTimeout, "the primary running version 2's template, not yet available", func() error {
		if img := image(s.getDeployment("podinfo-primary")); img != "podinfo:2.0" {
			return fmt.Errorf("primary runs %s", img)
		}
		return nil
	})
	// Its pods may still be version 1's: port 5000 stays, the new port is
	// there for the new pods.
	s.eventually(storyTimeout, "the primary and apex Services with the new port and the old one", func() error {
		for _, name := range []string{"podinfo", "podinfo-primary"} {
			if got := s.portsOf(name); got != "http:9898 prom:9797 grpc:9090 tcp-5000:5000" {
				return fmt.Errorf("Service %s ports %s", name, got)
			}
		}
		return nil
	})
	time.Sleep(time.Second) // reconciles go on while the primary is held
	for _, name := range []string{"podinfo", "podinfo-primary"} {
		if got := s.portsOf(name); !strings.Contains(got, "tcp-5000:5000") {
			t.Errorf("Service %s lost port 5000 while the primary's pods may still declare it: %s", name, got)
		}
	}

	s.holdWhen(func(*appsv1.Deployment) bool { return false })
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "port 5000 gone once every primary pod runs version 2", func() error {
		for _, name := range all {
			if got := s.portsOf(name); got != "http:9898 prom:9797 grpc:9090" {
				return fmt.Errorf("Service %s ports %s", name, got)
			}
		}
		return nil
	})
	s.expectKStatus("podinfo", status.CurrentStatus)
}
