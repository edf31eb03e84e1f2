package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

var routerKinds = []string{"gatewayAPI", "istio"}

// routerKindsAndGRPC are the router kinds plus "grpcRoute": the Gateway API
// router with routeKind: GRPCRoute, for the stories whose strategy has a
// gRPC form (session affinity has none and is refused with it).
var routerKindsAndGRPC = []string{"gatewayAPI", "grpcRoute", "istio"}

// routeObject is an empty route object of a story's router kind.
func routeObject(kind string) client.Object {
	switch kind {
	case "istio":
		return &istiov1.VirtualService{}
	case "grpcRoute":
		return &gwv1.GRPCRoute{}
	}
	return &gwv1.HTTPRoute{}
}

// routeList is an empty list of a story's router kind.
func routeList(kind string) client.ObjectList {
	switch kind {
	case "istio":
		return &istiov1.VirtualServiceList{}
	case "grpcRoute":
		return &gwv1.GRPCRouteList{}
	}
	return &gwv1.HTTPRouteList{}
}

func withRouter(kind string) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		switch kind {
		case "gatewayAPI":
			ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{
				ParentRefs: []sluicev1.ParentReference{{Name: "public", Namespace: "infra"}},
				Hostnames:  []string{"app.example.com"},
			}}
		case "grpcRoute":
			ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{
				RouteKind:  "GRPCRoute",
				ParentRefs: []sluicev1.ParentReference{{Name: "public", Namespace: "infra"}},
				Hostnames:  []string{"grpc.example.com"},
			}}
		case "istio":
			ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{
				Hosts: []string{"app.example.com"}, Gateways: []string{"infra/public"},
				Timeout: &metav1.Duration{Duration: 15 * time.Second},
				Retries: &sluicev1.IstioRetries{Attempts: 3, RetryOn: "5xx"},
			}}
		}
	}
}

func withCanaryWeights(ws ...int32) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: ws}}
	}
}

// routeView is what a route says, router-independent.
type routeView struct {
	primary, canary int32
	mirrorPercent   int32    // 0: no mirror to the canary
	inserted        []string // names of the rules Sluice inserted
	canaryCookie    string   // Set-Cookie on the canary backend
	abHeader        string   // the header an A/B rule matches, "name=value"
	shifting        bool     // the route carries sluice.dev/shifting=true
}

func (s *story) route(kind, name string) routeView {
	s.t.Helper()
	obj := routeObject(kind)
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, obj))
	return viewOf(kind, name, obj)
}

// viewOf reads a route object (an HTTPRoute, a GRPCRoute or a VirtualService).
func viewOf(kind, name string, obj runtime.Object) routeView {
	var v routeView
	if o, ok := obj.(client.Object); ok {
		v.shifting = o.GetLabels()["sluice.dev/shifting"] == "true"
	}
	switch kind {
	case "gatewayAPI":
		r := obj.(*gwv1.HTTPRoute)
		for _, rule := range r.Spec.Rules {
			if rule.Name != nil && strings.HasPrefix(string(*rule.Name), "sluice-") {
				v.inserted = append(v.inserted, string(*rule.Name))
				if strings.HasPrefix(string(*rule.Name), "sluice-ab") {
					h := rule.Matches[0].Headers[0]
					v.abHeader = string(h.Name) + "=" + h.Value
				}
				continue
			}
			for _, ref := range rule.BackendRefs {
				switch string(ref.Name) {
				case name + "-primary":
					v.primary = *ref.Weight
				case name + "-canary":
					v.canary = *ref.Weight
					for _, f := range ref.Filters {
						if f.ResponseHeaderModifier != nil {
							v.canaryCookie = f.ResponseHeaderModifier.Add[0].Value
						}
					}
				}
			}
			for _, f := range rule.Filters {
				if f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == name+"-canary" {
					v.mirrorPercent = *f.RequestMirror.Percent
				}
			}
		}
	case "grpcRoute":
		r := obj.(*gwv1.GRPCRoute)
		for _, rule := range r.Spec.Rules {
			if rule.Name != nil && strings.HasPrefix(string(*rule.Name), "sluice-") {
				v.inserted = append(v.inserted, string(*rule.Name))
				if strings.HasPrefix(string(*rule.Name), "sluice-ab") {
					h := rule.Matches[0].Headers[0]
					v.abHeader = string(h.Name) + "=" + h.Value
				}
				continue
			}
			for _, ref := range rule.BackendRefs {
				switch string(ref.Name) {
				case name + "-primary":
					v.primary = *ref.Weight
				case name + "-canary":
					v.canary = *ref.Weight
				}
			}
			for _, f := range rule.Filters {
				if f.RequestMirror != nil && string(f.RequestMirror.BackendRef.Name) == name+"-canary" {
					v.mirrorPercent = *f.RequestMirror.Percent
				}
			}
		}
	case "istio":
		vs := obj.(*istiov1.VirtualService)
		for _, h := range vs.Spec.Http {
			if strings.HasPrefix(h.Name, "sluice-") {
				v.inserted = append(v.inserted, h.Name)
				if strings.HasPrefix(h.Name, "sluice-ab") {
					for k, m := range h.Match[0].Headers {
						v.abHeader = k + "=" + m.GetExact()
					}
				}
				continue
			}
			for _, d := range h.Route {
				switch d.Destination.Host {
				case name + "-primary":
					v.primary = d.Weight
				case name + "-canary":
					v.canary = d.Weight
					if d.Headers != nil && d.Headers.Response != nil {
						v.canaryCookie = d.Headers.Response.Add["Set-Cookie"]
					}
				}
			}
			if h.Mirror != nil && h.Mirror.Host == name+"-canary" {
				v.mirrorPercent = int32(h.MirrorPercentage.GetValue())
			}
		}
		for _, t := range vs.Spec.Tcp {
			for _, d := range t.Route {
				switch d.Destination.Host {
				case name + "-primary":
					v.primary = d.Weight
				case name + "-canary":
					v.canary = d.Weight
				}
			}
		}
	}
	return v
}

