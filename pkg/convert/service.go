package convert

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic/istio"
)

// service maps spec.service: the ports of the generated Services, and the
// router's settings that Flagger keeps there.
func (c *canaryConv) service() error {
	s := c.spec.obj("service")
	if s == nil {
		return fmt.Errorf("spec.service is missing")
	}
	port, ok := s.int("port")
	if !ok || port < 1 || port > 65535 {
		return fmt.Errorf("spec.service.port must be a port number (1-65535)")
	}
	svc := &c.ro.Spec.Service
	svc.Port = int32(port)
	if v, ok := s.get("targetPort"); ok {
		switch tp := v.(type) {
		case string:
			svc.TargetPort = ptr.To(intstr.FromString(tp))
		default:
			if n, ok := s.int("targetPort"); ok {
				svc.TargetPort = ptr.To(intstr.FromInt32(int32(n)))
			}
		}
	}
	if name, ok := s.str("portName"); ok {
		svc.PortName = name
	}
	if p, ok := s.str("appProtocol"); ok {
		svc.AppProtocol = p
	}
	if d, ok := s.bool("portDiscovery"); ok {
		svc.PortDiscovery = d
	}
	c.serviceMeta(s)
	c.serviceUnsupported(s)
	switch c.router {
	case routerIstio:
		c.tcp = istio.TCP(svc)
		c.istio(s)
	case routerGatewayAPI:
		c.gatewayAPI(s)
	}
	c.routerFieldsElsewhere(s)
	return nil
}

// dns1035 is the form of service.name the Sluice CRD accepts.
var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// serviceMeta maps the apex Service's name and the Services' labels and
// annotations.
func (c *canaryConv) serviceMeta(s *reader) {
	svc, target := &c.ro.Spec.Service, c.ro.Spec.TargetRef.Name
	if name, ok := s.str("name"); ok && name != target {
		switch {
		case len(name) > 63 || !dns1035.MatchString(name):
			s.note("name", NotCarried, "%q is not a DNS-1035 label, which Sluice needs for service.name", name)
		case name == target+"-primary" || name == target+"-canary":
			s.note("name", NotCarried, "%s is the name of Sluice's -primary or -canary Service", name)
		default:
			svc.Name = name
			s.note("name", Differs, "the apex Service is %s as in Flagger, but the -primary and -canary Services are named after the target: %s-primary and %s-canary (Flagger: %s-primary, %s-canary)", name, target, target, name, name)
		}
	}
	svc.Apex, svc.Primary, svc.Canary = serviceMetadata(s, "apex"), serviceMetadata(s, "primary"), serviceMetadata(s, "canary")
}

