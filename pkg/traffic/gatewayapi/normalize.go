package gatewayapi

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// sameRules compares rules as the API server holds them, filling in the
// defaults its CRD schema applies, so a rule Sluice wrote compares equal to
// its read-back and no write is made when nothing changed.
func sameRules(a, b []gwv1.HTTPRouteRule) bool {
	return equality.Semantic.DeepEqual(normalize(a), normalize(b))
}

func normalize(rules []gwv1.HTTPRouteRule) []gwv1.HTTPRouteRule {
	out := make([]gwv1.HTTPRouteRule, len(rules))
	for i, rule := range rules {
		r := *rule.DeepCopy()
		if len(r.Matches) == 0 {
			r.Matches = []gwv1.HTTPRouteMatch{{}}
		}
		for j := range r.Matches {
			m := &r.Matches[j]
			if m.Path == nil {
				m.Path = &gwv1.HTTPPathMatch{}
			}
			if m.Path.Type == nil {
				m.Path.Type = ptr.To(gwv1.PathMatchPathPrefix)
			}
			if m.Path.Value == nil {
				m.Path.Value = ptr.To("/")
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr.To(gwv1.HeaderMatchExact)
				}
			}
			for k := range m.QueryParams {
				if m.QueryParams[k].Type == nil {
					m.QueryParams[k].Type = ptr.To(gwv1.QueryParamMatchExact)
				}
			}
		}
		for j := range r.BackendRefs {
			ref := &r.BackendRefs[j]
			normalizeRef(&ref.BackendObjectReference)
			if ref.Weight == nil {
				ref.Weight = ptr.To[int32](1)
			}
			normalizeFilters(ref.Filters)
			if len(ref.Filters) == 0 {
				ref.Filters = nil
			}
		}
		normalizeFilters(r.Filters)
		if len(r.Filters) == 0 {
			r.Filters = nil
		}
		if len(r.BackendRefs) == 0 {
			r.BackendRefs = nil
		}
		out[i] = r
	}
	return out
}

func normalizeRef(ref *gwv1.BackendObjectReference) {
	if ref.Group == nil {
		ref.Group = ptr.To(gwv1.Group(""))
	}
	if ref.Kind == nil {
		ref.Kind = ptr.To(gwv1.Kind("Service"))
	}
}

func normalizeFilters(filters []gwv1.HTTPRouteFilter) {
	for i := range filters {
		if m := filters[i].RequestMirror; m != nil {
			normalizeRef(&m.BackendRef)
		}
	}
}