// watchRoute follows the route with a watch (every write is seen, however
// short-lived) from before start (which starts the release) until the
// Rollout reaches phase, and returns every distinct view, in order.
func (s *story) watchRoute(kind, name string, until sluicev1.Phase, start func()) []routeView {
	s.t.Helper()
	wc, err := watchClient()
	s.must(err)
	ctx, cancel := context.WithTimeout(s.ctx, storyTimeout)
	defer cancel()
	w, err := wc.Watch(ctx, routeList(kind), client.InNamespace(s.ns))
	s.must(err)
	defer w.Stop()
	var seen []routeView
	var lastRV uint64
	// add records a view of obj unless it is older than one seen already:
	// the watch's first event can come from the API server's watch cache,
	// behind the GET that read the route first.
	add := func(obj client.Object) {
		rv, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
		if rv < lastRV {
			return
		}
		lastRV = rv
		v := viewOf(kind, name, obj)
		if len(seen) == 0 || !routeViewsEqual(seen[len(seen)-1], v) {
			seen = append(seen, v)
		}
	}
	get := func() client.Object {
		obj := routeObject(kind)
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, obj))
		return obj
	}
	add(get())
	start()
	done := time.NewTicker(50 * time.Millisecond)
	defer done.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				s.t.Fatalf("the route watch ended before %s reached %s; views %+v", name, until, seen)
			}
			if obj, isObj := ev.Object.(client.Object); isObj && obj.GetName() == name {
				add(obj)
			}
		case <-done.C:
			if s.getRollout(name).Status.Phase == until {
				add(get())
				return seen
			}
		case <-ctx.Done():
			s.t.Fatalf("Rollout %s did not reach %s; route views %+v", name, until, seen)
		}
	}
}

var (
	watchClientOnce sync.Once
	watchC          client.WithWatch
	watchErr        error
)

// watchClient is one client for every story's route watch: made once, so
// that a story's watch starts at once rather than after the discovery a new
// client does, while the release it watches is already moving.
func watchClient() (client.WithWatch, error) {
	watchClientOnce.Do(func() {
		watchC, watchErr = client.NewWithWatch(env.Config, client.Options{Scheme: k8sClient.Scheme()})
	})
	return watchC, watchErr
}

func routeViewsEqual(a, b routeView) bool {
	return a.primary == b.primary && a.canary == b.canary && a.mirrorPercent == b.mirrorPercent &&
		slices.Equal(a.inserted, b.inserted) && a.canaryCookie == b.canaryCookie && a.abHeader == b.abHeader &&
		a.shifting == b.shifting
}

func canaryWeights(views []routeView) []int32 {
	var out []int32
	for _, v := range views {
		if len(out) == 0 || out[len(out)-1] != v.canary {
			out = append(out, v.canary)
		}
	}
	return out
}

func TestACanaryShiftsWeightStepByStepThroughEachRouter(t *testing.T) {
	for _, kind := range routerKindsAndGRPC {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(20, 60))
			if v := s.route(kind, "podinfo"); v.primary != 100 || v.canary != 0 {
				t.Fatalf("after initialization the route holds %d/%d, want 100/0", v.primary, v.canary)
			}
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			got := canaryWeights(views)
			// 20 and 60 are the steps, 100 the promotion, 0 the primary taking over again.
			if !slices.Equal(got, []int32{0, 20, 60, 100, 0}) {
				t.Errorf("canary weights over the release = %v, want [0 20 60 100 0]", got)
			}
			for _, v := range views {
				if v.primary+v.canary != 100 {
					t.Errorf("weights %d/%d do not add up to 100", v.primary, v.canary)
				}
			}
			s.expectKStatus("podinfo", status.CurrentStatus)
		})
	}
}