// serviceMetadata maps the labels and annotations of one Service, without
// the keys Sluice sets itself.
func serviceMetadata(s *reader, key string) *sluicev1.ServiceMetadata {
	r := s.obj(key)
	if r == nil {
		return nil
	}
	md := &sluicev1.ServiceMetadata{Labels: r.strMap("labels"), Annotations: r.strMap("annotations")}
	for _, k := range slices.Sorted(maps.Keys(md.Labels)) {
		if k == "app.kubernetes.io/managed-by" || strings.HasPrefix(k, "sluice.dev/") {
			r.note("labels."+k, NotCarried, "Sluice sets this label itself")
			delete(md.Labels, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(md.Annotations)) {
		if strings.HasPrefix(k, "sluice.dev/") {
			r.note("annotations."+k, NotCarried, "Sluice sets annotations under sluice.dev/ itself")
			delete(md.Annotations, k)
		}
	}
	if len(md.Labels) == 0 {
		md.Labels = nil
	}
	if len(md.Annotations) == 0 {
		md.Annotations = nil
	}
	if md.Labels == nil && md.Annotations == nil {
		return nil
	}
	return md
}

// serviceUnsupported reports the Service fields Sluice has no equivalent for.
func (c *canaryConv) serviceUnsupported(s *reader) {
	for _, f := range []struct{ key, why string }{
		{"delegation", "Sluice generates a VirtualService that is not a delegate; adopt a delegate with routing.istio.virtualServiceRef instead"},
	} {
		if s.has(f.key) {
			s.note(f.key, NotCarried, "%s", f.why)
		}
	}
}

// istio maps the Istio fields of spec.service to routing.istio.
func (c *canaryConv) istio(s *reader) {
	is := c.ro.Spec.Routing.Istio
	is.Hosts = s.strList("hosts")
	is.Gateways = s.strList("gateways")
	is.TrafficPolicy = istioPolicy(s, "trafficPolicy")
	if c.tcp {
		c.istioTCP(s)
		return
	}
	if s.has("match") {
		is.Match = c.matches(s, "match")
	}
	if rt := s.obj("retries"); rt != nil {
		is.Retries = &sluicev1.IstioRetries{}
		if n, ok := rt.int("attempts"); ok {
			is.Retries.Attempts = int32(max(n, 0))
		}
		is.Retries.PerTryTimeout = duration(rt, "perTryTimeout")
		is.Retries.RetryOn, _ = rt.str("retryOn")
	}
	is.Timeout = duration(s, "timeout")
	if h := s.obj("headers"); h != nil {
		is.Headers = &sluicev1.IstioHeaders{Request: headerOps(h, "request"), Response: headerOps(h, "response")}
	}
	if rw := s.obj("rewrite"); rw != nil {
		is.Rewrite = &sluicev1.IstioRewrite{}
		is.Rewrite.URI, _ = rw.str("uri")
		is.Rewrite.Authority, _ = rw.str("authority")
	}
	is.CorsPolicy = istioPolicy(s, "corsPolicy")
}

// istioTCP reports the HTTP fields of a TCP service's Canary: Flagger
// leaves them out of its tcp route, and the Rollout's API refuses them.
func (c *canaryConv) istioTCP(s *reader) {
	if _, ok := s.str("appProtocol"); !ok {
		s.note("portName", Differs, "the port name makes Istio treat the port as TCP, so Sluice writes a tcp route for it; Flagger writes tcp routes only for appProtocol: tcp")
	}
	if s.has("match") {
		s.note("match", NotCarried, "a TCP service has no requests to match; Sluice's tcp route matches the main port, service.port (Flagger's matches the match's ports, or every port)")
	}
	for _, k := range []string{"retries", "timeout", "headers", "rewrite", "corsPolicy"} {
		if s.has(k) {
			s.note(k, NotCarried, "acts on HTTP requests, and the port is TCP: Flagger leaves it out of its tcp route, and the Rollout refuses it")
		}
	}
}

// istioPolicy carries an Istio policy of spec.service (trafficPolicy or
// corsPolicy) over as it is, both sides using Istio's own shape, after the
// check the Istio router makes: a policy it would refuse is left out, with
// the reason.
func istioPolicy(s *reader, key string) *runtime.RawExtension {
	v, ok := s.get(key)
	if !ok {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		s.invalid(key, v, "an object")
		return nil
	}
	ext := &runtime.RawExtension{Raw: raw}
	probe := &sluicev1.IstioRouting{TrafficPolicy: ext}
	if key == "corsPolicy" {
		probe = &sluicev1.IstioRouting{CorsPolicy: ext}
	}
	if err := istio.CheckPolicies(probe); err != nil {
		s.note(key, NotCarried, "Istio would refuse it, and Sluice would stall the Rollout: %v", err)
		return nil
	}
	return ext
}

// headerOps maps one side of Istio header operations.
func headerOps(h *reader, key string) *sluicev1.HeaderOperations {
	o := h.obj(key)
	if o == nil {
		return nil
	}
	return &sluicev1.HeaderOperations{Set: o.strMap("set"), Add: o.strMap("add"), Remove: o.strList("remove")}
}

// gatewayAPI maps gatewayRefs, hosts, timeout and headers to
// routing.gatewayAPI.
func (c *canaryConv) gatewayAPI(s *reader) {
	g := c.ro.Spec.Routing.GatewayAPI
	g.Hostnames = s.strList("hosts")
	if d := duration(s, "timeout"); d != nil {
		g.Timeouts = &sluicev1.GatewayAPITimeouts{Request: gatewayDuration(d.Duration)}
	}
	if h := s.obj("headers"); h != nil {
		if o := headerOps(h, "request"); o != nil {
			g.Filters = append(g.Filters, sluicev1.GatewayAPIFilter{Type: "RequestHeaderModifier", RequestHeaderModifier: o})
		}
		if o := headerOps(h, "response"); o != nil {
			g.Filters = append(g.Filters, sluicev1.GatewayAPIFilter{Type: "ResponseHeaderModifier", ResponseHeaderModifier: o})
		}
	}
	for _, ref := range s.items("gatewayRefs") {
		p := sluicev1.ParentReference{}
		p.Name, _ = ref.str("name")
		p.Namespace, _ = ref.str("namespace")
		p.SectionName, _ = ref.str("sectionName")
		kind, hasKind := ref.str("kind")
		group, hasGroup := ref.str("group")
		switch {
		case !hasKind || kind == "Gateway":
			if hasGroup && group != "gateway.networking.k8s.io" {
				ref.note("group", NotCarried, "a Gateway of group %s: Sluice's parentRefs name Gateways of gateway.networking.k8s.io", group)
			}
			if ref.has("port") {
				ref.note("port", NotCarried, "Sluice attaches to a Gateway's listener by sectionName only")
			}
		case kind == "Service" && (!hasGroup || group == "" || group == "core"):
			// GAMMA: a mesh route of the Service's traffic.
			p.Kind = "Service"
			if n, ok := ref.int("port"); ok && n >= 1 && n <= 65535 {
				p.Port = ptr.To(int32(n))
			}
		default:
			ref.note("kind", NotCarried, "a parent of kind %s: Sluice's parentRefs are Gateways, or Services for mesh (GAMMA) routing", kind)
			p.Name = ""
		}
		if p.Name != "" {
			g.ParentRefs = append(g.ParentRefs, p)
		}
	}
}

// routedBy lists the routing fields of spec.service each router takes.
var routedBy = map[router][]string{
	routerIstio:      {"hosts", "gateways", "match", "retries", "timeout", "headers", "rewrite", "trafficPolicy", "corsPolicy"},
	routerGatewayAPI: {"hosts", "gatewayRefs", "timeout", "headers"},
}

// routerFieldsElsewhere reports the routing fields of spec.service that the
// chosen router has no place for.
func (c *canaryConv) routerFieldsElsewhere(s *reader) {
	for _, k := range []string{"hosts", "gateways", "gatewayRefs", "match", "retries", "timeout", "headers", "rewrite", "trafficPolicy", "corsPolicy"} {
		if !s.has(k) || slices.Contains(routedBy[c.router], k) {
			continue
		}
		switch c.router {
		case routerKubernetes:
			s.note(k, NotCarried, "the kubernetes router switches the apex Service's selector and has no routes")
		case routerIstio:
			s.note(k, NotCarried, "goes with the Gateway API; the Istio router attaches through service.gateways")
		case routerGatewayAPI:
			s.note(k, NotCarried, "Sluice's Gateway API router generates an HTTPRoute with parentRefs, hostnames, header filters and timeouts only; adopt an HTTPRoute of your own (routing.gatewayAPI.httpRouteRef) to keep matches, retries and rewrites")
		}
	}
}

// matches maps a list of Istio HTTPMatchRequests (Flagger's match format for
// every provider) to Sluice request matches.
func (c *canaryConv) matches(r *reader, key string) []sluicev1.RequestMatch {
	var out []sluicev1.RequestMatch
	for _, m := range r.items(key) {
		var rm sluicev1.RequestMatch
		if u := m.obj("uri"); u != nil {
			rm.URI = stringMatch(u)
		}
		if meth := m.obj("method"); meth != nil {
			if sm := stringMatch(meth); sm != nil && sm.Exact != nil {
				rm.Method = *sm.Exact
			} else if sm != nil {
				meth.note("", NotCarried, "Sluice matches a method by its exact name only")
			}
		}
		if h := m.obj("headers"); h != nil {
			for _, name := range slices.Sorted(maps.Keys(h.m)) {
				hr := h.obj(name)
				if hr == nil {
					continue
				}
				if sm := stringMatch(hr); sm != nil {
					if rm.Headers == nil {
						rm.Headers = map[string]sluicev1.StringMatch{}
					}
					rm.Headers[name] = *sm
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m.m)) {
			if k != "uri" && k != "method" && k != "headers" {
				m.note(k, NotCarried, "Sluice matches requests by uri, method, headers and cookies only")
			}
		}
		if rm.URI == nil && rm.Method == "" && len(rm.Headers) == 0 {
			m.note("", NotCarried, "nothing of this match is left: it is dropped rather than made to match every request")
			continue
		}
		out = append(out, rm)
	}
	return out
}

// stringMatch maps an Istio StringMatch: exactly one of exact, prefix, regex.
func stringMatch(r *reader) *sluicev1.StringMatch {
	var sm sluicev1.StringMatch
	n := 0
	if v, ok := r.str("exact"); ok {
		sm.Exact, n = &v, n+1
	}
	if v, ok := r.str("prefix"); ok && n == 0 {
		sm.Prefix, n = &v, n+1
	}
	if v, ok := r.str("regex"); ok && n == 0 {
		sm.Regex, n = &v, n+1
	}
	if n == 0 {
		r.note("", NotCarried, "needs one of exact, prefix or regex")
		return nil
	}
	return &sm
}

// durationForm is the form of a duration the Sluice CRD accepts.
var durationForm = regexp.MustCompile(`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`)

// validDuration says whether the Sluice CRD accepts s as a duration.
func validDuration(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d >= 0 && durationForm.MatchString(s)
}

// duration reads a duration field; a malformed one is reported.
func duration(r *reader, key string) *metav1.Duration {
	s, ok := r.str(key)
	if !ok {
		return nil
	}
	if !validDuration(s) {
		r.note(key, NotCarried, "%q is not a duration such as 30s, 5m or 1h30m", s)
		return nil
	}
	d, _ := time.ParseDuration(s)
	return &metav1.Duration{Duration: d}
}

// gatewayDuration writes d in the Gateway API's duration format (hours,
// minutes, seconds and milliseconds, e.g. 1m30s or 500ms).
func gatewayDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	out := ""
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			out += strconv.FormatInt(int64(n), 10) + u.name
			d -= n * u.unit
		}
	}
	return out
}
