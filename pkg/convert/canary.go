package convert

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// router is the Sluice router a Canary's provider maps to.
type router int

const (
	routerKubernetes router = iota
	routerIstio
	routerGatewayAPI
)

// weighted says whether the router can split traffic by weight or request.
func (rt router) weighted() bool { return rt != routerKubernetes }

func (rt router) String() string {
	switch rt {
	case routerIstio:
		return "istio"
	case routerGatewayAPI:
		return "gatewayAPI"
	}
	return "kubernetes"
}

// canaryConv is the conversion of one Canary: the spec being read, the
// Rollout being built, and extra objects (MetricTemplates for inline
// queries).
type canaryConv struct {
	spec   *reader
	meta   objectMeta
	router router
	ro     *sluicev1.Rollout
	extra  []any
	// metricsServer is the Canary's Prometheus address, for the templates
	// made of inline queries.
	metricsServer string
	// tcp is true when the Istio router routes the main port as TCP
	// (istio.TCP): the HTTP-only fields have no Sluice field then.
	tcp bool
}

// convertCanary converts a Canary into a Rollout (and MetricTemplates for
// its inline queries).
func convertCanary(r *reader, meta objectMeta) ([]map[string]any, error) {
	spec := r.obj("spec")
	if spec == nil {
		return nil, fmt.Errorf("the Canary has no spec")
	}
	c := &canaryConv{spec: spec, meta: meta, ro: &sluicev1.Rollout{
		TypeMeta: metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace,
			Labels: meta.Labels, Annotations: meta.Annotations},
	}}
	if err := c.target(); err != nil {
		return nil, err
	}
	c.autoscaler()
	c.provider()
	if err := c.service(); err != nil {
		return nil, err
	}
	c.otherRefs()
	c.lifecycle()
	c.analysis()
	objs := []map[string]any{}
	for _, o := range append([]any{c.ro}, c.extra...) {
		m, err := toMap(o)
		if err != nil {
			return nil, err
		}
		objs = append(objs, m)
	}
	return objs, nil
}

// target maps targetRef; Sluice releases Deployments and DaemonSets.
func (c *canaryConv) target() error {
	t := c.spec.obj("targetRef")
	if t == nil {
		return fmt.Errorf("spec.targetRef is missing")
	}
	kind, _ := t.str("kind")
	name, _ := t.str("name")
	apiVersion, _ := t.str("apiVersion")
	switch kind {
	case "Deployment":
	case "DaemonSet":
		t.note("kind", Differs, "Sluice parks the DaemonSet between releases with the node label %s=%s in its nodeSelector (no node may carry it; Flagger uses a label of its own), "+
			"and refuses a DaemonSet on the host's network, on host ports or with updateStrategy OnDelete: its primary and canary pods share each node during a run",
			workload.ParkedNodeLabel, workload.ParkedNodeValue)
	default:
		return fmt.Errorf("spec.targetRef.kind %s: Sluice releases Deployments and DaemonSets only", kind)
	}
	if name == "" {
		return fmt.Errorf("spec.targetRef.name is missing")
	}
	if apiVersion != "apps/v1" {
		t.note("apiVersion", Changed, "%q became apps/v1, the only version Sluice accepts", apiVersion)
	}
	c.ro.Spec.TargetRef = sluicev1.TargetRef{APIVersion: "apps/v1", Kind: kind, Name: name}
	return nil
}