// TestARouteIsLabelledWhileARunShiftsItAndNotAfterPromotion: GitOps tools
// and people can tell a route Sluice holds away from its resting state by
// the label sluice.dev/shifting=true.
func TestARouteIsLabelledWhileARunShiftsItAndNotAfterPromotion(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(20, 60))
			if v := s.route(kind, "podinfo"); v.shifting {
				t.Fatalf("the route is labelled before any run: %+v", v)
			}
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			labelled := false
			for _, v := range views {
				if v.canary != 0 && !v.shifting {
					t.Errorf("the route sends %d%% to the canary without the label", v.canary)
				}
				labelled = labelled || v.shifting
			}
			if !labelled {
				t.Errorf("the label never appeared during the run: %+v", views)
			}
			if last := views[len(views)-1]; last.shifting || last.canary != 0 {
				t.Errorf("after promotion the route is %+v, want all to the primary and no label", last)
			}
		})
	}
}

// TestTheShiftingLabelIsRemovedAtRollback: an aborted run takes the label
// off with the weight, on a generated route and on an adopted one.
func TestTheShiftingLabelIsRemovedAtRollback(t *testing.T) {
	for _, kind := range routerKindsAndGRPC {
		for _, adopted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/adopted=%v", kind, adopted), func(t *testing.T) {
				s := newStory(t)
				s.deploy("podinfo", "podinfo:1.0")
				routeName, opts := "podinfo", []rolloutOpt{withRouter(kind)}
				if adopted {
					routeName = "shop"
					opts = []rolloutOpt{s.adoptedRoute(kind, routeName)}
				}
				opts = append(opts, func(ro *sluicev1.Rollout) {
					ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
						{SetWeight: ptr.To[int32](30)}, {Pause: &sluicev1.PauseStep{}}, {SetWeight: ptr.To[int32](60)},
					}}}
				})
				s.initialized("podinfo", opts...)
				s.setImage("podinfo", "podinfo:2.0")
				s.eventually(storyTimeout, "the route at 30% with the label", func() error {
					if v := s.routeNamed(kind, routeName, "podinfo"); v.canary != 30 || !v.shifting {
						return fmt.Errorf("route %+v", v)
					}
					return nil
				})
				s.ask("podinfo", sluicev1.ActionAbort, "alice")
				s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
				s.eventually(storyTimeout, "the route back on the primary without the label", func() error {
					if v := s.routeNamed(kind, routeName, "podinfo"); v.canary != 0 || v.shifting {
						return fmt.Errorf("route %+v", v)
					}
					return nil
				})
			})
		}
	}
}

// adoptedRoute creates a route of the user's named name, sending everything
// to the apex Service podinfo, and has the Rollout adopt it.
func (s *story) adoptedRoute(kind, name string) rolloutOpt {
	s.t.Helper()
	switch kind {
	case "gatewayAPI":
		s.must(k8sClient.Create(s.ctx, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
				Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
					BackendObjectReference: gwv1.BackendObjectReference{Name: "podinfo", Port: ptr.To(gwv1.PortNumber(9898))}}}}}},
			},
		}))
		return func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{HTTPRouteRef: &sluicev1.LocalObjectReference{Name: name}}}
		}
	case "grpcRoute":
		s.must(k8sClient.Create(s.ctx, &gwv1.GRPCRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: gwv1.GRPCRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
				Rules: []gwv1.GRPCRouteRule{{
					Matches: []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr.To("shop.Orders")}}},
					BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{
						BackendObjectReference: gwv1.BackendObjectReference{Name: "podinfo", Port: ptr.To(gwv1.PortNumber(9898))}}}},
				}},
			},
		}))
		return func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{RouteKind: "GRPCRoute", GRPCRouteRef: &sluicev1.LocalObjectReference{Name: name}}}
		}
	default:
		vs := &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}}
		vs.Spec.Hosts = []string{"shop.example.com"}
		vs.Spec.Http = []*networking.HTTPRoute{{Name: "main", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "podinfo"}}}}}
		s.must(k8sClient.Create(s.ctx, vs))
		return func(ro *sluicev1.Rollout) {
			ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: name}}}
		}
	}
}

// routeNamed reads the route object name, routing to the Services of target.
func (s *story) routeNamed(kind, name, target string) routeView {
	s.t.Helper()
	obj := routeObject(kind)
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, obj))
	return viewOf(kind, target, obj)
}

