package traffic

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/intern"
	"github.com/sluice-dev/sluice/internal/ownwrites"
)

// ManagedByLabel marks the objects Sluice creates; the manager's cache only
// holds Services that carry it.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// ManagedByValue is the value of ManagedByLabel on Sluice's objects.
const ManagedByValue = "sluice"

// ServiceConflictError says a Service Sluice must create exists and is not
// Sluice's: the user has to rename or remove it.
type ServiceConflictError struct{ Name string }

func (e *ServiceConflictError) Error() string {
	return fmt.Sprintf("Service %s exists and is not managed by Sluice: remove it (an apex Service can be taken over with service.adopt)", e.Name)
}

// AdoptedAnnotation marks an apex Service that Sluice adopted
// (service.adopt): it keeps the ports Sluice does not write.
const AdoptedAnnotation = "sluice.dev/adopted"

// EnsureServices creates or updates the apex, primary and canary Services.
// The apex Service is created selecting the primary. Afterwards, with a
// router, it is kept selecting the primary once the primary is ready;
// without one (the kubernetes router) its selector belongs to the router.
// With service.adopt, an apex Service that exists and is nobody's is
// adopted (see adoptApex) rather than refused; uncached reads it, since
// the cache holds Sluice's Services only.
//
// With service.portDiscovery, each Service also carries the container ports
// of the pods it may select: the canary Service the target's, the primary
// Service the primary's, and the apex Service both (a router may point it
// at either version). While the primary rolls, the primary and apex
// Services keep the ports they have: a port is removed only once no pod of
// the primary declares it.
func EnsureServices(ctx context.Context, c client.Client, uncached client.Reader, t Target) error {
	primary := t.PrimaryPorts
	// Only discovered ports come and go with the templates; without
	// portDiscovery the Services' ports are the spec's alone.
	keep := t.PrimaryRolling && t.Rollout.Spec.Service.PortDiscovery
	if err := EnsureService(ctx, c, uncached, t, t.Primary, t.PrimarySelector, true, servicePorts(t, primary), keep); err != nil {
		return err
	}
	if err := EnsureService(ctx, c, uncached, t, t.Canary, t.CanarySelector, true, servicePorts(t, t.CanaryPorts), false); err != nil {
		return err
	}
	if t.Rollout.Spec.Service.Adopt {
		adopted, err := adoptApex(ctx, c, uncached, t)
		if err != nil || adopted {
			// Just adopted: the cache learns of it with the next event.
			return err
		}
	}
	apex := append(slices.Clone(primary), t.CanaryPorts...)
	followPrimary := t.Rollout.Spec.Routing != nil && t.PrimaryReady
	return EnsureService(ctx, c, uncached, t, t.Apex, t.PrimarySelector, followPrimary, servicePorts(t, apex), keep)
}

// adoptApex takes over the apex Service when it exists, is not in the
// cache (so not Sluice's) and no other object controls it: it adds
// Sluice's labels, AdoptedAnnotation and the Rollout as controller, and
// changes nothing else; its selector and ports stay until EnsureService
// and the router move them. It reports whether it adopted the Service now.
func adoptApex(ctx context.Context, c client.Client, uncached client.Reader, t Target) (bool, error) {
	key := client.ObjectKey{Namespace: t.Rollout.Namespace, Name: t.Apex}
	if err := c.Get(ctx, key, &corev1.Service{}, client.UnsafeDisableDeepCopy); err == nil || !apierrors.IsNotFound(err) {
		return false, client.IgnoreNotFound(err)
	}
	svc := &corev1.Service{}
	if err := uncached.Get(ctx, key, svc); apierrors.IsNotFound(err) {
		return false, nil // not there: EnsureService creates it
	} else if err != nil {
		return false, fmt.Errorf("reading Service %s: %w", t.Apex, err)
	}
	if owner := metav1.GetControllerOf(svc); owner != nil && owner.UID != t.Rollout.UID {
		return false, &ServiceConflictError{Name: t.Apex}
	}
	// Locked: the owner references are a list, which a merge patch writes
	// whole.
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	metav1.SetMetaDataLabel(&svc.ObjectMeta, ManagedByLabel, ManagedByValue)
	metav1.SetMetaDataLabel(&svc.ObjectMeta, "sluice.dev/rollout", t.Rollout.Name)
	metav1.SetMetaDataAnnotation(&svc.ObjectMeta, AdoptedAnnotation, "true")
	if err := controllerutil.SetControllerReference(t.Rollout, svc, c.Scheme()); err != nil {
		return false, err
	}
	if err := c.Patch(ctx, svc, patch); err != nil {
		return false, fmt.Errorf("adopting Service %s: %w", t.Apex, err)
	}
	return true, nil
}