// autoscaler maps autoscalerRef: HPAs of autoscaling/v2 (older versions are
// moved to v2) and KEDA ScaledObjects.
func (c *canaryConv) autoscaler() {
	a := c.spec.obj("autoscalerRef")
	if a == nil {
		return
	}
	if c.ro.Spec.TargetRef.Kind == "DaemonSet" {
		a.note("", NotCarried, "a DaemonSet runs one pod on each node it selects and has no replica count to scale; Sluice refuses autoscalerRef with it")
		return
	}
	kind, _ := a.str("kind")
	name, _ := a.str("name")
	apiVersion, _ := a.str("apiVersion")
	ref := &sluicev1.AutoscalerRef{Kind: kind, Name: name, APIVersion: apiVersion}
	switch {
	case kind == "HorizontalPodAutoscaler" && apiVersion != "autoscaling/v2":
		a.note("apiVersion", Changed, "%q became autoscaling/v2: Sluice copies HPAs of that version (the same object, served in every version)", apiVersion)
		ref.APIVersion = "autoscaling/v2"
	case kind == "HorizontalPodAutoscaler", kind == "ScaledObject" && apiVersion == "keda.sh/v1alpha1":
	default:
		a.note("", NotCarried, "%s %s: Sluice copies HorizontalPodAutoscalers (autoscaling/v2) and KEDA ScaledObjects (keda.sh/v1alpha1) only", apiVersion, kind)
		return
	}
	if rep := a.obj("primaryScalerReplicas"); rep != nil {
		ref.PrimaryScalerReplicas = &sluicev1.ScalerReplicas{}
		if n, ok := rep.int("minReplicas"); ok {
			ref.PrimaryScalerReplicas.MinReplicas = ptr.To(int32(max(n, 1)))
			if n < 1 {
				rep.note("minReplicas", Changed, "raised to 1: the primary serves all traffic between releases")
			}
		}
		if n, ok := rep.int("maxReplicas"); ok {
			ref.PrimaryScalerReplicas.MaxReplicas = ptr.To(int32(n))
		}
	}
	if q := a.strMap("primaryScalerQueries"); len(q) > 0 {
		if kind == "ScaledObject" {
			ref.PrimaryScalerQueries = q
		} else {
			a.note("primaryScalerQueries", NotCarried, "rewrites KEDA trigger queries and has no meaning for an HPA")
		}
	}
	c.ro.Spec.AutoscalerRef = ref
}

// provider chooses the router from spec.provider.
func (c *canaryConv) provider() {
	p, ok := c.spec.str("provider")
	switch {
	case !ok && c.spec.has("service.gatewayRefs"):
		c.router = routerGatewayAPI
		c.spec.note("service.gatewayRefs", Differs, "no provider is set: read as gatewayapi because of gatewayRefs")
	case !ok:
		c.router = routerIstio
		c.spec.note("provider", Differs, "spec.provider is not set: Flagger then uses its -mesh-provider flag, istio unless changed; converted for routing.istio — set provider in the Canary, or edit routing, if your Flagger uses another")
	case p == "istio":
		c.router = routerIstio
	case p == "kubernetes":
		c.router = routerKubernetes
	case p == "gatewayapi" || strings.HasPrefix(p, "gatewayapi:"):
		c.router = routerGatewayAPI
	default:
		c.router = routerKubernetes
		c.spec.note("provider", NotCarried, "provider %q: Sluice routes with the Gateway API, Istio or its plain Services; converted for the kubernetes router (blue/green, no weights). To shift weights, set routing.gatewayAPI if your gateway implements the Gateway API", p)
	}
	switch c.router {
	case routerIstio:
		c.ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{}}
	case routerGatewayAPI:
		c.ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	}
}

// otherRefs reports the references of routers Sluice does not have.
func (c *canaryConv) otherRefs() {
	for _, ref := range []struct{ key, what string }{
		{"ingressRef", "an Ingress (NGINX and other ingress providers)"},
		{"upstreamRef", "a Gloo Upstream"},
		{"routeRef", "an APISIX route"},
	} {
		if key, what := ref.key, ref.what; c.spec.has(key) {
			c.spec.note(key, NotCarried, "names %s: Sluice routes with the Gateway API, Istio or its plain Services and has no such reference", what)
		}
	}
	if addr, ok := c.spec.str("metricsServer"); ok {
		c.metricsServer = addr
		c.spec.note("metricsServer", Differs, "Sluice's built-in metrics query the manager's --prometheus-address; MetricTemplates made of inline queries get %s as provider.address", addr)
	}
}

// lifecycle maps the fields about the Rollout as a whole.
func (c *canaryConv) lifecycle() {
	s := &c.ro.Spec
	if n, ok := c.spec.int("progressDeadlineSeconds"); ok {
		s.ProgressDeadlineSeconds = ptr.To(int32(max(n, 1)))
	}
	if b, ok := c.spec.bool("skipAnalysis"); ok {
		s.SkipAnalysis = b
	}
	if b, ok := c.spec.bool("suspend"); ok {
		s.Suspend = b
	}
	if b, ok := c.spec.bool("revertOnDeletion"); ok && !b {
		c.spec.note("revertOnDeletion", Differs, "Sluice always hands traffic back to the target, once it is ready, when a Rollout is deleted: there is no way to leave the primary running")
	}
}