func TestBlueGreenWithMirroringCopiesTrafficToTheCanaryAtWeightZero(t *testing.T) {
	for _, kind := range routerKindsAndGRPC {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), iterations(2), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.BlueGreen.Mirror = true
				ro.Spec.Strategy.BlueGreen.MirrorPercent = ptr.To[int32](50)
			})
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			mirrored := false
			for _, v := range views {
				if v.mirrorPercent != 0 {
					mirrored = true
					if v.mirrorPercent != 50 || v.canary != 0 {
						t.Errorf("while mirroring the route holds canary=%d mirror=%d%%, want 0 and 50%%", v.canary, v.mirrorPercent)
					}
				}
			}
			if !mirrored {
				t.Errorf("the route never mirrored to the canary: %+v", views)
			}
			if last := views[len(views)-1]; last.mirrorPercent != 0 || last.primary != 100 {
				t.Errorf("after promotion the route is %+v, want all to primary and no mirror", last)
			}
		})
	}
}

func TestABTestingSendsMatchingRequestsToTheCanary(t *testing.T) {
	for _, kind := range routerKindsAndGRPC {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{
					Iterations: 2,
					Match:      []sluicev1.RequestMatch{{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("insider")}}}},
				}}
			})
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			sawAB := false
			for _, v := range views {
				if len(v.inserted) > 0 {
					sawAB = true
					if v.abHeader != "x-canary=insider" || v.canary != 0 || v.primary != 100 {
						t.Errorf("during A/B the route is %+v, want an x-canary=insider rule to the canary and the rest to primary", v)
					}
				}
			}
			if !sawAB {
				t.Errorf("no A/B rule was ever in place: %+v", views)
			}
			if last := views[len(views)-1]; len(last.inserted) > 0 {
				t.Errorf("after promotion Sluice's rules remain: %v", last.inserted)
			}
		})
	}
}

func TestSessionAffinityPinsUsersWhileTheCanaryGrowsAndIsDroppedAfter(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(30, 60), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.Canary.SessionAffinity = &sluicev1.SessionAffinity{CookieName: "aff", MaxAge: 600}
			})
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			pinned := false
			for _, v := range views {
				if v.canary == 30 && len(v.inserted) == 2 {
					pinned = true
					if !strings.HasPrefix(v.canaryCookie, "aff=") || !strings.Contains(v.canaryCookie, "-canary; Max-Age=600") {
						t.Errorf("the canary backend sets cookie %q, want aff=<revision>-canary with Max-Age=600", v.canaryCookie)
					}
				}
			}
			if !pinned {
				t.Errorf("no affinity rules at weight 30: %+v", views)
			}
			if last := views[len(views)-1]; len(last.inserted) > 0 || last.canaryCookie != "" {
				t.Errorf("after promotion the affinity rules remain: %+v", last)
			}
		})
	}
}

func TestSessionAffinityPinningTheCanaryOnlyInsertsOneRuleAndSetsTheCookieAttributes(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(30, 60), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.Canary.SessionAffinity = &sluicev1.SessionAffinity{
					CookieName: "aff", MaxAge: 600, Pin: sluicev1.PinCanaryOnly, Secure: true, SameSite: "Strict", Path: "/shop"}
			})
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			pinned := false
			for _, v := range views {
				if v.canary != 30 || len(v.inserted) == 0 {
					continue
				}
				pinned = true
				if !slices.Equal(v.inserted, []string{"sluice-affinity-canary-0"}) {
					t.Errorf("inserted rules %v, want only sluice-affinity-canary-0", v.inserted)
				}
				if !strings.HasSuffix(v.canaryCookie, "-canary; Max-Age=600; Path=/shop; Secure; SameSite=Strict") {
					t.Errorf("the canary backend sets cookie %q", v.canaryCookie)
				}
			}
			if !pinned {
				t.Errorf("no affinity rule at weight 30: %+v", views)
			}
			if last := views[len(views)-1]; len(last.inserted) > 0 || last.canaryCookie != "" {
				t.Errorf("after promotion the affinity rule remains: %+v", last)
			}
		})
	}
}