// servicePorts returns the ports of a Service of the Rollout: the main port
// (the one routers split), then service.ports in their order, then, with
// service.portDiscovery, the container ports its pods declare.
func servicePorts(t Target, containers []corev1.ContainerPort) []corev1.ServicePort {
	s := t.Rollout.Spec.Service
	target := intstr.FromInt32(s.Port)
	if s.TargetPort != nil {
		target = *s.TargetPort
	}
	name := s.PortName
	if name == "" {
		name = "http"
	}
	out := []corev1.ServicePort{{Name: name, Port: s.Port, TargetPort: target, Protocol: corev1.ProtocolTCP, AppProtocol: appProtocol(s.AppProtocol)}}
	for _, p := range s.Ports {
		target := intstr.FromInt32(p.Port)
		if p.TargetPort != nil {
			target = *p.TargetPort
		}
		protocol := corev1.Protocol(p.Protocol)
		if protocol == "" {
			protocol = corev1.ProtocolTCP
		}
		out = append(out, corev1.ServicePort{Name: p.Name, Port: p.Port, TargetPort: target, Protocol: protocol, AppProtocol: appProtocol(p.AppProtocol)})
	}
	if s.PortDiscovery {
		out = DiscoveredPorts(out, containers)
	}
	return out
}

// DiscoveredPorts appends to listed a Service port for each container port
// that none of listed serves already. A port is served already when a
// listed port has its number and protocol, or targets it (by number or by
// name): the main port and service.ports win over a discovered port. A
// discovered port keeps the container port's name, or is named after its
// protocol and number (tcp-9090) when unnamed or when its name is taken; its
// targetPort is the container port's number.
func DiscoveredPorts(listed []corev1.ServicePort, containers []corev1.ContainerPort) []corev1.ServicePort {
	out := slices.Clone(listed)
	for _, cp := range containers {
		protocol := cp.Protocol
		if protocol == "" {
			protocol = corev1.ProtocolTCP
		}
		taken := func(name string) bool {
			return slices.ContainsFunc(out, func(p corev1.ServicePort) bool { return p.Name == name })
		}
		if slices.ContainsFunc(out, func(p corev1.ServicePort) bool {
			if p.Protocol != protocol {
				return false
			}
			return p.Port == cp.ContainerPort ||
				(p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == cp.ContainerPort) ||
				(p.TargetPort.Type == intstr.String && cp.Name != "" && p.TargetPort.StrVal == cp.Name)
		}) {
			continue
		}
		name := cp.Name
		if name == "" || taken(name) {
			name = fmt.Sprintf("%s-%d", strings.ToLower(string(protocol)), cp.ContainerPort)
		}
		if taken(name) {
			continue
		}
		out = append(out, corev1.ServicePort{Name: name, Port: cp.ContainerPort, TargetPort: intstr.FromInt32(cp.ContainerPort), Protocol: protocol})
	}
	return out
}

// KeptPorts appends to want the ports of have that want lacks (by name)
// and that clash with none of want's (same name, or same number and
// protocol): the ports a Service keeps while pods that may serve them run.
func KeptPorts(want, have []corev1.ServicePort) []corev1.ServicePort {
	out := slices.Clone(want)
	for _, h := range have {
		if slices.ContainsFunc(out, func(p corev1.ServicePort) bool {
			return p.Name == h.Name || (p.Port == h.Port && p.Protocol == h.Protocol)
		}) {
			continue
		}
		out = append(out, corev1.ServicePort{Name: h.Name, Port: h.Port, TargetPort: h.TargetPort, Protocol: h.Protocol, AppProtocol: h.AppProtocol})
	}
	return out
}

