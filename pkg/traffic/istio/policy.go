package istio

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/runtime"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// policies are routing.istio's trafficPolicy and corsPolicy, read into
// Istio's own types; nil when not set.
type policies struct {
	traffic *networking.TrafficPolicy
	cors    *networking.CorsPolicy
}

// policiesOf reads the policies of routing.istio. The API server keeps them
// as the user wrote them (preserve-unknown-fields), so this is where a field
// Istio does not know, or a value of the wrong shape, is caught: the
// returned StalledError names the field and says what Istio's schema
// refused, and the Rollout is Stalled with it until the spec is fixed.
func policiesOf(cfg *sluicev1.IstioRouting) (policies, error) {
	var p policies
	if cfg.TrafficPolicy != nil {
		p.traffic = &networking.TrafficPolicy{}
		if err := unmarshalPolicy(cfg.TrafficPolicy, p.traffic); err != nil {
			return policies{}, &traffic.StalledError{Reason: "InvalidTrafficPolicy",
				Message: "routing.istio.trafficPolicy: " + err.Error()}
		}
	}
	if cfg.CorsPolicy != nil {
		p.cors = &networking.CorsPolicy{}
		if err := unmarshalPolicy(cfg.CorsPolicy, p.cors); err != nil {
			return policies{}, &traffic.StalledError{Reason: "InvalidCorsPolicy",
				Message: "routing.istio.corsPolicy: " + err.Error()}
		}
	}
	return p, nil
}

// CheckPolicies reports, as the Istio router would, whether routing.istio's
// trafficPolicy and corsPolicy are objects Istio accepts; kubectl sluice
// convert uses it before it carries a Flagger Canary's policies over.
func CheckPolicies(cfg *sluicev1.IstioRouting) error {
	_, err := policiesOf(cfg)
	return err
}

// unmarshalPolicy reads an object of Istio's API (camelCase or proto field
// names, enums by name, durations as "10s"), refusing unknown fields.
func unmarshalPolicy(in *runtime.RawExtension, out proto.Message) error {
	raw := in.Raw
	if raw == nil && in.Object != nil {
		return fmt.Errorf("not a JSON object")
	}
	md := out.ProtoReflect().Descriptor()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("not an Istio %s: %w", md.Name(), err)
	}
	raw, err := json.Marshal(protoDurations(doc, md))
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("not an Istio %s: %w", md.Name(), err)
	}
	return nil
}

// protoDurations rewrites the durations of an Istio object written as
// Istio's documentation writes them ("5m", "1h30m", "500ms") into the form
// protojson reads ("300s"), following the message's schema so that only
// fields of type google.protobuf.Duration are touched. Anything it does not
// understand is left for protojson to refuse.
func protoDurations(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for key, val := range obj {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil || fd.Kind() != protoreflect.MessageKind {
			continue
		}
		if fd.IsMap() {
			fd = fd.MapValue()
			if fd.Kind() != protoreflect.MessageKind {
				continue
			}
			if m, ok := val.(map[string]any); ok {
				for k, e := range m {
					m[k] = protoDuration(e, fd.Message())
				}
			}
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i, e := range list {
				list[i] = protoDuration(e, fd.Message())
			}
			continue
		}
		obj[key] = protoDuration(val, fd.Message())
	}
	return obj
}

// protoDuration converts one value of message type md.
func protoDuration(v any, md protoreflect.MessageDescriptor) any {
	if md.FullName() != "google.protobuf.Duration" {
		return protoDurations(v, md)
	}
	s, ok := v.(string)
	if !ok {
		return v
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return v
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// destinationRuleSpec is the whole spec of a DestinationRule Sluice
// generates for host: the host and the Rollout's traffic policy.
func destinationRuleSpec(host string, p policies) *networking.DestinationRule {
	return &networking.DestinationRule{Host: host, TrafficPolicy: p.traffic}
}