func TestAnAdoptedHTTPRouteKeepsEverythingButTheBackendsSluiceShifts(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	pathPrefix := func(p string) []gwv1.HTTPRouteMatch {
		return []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To(p)}}}
	}
	svcRef := func(name string, port int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
			Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(port))}}}
	}
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Rules: []gwv1.HTTPRouteRule{
				{
					Name:    ptr.To(gwv1.SectionName("api")),
					Matches: pathPrefix("/api"),
					Filters: []gwv1.HTTPRouteFilter{
						{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{Path: &gwv1.HTTPPathModifier{
							Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/")}}},
						{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
							Set: []gwv1.HTTPHeader{{Name: "X-Team", Value: "shop"}}}},
					},
					Timeouts:    &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("10s"))},
					BackendRefs: []gwv1.HTTPBackendRef{svcRef("podinfo", 9898)},
				},
				{Name: ptr.To(gwv1.SectionName("static")), Matches: pathPrefix("/static"), BackendRefs: []gwv1.HTTPBackendRef{svcRef("cdn", 80)}},
			},
		},
	}
	s.must(k8sClient.Create(s.ctx, route))
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(route), route))
	before := route.Spec.DeepCopy()

	s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{HTTPRouteRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	after := &gwv1.HTTPRoute{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(route), after))
	if got, want := jsonOf(t, after.Spec.Rules[1]), jsonOf(t, before.Rules[1]); got != want {
		t.Errorf("the unrelated rule changed:\n got %s\nwant %s", got, want)
	}
	api, orig := after.Spec.Rules[0], before.Rules[0]
	for what, pair := range map[string][2]any{
		"matches": {api.Matches, orig.Matches}, "filters": {api.Filters, orig.Filters},
		"timeouts": {api.Timeouts, orig.Timeouts}, "name": {api.Name, orig.Name},
	} {
		if got, want := jsonOf(t, pair[0]), jsonOf(t, pair[1]); got != want {
			t.Errorf("the shifted rule's %s changed:\n got %s\nwant %s", what, got, want)
		}
	}
	if got, want := jsonOf(t, after.Spec.ParentRefs), jsonOf(t, before.ParentRefs); got != want {
		t.Errorf("parentRefs changed: %s -> %s", want, got)
	}
	var names []string
	for _, ref := range api.BackendRefs {
		names = append(names, fmt.Sprintf("%s:%d", ref.Name, *ref.Weight))
	}
	if !slices.Equal(names, []string{"podinfo-primary:100", "podinfo-canary:0"}) {
		t.Errorf("after the release the shifted rule routes to %v, want all to the primary", names)
	}
	if metav1.GetControllerOf(after) != nil {
		t.Errorf("Sluice took ownership of the adopted route")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestARouteChangedBehindSluicesBackIsPutBack(t *testing.T) {
	for _, kind := range routerKindsAndGRPC {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(50))
			s.eventually(5*time.Second, "route at 100/0", func() error {
				if v := s.route(kind, "podinfo"); v.primary != 100 {
					return fmt.Errorf("%+v", v)
				}
				return nil
			})

			// Someone edits the weights by hand.
			switch kind {
			case "gatewayAPI":
				r := &gwv1.HTTPRoute{}
				s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, r))
				r.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](50)
				r.Spec.Rules[0].BackendRefs[1].Weight = ptr.To[int32](50)
				s.must(k8sClient.Update(s.ctx, r))
			case "grpcRoute":
				r := &gwv1.GRPCRoute{}
				s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, r))
				r.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](50)
				r.Spec.Rules[0].BackendRefs[1].Weight = ptr.To[int32](50)
				s.must(k8sClient.Update(s.ctx, r))
			case "istio":
				vs := &istiov1.VirtualService{}
				s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, vs))
				vs.Spec.Http[0].Route = []*networking.HTTPRouteDestination{vs.Spec.Http[0].Route[0].DeepCopy(), vs.Spec.Http[0].Route[1].DeepCopy()}
				vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 50, 50
				s.must(k8sClient.Update(s.ctx, vs))
			}

			s.eventually(storyTimeout, "the route put back to 100/0", func() error {
				if v := s.route(kind, "podinfo"); v.primary != 100 || v.canary != 0 {
					return fmt.Errorf("route %+v", v)
				}
				return nil
			})
			s.waitEvent("podinfo", "RouteRestored")
		})
	}
}

func TestDeletingARolloutHandsTrafficBackToTheTarget(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), withCanaryWeights(50))
	s.eventually(5*time.Second, "target at zero", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	s.deleteRollout("podinfo")
	if n := replicas(s.getDeployment("podinfo")); n != 2 {
		t.Errorf("target replicas = %d, want the primary's 2", n)
	}
	apex := s.getService("podinfo")
	if apex.Spec.Selector["app"] != "podinfo" || metav1.GetControllerOf(apex) != nil {
		t.Errorf("apex Service selects %v, controller %v; want the target's pods and no owner", apex.Spec.Selector, metav1.GetControllerOf(apex))
	}
	r := &gwv1.HTTPRoute{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, r))
	if refs := r.Spec.Rules[0].BackendRefs; len(refs) != 1 || refs[0].Name != "podinfo" || metav1.GetControllerOf(r) != nil {
		t.Errorf("the route after revert points at %+v (owner %v), want only the apex Service and no owner", refs, metav1.GetControllerOf(r))
	}
}

