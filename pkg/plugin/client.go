package plugin

import (
	"context"
	"errors"
	"fmt"
	"sort"

	authnv1 "k8s.io/api/authentication/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/plugin/describe"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// rolloutsResource is the Rollout resource; Rollouts are read as unstructured
// objects so that -o json|yaml prints exactly what the API server holds.
var rolloutsResource = sluicev1.GroupVersion.WithResource("rollouts")

// fallbackActor names who asked for an action when the API server cannot
// say who we are.
const fallbackActor = "kubectl-sluice"

// clients talks to the cluster the config flags point at.
type clients struct {
	dyn       dynamic.Interface
	kube      kubernetes.Interface
	namespace string
}

// clients builds the API clients and resolves the namespace (-n, else the
// kubeconfig context's, else "default").
func (o *options) clients() (*clients, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("resolving the namespace: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &clients{dyn: dyn, kube: kube, namespace: ns}, nil
}

func (c *clients) rollouts(ns string) dynamic.ResourceInterface {
	return c.dyn.Resource(rolloutsResource).Namespace(ns)
}

// getRollout reads one Rollout, as the API server has it and typed.
func (c *clients) getRollout(ctx context.Context, name string) (*unstructured.Unstructured, *sluicev1.Rollout, error) {
	u, err := c.rollouts(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, describeErr(err, c.namespace, name)
	}
	ro, err := toRollout(u)
	return u, ro, err
}

// describeErr turns a NotFound into words a user acts on.
func describeErr(err error, ns, name string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("rollout %q not found in namespace %q", name, ns)
	}
	return fmt.Errorf("reading rollout %s/%s: %w", ns, name, err)
}

// toRollout converts an unstructured Rollout to the typed one.
func toRollout(u *unstructured.Unstructured) (*sluicev1.Rollout, error) {
	ro := &sluicev1.Rollout{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ro); err != nil {
		return nil, fmt.Errorf("decoding rollout %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return ro, nil
}

// watchRollout calls fn with the Rollout now and after every change, until fn
// says stop, returns an error, or ctx ends (then it returns ctx.Err()). It
// re-opens the watch where it closed, and starts over from a fresh read when
// the API server has compacted that point away.
func (c *clients) watchRollout(ctx context.Context, name string, fn func(*unstructured.Unstructured) (stop bool, err error)) error {
	for {
		u, err := c.rollouts(c.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return describeErr(err, c.namespace, name)
		}
		if stop, err := fn(u); stop || err != nil {
			return err
		}
		err = c.watchFrom(ctx, name, u.GetResourceVersion(), fn)
		if !errors.Is(err, errWatchExpired) {
			return err
		}
	}
}

var errWatchExpired = errors.New("watch expired")

// watchFrom follows the Rollout from resource version rv.
func (c *clients) watchFrom(ctx context.Context, name, rv string, fn func(*unstructured.Unstructured) (bool, error)) error {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		w, err := c.rollouts(c.namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				return errWatchExpired
			}
			return fmt.Errorf("watching rollout %s/%s: %w", c.namespace, name, err)
		}
		next, stop, err := drain(ctx, w, rv, fn)
		w.Stop()
		if stop || err != nil {
			return err
		}
		rv = next
	}
}

// drain reads one watch until it closes; it returns the last resource version.
func drain(ctx context.Context, w watch.Interface, rv string, fn func(*unstructured.Unstructured) (bool, error)) (string, bool, error) {
	for {
		select {
		case <-ctx.Done():
			return rv, true, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, false, nil
			}
			switch ev.Type {
			case watch.Error:
				// Ending the watch (Ctrl-C, the caller's context) makes the
				// client report its own cancel as an error event; both
				// channels are then ready, and either may be read first.
				if ctx.Err() != nil {
					return rv, true, ctx.Err()
				}
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
					return rv, true, errWatchExpired
				}
				return rv, true, fmt.Errorf("watching rollout: %w", err)
			case watch.Deleted:
				u, _ := ev.Object.(*unstructured.Unstructured)
				return rv, true, fmt.Errorf("rollout %s/%s was deleted", u.GetNamespace(), u.GetName())
			case watch.Bookmark:
				if u, ok := ev.Object.(*unstructured.Unstructured); ok {
					rv = u.GetResourceVersion()
				}
			case watch.Added, watch.Modified:
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				rv = u.GetResourceVersion()
				if stop, err := fn(u); stop || err != nil {
					return rv, true, err
				}
			}
		}
	}
}

// events lists the events.k8s.io/v1 events about a Rollout, oldest first.
func (c *clients) events(ctx context.Context, ro *sluicev1.Rollout) ([]eventsv1.Event, error) {
	sel := fields.Set{"regarding.kind": "Rollout", "regarding.name": ro.Name}.AsSelector().String()
	list, err := c.kube.EventsV1().Events(ro.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing events of rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		// An event about an earlier Rollout of the same name is not this one's.
		if e.Regarding.UID != "" && e.Regarding.UID != ro.UID {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return describe.EventTime(&out[i]).Before(describe.EventTime(&out[j])) })
	return out, nil
}

// budgets names the PodDisruptionBudgets over a Deployment target's pods,
// the ones Sluice copies over the primary's; known is false when the plugin
// cannot tell (the target or the budgets cannot be read: absent, or not
// allowed) and for a DaemonSet, whose pods a drain leaves in place.
func (c *clients) budgets(ctx context.Context, ro *sluicev1.Rollout) (names []string, known bool) {
	if ro.Spec.TargetRef.Kind != "" && ro.Spec.TargetRef.Kind != "Deployment" {
		return nil, false
	}
	d, err := c.kube.AppsV1().Deployments(ro.Namespace).Get(ctx, ro.Spec.TargetRef.Name, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	list, err := c.kube.PolicyV1().PodDisruptionBudgets(ro.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, false
	}
	for _, p := range list.Items {
		if p.Spec.Selector == nil || p.Labels[traffic.ManagedByLabel] == traffic.ManagedByValue || !p.DeletionTimestamp.IsZero() {
			continue
		}
		// An empty selector selects every pod of the namespace.
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			names = append(names, p.Name)
		}
	}
	return names, true
}

// whoAmI is the user the API server authenticates us as (a
// SelfSubjectReview), or fallbackActor when it cannot say.
func (c *clients) whoAmI(ctx context.Context) string {
	r, err := c.kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r.Status.UserInfo.Username == "" {
		return fallbackActor
	}
	return r.Status.UserInfo.Username
}