// ContainerPorts lists the ports a pod template's containers declare, in
// their order (init containers, sidecars included, are left out).
func ContainerPorts(template *corev1.PodTemplateSpec) []corev1.ContainerPort {
	if template == nil {
		return nil
	}
	var out []corev1.ContainerPort
	for _, c := range template.Spec.Containers {
		out = append(out, c.Ports...)
	}
	return out
}

func appProtocol(p string) *string {
	if p == "" {
		return nil
	}
	return &p
}

// samePorts reports whether a Service's ports are the ones Sluice wants, on
// the fields Sluice sets (the API server fills in others, e.g. nodePort).
func samePorts(have, want []corev1.ServicePort) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range want {
		h, w := have[i], want[i]
		if h.Name != w.Name || h.Port != w.Port || h.TargetPort != w.TargetPort || h.Protocol != w.Protocol ||
			ptr.Deref(h.AppProtocol, "") != ptr.Deref(w.AppProtocol, "") {
			return false
		}
	}
	return true
}

// EnsureService creates the named Service or updates its ports and the
// user's labels and annotations for it (service.apex, .primary, .canary);
// the selector is set on creation and, when updateSelector is true, kept
// equal to selector.
//
// want is the ports the Service should have; with keep, ports it has beyond
// them stay (see EnsureServices). uncached tells, when a create is refused
// as existing, whose Service is in the way (see alreadyExists).
func EnsureService(ctx context.Context, c client.Client, uncached client.Reader, t Target, name string, selector map[string]string, updateSelector bool, want []corev1.ServicePort, keep bool) error {
	ro := t.Rollout
	svc := &corev1.Service{}
	// The cache's own copy, not a deep copy: nearly every call finds the
	// Service as it should be and only reads it. It is never changed here;
	// a patch goes from a copy (below).
	err := c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: name}, svc, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		svc = &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ro.Namespace,
				Labels: map[string]string{ManagedByLabel: ManagedByValue, "sluice.dev/rollout": ro.Name},
			},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: want},
		}
		SyncMetadata(svc, serviceMetadata(t, name))
		if err := controllerutil.SetControllerReference(ro, svc, c.Scheme()); err != nil {
			return err
		}
		if err := c.Create(ctx, svc); apierrors.IsAlreadyExists(err) {
			return alreadyExists(ctx, uncached, ro, name)
		} else if err != nil {
			return fmt.Errorf("creating Service %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Service %s: %w", name, err)
	}
	if !metav1.IsControlledBy(svc, ro) {
		return &ServiceConflictError{Name: name}
	}
	if keep || svc.Annotations[AdoptedAnnotation] == "true" {
		// An adopted Service keeps the ports it came with, too.
		want = KeptPorts(want, svc.Spec.Ports)
	}
	portsSame := samePorts(svc.Spec.Ports, want)
	selectorSame := !updateSelector || maps.Equal(svc.Spec.Selector, selector)
	// Most calls change nothing, and need no copy of the Service.
	if portsSame && selectorSame && !MetadataChanged(svc, serviceMetadata(t, name)) {
		return nil
	}
	upd := svc.DeepCopy()
	SyncMetadata(upd, serviceMetadata(t, name))
	upd.Spec.Ports = want
	if updateSelector {
		upd.Spec.Selector = selector
	}
	// Locked: a merge patch writes the ports whole, and an adopted Service
	// is the team's too. Written from a copy older than their edit, it would
	// drop a port they just added; a conflict is made again from the cache
	// once it has the edit.
	if err := c.Patch(ctx, upd, client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating Service %s: %w", name, err)
	}
	return nil
}