func TestDeletingARolloutHandsAnAdoptedRouteBackAndKeepsOnlyTheApexService(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	vs := &istiov1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns}}
	vs.Spec.Hosts = []string{"shop.example.com"}
	vs.Spec.Http = []*networking.HTTPRoute{
		{Name: "main", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "podinfo"}}}},
		{Name: "other", Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "cdn"}}}},
	}
	s.must(k8sClient.Create(s.ctx, vs))
	s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{Istio: &sluicev1.IstioRouting{VirtualServiceRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
	})
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(vs), vs))
	if vs.Spec.Http[0].Route[0].Destination.Host != "podinfo-primary" {
		t.Fatalf("the adopted route was not taken over: %v", vs.Spec.Http[0].Route)
	}

	s.deleteRollout("podinfo")
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(vs), vs))
	if len(vs.Spec.Http) != 2 || len(vs.Spec.Http[0].Route) != 1 || vs.Spec.Http[0].Route[0].Destination.Host != "podinfo" ||
		vs.Spec.Http[1].Route[0].Destination.Host != "cdn" {
		t.Errorf("the adopted VirtualService was not handed back as it was: %v", vs.Spec.Http)
	}
	// The apex Service, which the route points at, now selects the target
	// and outlives the Rollout; Sluice's other objects belong to the
	// Rollout, for the garbage collector.
	apex := s.getService("podinfo")
	if apex.Spec.Selector["app"] != "podinfo" || metav1.GetControllerOf(apex) != nil {
		t.Errorf("apex Service selects %v (owner %v), want the target's pods and no owner", apex.Spec.Selector, metav1.GetControllerOf(apex))
	}
	if metav1.GetControllerOf(s.getDeployment("podinfo-primary")) == nil {
		t.Errorf("podinfo-primary has no owner: the garbage collector would leave it")
	}
	for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
		if metav1.GetControllerOf(s.getService(name)) == nil {
			t.Errorf("Service %s has no owner: the garbage collector would leave it", name)
		}
	}
}

// TestAnAdoptedGRPCRouteKeepsEverythingButTheBackendsAndIsHandedBack: a
// user's GRPCRoute (routeKind: GRPCRoute, grpcRouteRef). Sluice weights the
// rule that points at the apex Service; its method match and filters, and
// the other rules, stay as the user wrote them; deleting the Rollout points
// the rule at the apex Service again.
func TestAnAdoptedGRPCRouteKeepsEverythingButTheBackendsAndIsHandedBack(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	route := &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: s.ns},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Hostnames:       []gwv1.Hostname{"grpc.example.com"},
			Rules: []gwv1.GRPCRouteRule{
				{
					Name:    ptr.To(gwv1.SectionName("orders")),
					Matches: []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr.To("shop.Orders")}}},
					Filters: []gwv1.GRPCRouteFilter{{Type: gwv1.GRPCRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-team", Value: "orders"}}}}},
					BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "podinfo", Port: ptr.To(gwv1.PortNumber(9898))}}}},
				},
				{
					Name:        ptr.To(gwv1.SectionName("catalog")),
					Matches:     []gwv1.GRPCRouteMatch{{Method: &gwv1.GRPCMethodMatch{Service: ptr.To("shop.Catalog")}}},
					BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "catalog", Port: ptr.To(gwv1.PortNumber(9000))}}}},
				},
			},
		},
	}
	s.must(k8sClient.Create(s.ctx, route))
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(route), route))
	userMatches, userFilters, otherRule := jsonOf(t, route.Spec.Rules[0].Matches), jsonOf(t, route.Spec.Rules[0].Filters), jsonOf(t, route.Spec.Rules[1])

	s.initialized("podinfo", func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{RouteKind: "GRPCRoute", GRPCRouteRef: &sluicev1.LocalObjectReference{Name: "shop"}}}
		// Held at 40% until the Rollout is deleted mid-run.
		ro.Spec.Strategy = sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{{SetWeight: ptr.To[int32](40)}, {Pause: &sluicev1.PauseStep{}}}}}
	})
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the adopted GRPCRoute at 60/40", func() error {
		if v := s.routeNamed("grpcRoute", "shop", "podinfo"); v.primary != 60 || v.canary != 40 {
			return fmt.Errorf("route %+v", v)
		}
		return nil
	})
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(route), route))
	if got := jsonOf(t, route.Spec.Rules[0].Matches); got != userMatches {
		t.Errorf("the rule's matches changed: %s, want %s", got, userMatches)
	}
	if got := jsonOf(t, route.Spec.Rules[0].Filters); got != userFilters {
		t.Errorf("the rule's filters changed: %s, want %s", got, userFilters)
	}
	if got := jsonOf(t, route.Spec.Rules[1]); got != otherRule {
		t.Errorf("the other rule changed: %s, want %s", got, otherRule)
	}
	if metav1.GetControllerOf(route) != nil {
		t.Errorf("the adopted route got an owner: %v", metav1.GetControllerOf(route))
	}

	s.deleteRollout("podinfo")
	s.must(k8sClient.Get(s.ctx, client.ObjectKeyFromObject(route), route))
	if refs := route.Spec.Rules[0].BackendRefs; len(refs) != 1 || refs[0].Name != "podinfo" {
		t.Errorf("the rule after deletion points at %+v, want the apex Service only", refs)
	}
	if got := jsonOf(t, route.Spec.Rules[0].Matches) + jsonOf(t, route.Spec.Rules[1]); got != userMatches+otherRule {
		t.Errorf("handed back with other matches or rules: %s", got)
	}
	if _, ok := route.Annotations["sluice.dev/route"]; ok || route.Labels["sluice.dev/shifting"] != "" {
		t.Errorf("Sluice's annotation or label left on the route: %v %v", route.Annotations, route.Labels)
	}
}

// TestAMeshRouteWhoseParentIsAServiceShiftsTheServicesTraffic: GAMMA mesh
// routing. The generated HTTPRoute's parent is the apex Service (core group,
// kind Service, a port), which meshes that implement GAMMA read as "route
// the traffic sent to this Service". The weights shift on it as on a
// Gateway's route. Tested at the API level: the e2e data plane (Traefik)
// does not implement GAMMA.
func TestAMeshRouteWhoseParentIsAServiceShiftsTheServicesTraffic(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withCanaryWeights(50), func(ro *sluicev1.Rollout) {
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{
			ParentRefs: []sluicev1.ParentReference{{Kind: "Service", Name: "podinfo", Port: ptr.To[int32](9898)}},
		}}
	})
	route := &gwv1.HTTPRoute{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, route))
	if len(route.Spec.ParentRefs) != 1 {
		t.Fatalf("parentRefs %+v, want the apex Service", route.Spec.ParentRefs)
	}
	p := route.Spec.ParentRefs[0]
	if ptr.Deref(p.Group, "x") != "" || ptr.Deref(p.Kind, "") != "Service" || p.Name != "podinfo" || ptr.Deref(p.Port, 0) != 9898 {
		t.Errorf("parentRef %s/%s %s port %d, want the core Service podinfo port 9898", ptr.Deref(p.Group, "nil"), ptr.Deref(p.Kind, "nil"), p.Name, ptr.Deref(p.Port, 0))
	}
	views := s.watchRoute("gatewayAPI", "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
	if got := canaryWeights(views); !slices.Equal(got, []int32{0, 50, 100, 0}) {
		t.Errorf("canary weights over the release = %v, want [0 50 100 0]", got)
	}
}

// TestTheGeneratedHTTPRouteCarriesTheFiltersAndTimeoutsOfTheSpec: filters
// (headers, an ExtensionRef) and timeouts on the generated route's rule, on
// the rules a run inserts, and kept in step with the spec (issue 15).
func TestTheGeneratedHTTPRouteCarriesTheFiltersAndTimeoutsOfTheSpec(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"), func(ro *sluicev1.Rollout) {
		g := ro.Spec.Routing.GatewayAPI
		g.Timeouts = &sluicev1.GatewayAPITimeouts{Request: "10s", BackendRequest: "2s"}
		g.Filters = []sluicev1.GatewayAPIFilter{
			{Type: "RequestHeaderModifier", RequestHeaderModifier: &sluicev1.HeaderOperations{Set: map[string]string{"X-Env": "prod"}, Remove: []string{"X-Debug"}}},
			{Type: "ExtensionRef", ExtensionRef: &sluicev1.GatewayAPIExtensionRef{Group: "traefik.io", Kind: "Middleware", Name: "ratelimit"}},
		}
		ro.Spec.Strategy = sluicev1.Strategy{ABTesting: &sluicev1.ABTestingStrategy{Iterations: 100,
			Match: []sluicev1.RequestMatch{{Headers: map[string]sluicev1.StringMatch{"x-canary": {Exact: ptr.To("1")}}}}}}
	})
	rules := func() []gwv1.HTTPRouteRule {
		route := &gwv1.HTTPRoute{}
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, route))
		return route.Spec.Rules
	}
	describe := func(r gwv1.HTTPRouteRule) string {
		var parts []string
		for _, f := range r.Filters {
			switch {
			case f.RequestHeaderModifier != nil:
				parts = append(parts, fmt.Sprintf("req(set %v remove %v)", f.RequestHeaderModifier.Set, f.RequestHeaderModifier.Remove))
			case f.ExtensionRef != nil:
				parts = append(parts, fmt.Sprintf("ext(%s/%s %s)", f.ExtensionRef.Group, f.ExtensionRef.Kind, f.ExtensionRef.Name))
			}
		}
		if r.Timeouts != nil {
			parts = append(parts, fmt.Sprintf("timeouts(%s %s)", ptr.Deref(r.Timeouts.Request, ""), ptr.Deref(r.Timeouts.BackendRequest, "")))
		}
		return strings.Join(parts, " ")
	}
	const want = "req(set [{X-Env prod}] remove [X-Debug]) ext(traefik.io/Middleware ratelimit) timeouts(10s 2s)"
	if got := rules(); len(got) != 1 || describe(got[0]) != want {
		t.Fatalf("the generated rule: %d rules, %q; want %q", len(got), describe(got[0]), want)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the A/B rule inserted with the same filters and timeouts", func() error {
		got := rules()
		if len(got) != 2 {
			return fmt.Errorf("%d rules", len(got))
		}
		for _, r := range got {
			if d := describe(r); d != want {
				return fmt.Errorf("rule %s: %q", ptr.Deref(r.Name, ""), d)
			}
		}
		return nil
	})

	ro := s.getRollout("podinfo")
	patch := client.MergeFrom(ro.DeepCopy())
	ro.Spec.Routing.GatewayAPI.Filters = ro.Spec.Routing.GatewayAPI.Filters[1:]
	ro.Spec.Routing.GatewayAPI.Timeouts = nil
	s.must(k8sClient.Patch(s.ctx, ro, patch))
	s.eventually(storyTimeout, "the spec's edit on every rule", func() error {
		for _, r := range rules() {
			if d := describe(r); d != "ext(traefik.io/Middleware ratelimit)" {
				return fmt.Errorf("rule %s: %q", ptr.Deref(r.Name, ""), d)
			}
		}
		return nil
	})
}