// alreadyExists tells what a create of the Service name, refused as
// existing, ran into: the Rollout's own Service, created by an earlier
// reconcile that the cache has not caught up with (ownwrites.ErrBehind:
// look again once it has), or someone else's (a ServiceConflictError). Only
// the API server can tell: the cache does not have it. Its metadata is
// enough.
func alreadyExists(ctx context.Context, uncached client.Reader, ro *sluicev1.Rollout, name string) error {
	if uncached == nil {
		return &ServiceConflictError{Name: name}
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Service"))
	if err := uncached.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: name}, meta); err != nil {
		// Gone again, or the API server did not answer: try again.
		return fmt.Errorf("reading Service %s, which exists: %w", name, err)
	}
	if metav1.IsControlledBy(meta, ro) {
		return fmt.Errorf("Service %s: %w", name, ownwrites.ErrBehind)
	}
	return &ServiceConflictError{Name: name}
}

// ReleaseApex hands the apex Service back when a Rollout is deleted: it
// selects the target's pods and no longer belongs to the Rollout, so it
// outlives it and clients keep reaching the application.
func ReleaseApex(ctx context.Context, c client.Client, uncached client.Reader, t Target) error {
	return releaseApex(ctx, c, uncached, t, false)
}

// ReleaseAdoptedApex hands back an apex Service the Rollout adopted (the
// team's own) when the target is gone and Sluice's objects go with the
// Rollout: left with the Rollout as its controller, the garbage collector
// would delete it, a LoadBalancer's address with it. Selecting the target's
// pods, it serves a target created again. One Sluice created goes.
func ReleaseAdoptedApex(ctx context.Context, c client.Client, uncached client.Reader, t Target) error {
	return releaseApex(ctx, c, uncached, t, true)
}

// releaseApex reads the Service from the API server: the cache holds only
// Sluice's Services and learns of an adoption with its watch event, so a
// Rollout deleted a moment after adopting the team's Service would find
// none there, and leave it to the garbage collector.
func releaseApex(ctx context.Context, c client.Client, uncached client.Reader, t Target, adoptedOnly bool) error {
	svc := &corev1.Service{}
	err := uncached.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: t.Apex}, svc)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading apex Service %s: %w", t.Apex, err)
	}
	// Another Rollout's Service of the same name (this one stalled on it,
	// ServiceConflict) is that Rollout's to hand back, not this one's.
	if ControlledByAnother(svc, t.Rollout) || (adoptedOnly && svc.Annotations[AdoptedAnnotation] != "true") {
		return nil
	}
	// Locked: the owner references are a list, which a merge patch writes
	// whole; a conflict is tried again with the next pass.
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	// Unknown only when the target and the primary are both gone: the
	// selector stays as it is.
	if t.CanarySelector != nil {
		svc.Spec.Selector = t.CanarySelector
	}
	var owners []metav1.OwnerReference
	for _, o := range svc.OwnerReferences {
		if o.UID != t.Rollout.UID {
			owners = append(owners, o)
		}
	}
	svc.OwnerReferences = owners
	delete(svc.Labels, ManagedByLabel)
	delete(svc.Labels, "sluice.dev/rollout")
	delete(svc.Annotations, RouteAnnotation)
	delete(svc.Annotations, AdoptedAnnotation)
	if err := c.Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("handing apex Service %s back to the target: %w", t.Apex, err)
	}
	return nil
}

// StripService is the cache transform for the Services Sluice manages. It
// keeps what Sluice reads and patches (labels, annotations, owners,
// selector, ports, type) and drops the addresses and policies the API
// server fills in, and the status. Sluice changes a Service with a merge
// patch from its cached copy, which names the fields it changes only, so
// the dropped fields are never written back.
func StripService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	svc.ManagedFields = nil
	s := &svc.Spec
	s.ClusterIP, s.ClusterIPs, s.IPFamilies, s.IPFamilyPolicy = "", nil, nil, nil
	s.InternalTrafficPolicy, s.SessionAffinity, s.SessionAffinityConfig = nil, "", nil
	svc.Status = corev1.ServiceStatus{}
	// The selector repeats the workloads' pod labels (internal/intern).
	s.Selector = intern.Map(s.Selector)
	return svc, nil
}

// ControlledByAnother reports whether o has a controller other than the
// Rollout: an object of the same name that another Rollout (or anything
// else) holds, which this Rollout never changes nor hands back.
func ControlledByAnother(o metav1.Object, ro *sluicev1.Rollout) bool {
	c := metav1.GetControllerOfNoCopy(o)
	return c != nil && c.UID != ro.UID
}