// withRouteMetadata sets the router's metadata (labels and annotations of
// the generated route).
func withRouteMetadata(kind string, md *sluicev1.ServiceMetadata) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		if kind == "istio" {
			ro.Spec.Routing.Istio.Metadata = md
		} else {
			ro.Spec.Routing.GatewayAPI.Metadata = md
		}
	}
}

// TestTheGeneratedRouteCarriesTheLabelsAndAnnotationsOfTheSpec: the route
// Sluice generates carries the router's metadata (an external-dns
// annotation, a team label), kept there: a key someone removes is put back,
// keys others add stay, and a key taken out of the spec leaves the route.
func TestTheGeneratedRouteCarriesTheLabelsAndAnnotationsOfTheSpec(t *testing.T) {
	const dns = "external-dns.alpha.kubernetes.io/hostname"
	for _, kind := range routerKindsAndGRPC {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(50), withRouteMetadata(kind, &sluicev1.ServiceMetadata{
				Labels:      map[string]string{"team": "shop", "tier": "web"},
				Annotations: map[string]string{dns: "app.example.com"},
			}))
			meta := func() (map[string]string, map[string]string) {
				obj := routeObject(kind)
				s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, obj))
				return obj.GetLabels(), obj.GetAnnotations()
			}
			if l, a := meta(); l["team"] != "shop" || l["tier"] != "web" || a[dns] != "app.example.com" {
				t.Fatalf("generated route: labels %v, annotations %v; want team, tier and the external-dns hostname", l, a)
			}

			// Someone removes the team label and adds one of their own.
			s.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				obj := routeObject(kind)
				if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo"}, obj); err != nil {
					return err
				}
				l := obj.GetLabels()
				delete(l, "team")
				l["owner"] = "alice"
				obj.SetLabels(l)
				return k8sClient.Update(s.ctx, obj)
			}))
			s.eventually(storyTimeout, "the team label put back, theirs kept", func() error {
				if l, _ := meta(); l["team"] != "shop" || l["owner"] != "alice" {
					return fmt.Errorf("labels %v", l)
				}
				return nil
			})

			// The spec drops the tier label and moves the hostname.
			s.must(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				ro := s.getRollout("podinfo")
				withRouteMetadata(kind, &sluicev1.ServiceMetadata{
					Labels:      map[string]string{"team": "shop"},
					Annotations: map[string]string{dns: "shop.example.com"},
				})(ro)
				return k8sClient.Update(s.ctx, ro)
			}))
			s.eventually(storyTimeout, "the route follows the spec", func() error {
				l, a := meta()
				if _, ok := l["tier"]; ok || l["team"] != "shop" || l["owner"] != "alice" || a[dns] != "shop.example.com" {
					return fmt.Errorf("labels %v, annotations %v", l, a)
				}
				return nil
			})
		})
	}
}

// TestStepWeightPromotionMovesTrafficBackToThePrimaryInSteps: with
// stepWeightPromotion, once the primary runs the new revision the route
// gives the traffic back to it in steps (100 -> 60 -> 20 -> 0 on the
// canary for 40), each held one analysis interval, instead of at once.
func TestStepWeightPromotionMovesTrafficBackToThePrimaryInSteps(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", withRouter(kind), withCanaryWeights(50), func(ro *sluicev1.Rollout) {
				ro.Spec.Strategy.Canary.StepWeightPromotion = ptr.To[int32](40)
			})
			views := s.watchRoute(kind, "podinfo", sluicev1.PhaseSucceeded, func() { s.setImage("podinfo", "podinfo:2.0") })
			if got := canaryWeights(views); !slices.Equal(got, []int32{0, 50, 100, 60, 20, 0}) {
				t.Errorf("canary weights over the release = %v, want [0 50 100 60 20 0]: back to the primary in steps of 40", got)
			}
		})
	}
}
