package convert

import (
	"encoding/json"
	"strings"
	"testing"
)

// canary is a minimal Canary with extra spec lines (a service: line among
// them replaces the default one) and analysis lines (YAML, two spaces
// deeper than analysis:).
func canary(spec, analysis string) string {
	service := "  service: {port: 80}\n"
	if strings.Contains(spec, "  service:") {
		service = ""
	}
	return `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: app, namespace: ns}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
` + service + spec + `
  analysis:
    interval: 1m
` + analysis
}

func convertOne(t *testing.T, manifest string) Result {
	t.Helper()
	docs, err := Decode(strings.NewReader(manifest))
	if err != nil || len(docs) != 1 {
		t.Fatalf("decode: %v (%d documents)", err, len(docs))
	}
	return Convert(docs[0])
}

// specJSON is the converted Rollout's spec as JSON, for substring checks.
func specJSON(t *testing.T, res Result) string {
	t.Helper()
	if res.Err != nil || len(res.Objects) == 0 {
		t.Fatalf("not converted: %v", res.Err)
	}
	b, _ := json.Marshal(res.Objects[0]["spec"])
	return string(b)
}

func TestConversionCases(t *testing.T) {
	cases := []struct {
		name       string
		manifest   string
		wantSpec   []string // substrings of the Rollout's spec as JSON
		wantNotes  []string // "field: kind" of notes that must be there
		wantNoNote []string // fields that must have no note
	}{
		{
			name:     "on the Gateway API, timeout and headers become the generated route's timeouts and filters",
			manifest: canary("  provider: gatewayapi:v1\n  service: {port: 80, timeout: 90s, headers: {request: {set: {X-Env: prod}}, response: {remove: [Server]}}}", "    stepWeight: 10\n"),
			wantSpec: []string{`"timeouts":{"request":"1m30s"}`, `{"requestHeaderModifier":{"set":{"X-Env":"prod"}},"type":"RequestHeaderModifier"}`,
				`{"responseHeaderModifier":{"remove":["Server"]},"type":"ResponseHeaderModifier"}`},
		},
		{
			name:     "a gatewayRef to a Service (GAMMA mesh routing) is carried over with its port",
			manifest: canary("  provider: gatewayapi:v1\n  service: {port: 80, gatewayRefs: [{group: core, kind: Service, name: app, port: 80}]}", "    stepWeight: 10\n"),
			wantSpec: []string{`"parentRefs":[{"kind":"Service","name":"app","port":80}]`},
		},
		{
			name:       "appProtocol and portDiscovery are carried over",
			manifest:   canary("  provider: istio\n  service: {port: 80, appProtocol: http, portDiscovery: true}", "    stepWeight: 10\n"),
			wantSpec:   []string{`"appProtocol":"http"`, `"portDiscovery":true`},
			wantNoNote: []string{"spec.service.portDiscovery"},
		},
		{
			name:      "without a threshold, Flagger's default of one failed check is written out: Sluice's default is 5",
			manifest:  canary("  provider: istio", "    stepWeight: 10\n"),
			wantSpec:  []string{`"threshold":1`},
			wantNotes: []string{"spec.analysis.threshold: changed"},
		},
		{
			name:     "an explicit threshold is carried over as it is",
			manifest: canary("  provider: istio", "    stepWeight: 10\n    threshold: 3\n"),
			wantSpec: []string{`"threshold":3`},
		},
		{
			name:      "a field the converter does not know is reported, not dropped",
			manifest:  canary("  provider: istio", "    stepWeight: 10\n    futureKnob: 3\n"),
			wantNotes: []string{"spec.analysis.futureKnob: not carried over"},
		},
		{
			name:      "without provider the Canary is read as Flagger's default, istio, and the report says so",
			manifest:  canary("", "    stepWeight: 10\n"),
			wantSpec:  []string{`"routing":{"istio":{}}`, `"canary":{"stepWeight":10}`},
			wantNotes: []string{"spec.provider: differs"},
		},
		{
			name:     "without provider, gatewayRefs mean the Gateway API",
			manifest: canary("  service: {port: 80, gatewayRefs: [{name: gw}]}", "    stepWeight: 10\n"),
			wantSpec: []string{`"gatewayAPI":{"parentRefs":[{"name":"gw"}]}`},
		},
		{
			name:      "stepWeights that do not increase are sorted and deduplicated",
			manifest:  canary("  provider: istio", "    stepWeights: [30, 10, 10]\n"),
			wantSpec:  []string{`"stepWeights":[10,30]`},
			wantNotes: []string{"spec.analysis.stepWeights: changed"},
		},
		{
			name:      "iterations win over weights, as in Flagger: blue/green",
			manifest:  canary("  provider: istio", "    iterations: 4\n    stepWeight: 10\n    maxWeight: 50\n"),
			wantSpec:  []string{`"blueGreen":{"iterations":4}`},
			wantNotes: []string{"spec.analysis.iterations: differs", "spec.analysis.stepWeight: not carried over", "spec.analysis.maxWeight: not carried over"},
		},
		{
			name:      "the kubernetes router turns weights into blue/green iterations",
			manifest:  canary("  provider: kubernetes", "    stepWeight: 25\n    maxWeight: 75\n"),
			wantSpec:  []string{`"blueGreen":{"iterations":3}`},
			wantNotes: []string{"spec.analysis.stepWeight: changed"},
		},
		{
			name:      "A/B matches need a weighted router",
			manifest:  canary("  provider: kubernetes", "    iterations: 2\n    match: [{headers: {x-a: {exact: b}}}]\n"),
			wantSpec:  []string{`"blueGreen":{"iterations":2}`},
			wantNotes: []string{"spec.analysis.match: not carried over"},
		},
		{
			name:      "mirroring goes with blue/green only",
			manifest:  canary("  provider: istio", "    stepWeight: 10\n    mirror: true\n"),
			wantSpec:  []string{`"canary":{"stepWeight":10}`},
			wantNotes: []string{"spec.analysis.mirror: not carried over"},
		},
		{
			name: "a webhook without type is a rollout hook; one without an http URL is left out",
			manifest: canary("  provider: istio", "    stepWeight: 10\n    webhooks:\n"+
				"      - {name: a, url: 'http://x/'}\n      - {name: b, type: pre-rollout, url: 'tcp://x:1'}\n"),
			wantSpec:  []string{`"webhooks":[{"name":"a","type":"rollout","url":"http://x/"}]`},
			wantNotes: []string{"spec.analysis.webhooks[1]: not carried over"},
		},
		{
			name: "a deprecated metric threshold becomes the range's bound",
			manifest: canary("  provider: istio", "    stepWeight: 10\n    metrics:\n"+
				"      - {name: request-success-rate, threshold: 99}\n      - {name: request-duration, threshold: 500}\n"),
			wantSpec:  []string{`"thresholdRange":{"min":99}`, `"thresholdRange":{"max":500}`},
			wantNotes: []string{"spec.analysis.metrics[0].threshold: changed"},
		},
		{
			name:     "Flagger's session affinity pins only the canary's users, and so does the converted one",
			manifest: canary("  provider: istio", "    stepWeight: 10\n    sessionAffinity: {cookieName: v, maxAge: 60}\n"),
			wantSpec: []string{`"sessionAffinity":{"cookieName":"v","maxAge":60,"pin":"CanaryOnly"}`},
		},
		{
			name:      "with primaryCookieName both versions' users are pinned, with one cookie",
			manifest:  canary("  provider: istio", "    stepWeight: 10\n    sessionAffinity: {cookieName: v, primaryCookieName: p}\n"),
			wantSpec:  []string{`"sessionAffinity":{"cookieName":"v","pin":"Both"}`},
			wantNotes: []string{"spec.analysis.sessionAffinity.primaryCookieName: differs"},
		},
		{
			name: "an Istio trafficPolicy and corsPolicy are carried over as they are",
			manifest: canary("  provider: istio\n  service:\n    port: 80\n"+
				"    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}, outlierDetection: {interval: 1m}}\n"+
				"    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}], maxAge: 24h}\n", "    stepWeight: 10\n"),
			wantSpec: []string{`"trafficPolicy":{"loadBalancer":{"consistentHash":{"httpHeaderName":"x-user"}},"outlierDetection":{"interval":"1m"}}`,
				`"corsPolicy":{"allowOrigins":[{"exact":"https://a.example"}],"maxAge":"24h"}`},
		},
		{
			name: "a trafficPolicy Istio would refuse is left out, with the reason",
			manifest: canary("  provider: istio\n  service:\n    port: 80\n"+
				"    trafficPolicy: {loadBalancer: {simpel: ROUND_ROBIN}}\n", "    stepWeight: 10\n"),
			wantNotes: []string{"spec.service.trafficPolicy: not carried over"},
		},
		{
			name: "a trafficPolicy has no place on the Gateway API router",
			manifest: canary("  provider: gatewayapi:v1\n  service:\n    port: 80\n    gatewayRefs: [{name: gw}]\n"+
				"    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n", "    stepWeight: 10\n"),
			wantNotes: []string{"spec.service.trafficPolicy: not carried over"},
		},
		{
			name:      "a metric that is no built-in and names no template is left out",
			manifest:  canary("  provider: istio", "    stepWeight: 10\n    metrics: [{name: made-up, thresholdRange: {max: 1}}]\n"),
			wantNotes: []string{"spec.analysis.metrics[0]: not carried over"},
		},
		{
			name: "the deprecated canaryAnalysis is read as analysis",
			manifest: strings.Replace(canary("  provider: istio", "    stepWeight: 10\n"),
				"  analysis:", "  canaryAnalysis:", 1),
			wantSpec:  []string{`"interval":"1m0s"`, `"stepWeight":10`},
			wantNotes: []string{"spec.canaryAnalysis: changed"},
		},
		{
			name: "Service labels Sluice sets itself are reported, the others kept",
			manifest: canary("  provider: istio\n  service: {port: 80, apex: {labels: {app.kubernetes.io/managed-by: flux, tier: web}, annotations: {sluice.dev/route: x}}}",
				"    stepWeight: 10\n"),
			wantSpec:  []string{`"apex":{"labels":{"tier":"web"}}`},
			wantNotes: []string{"spec.service.apex.labels.app.kubernetes.io/managed-by: not carried over", "spec.service.apex.annotations.sluice.dev/route: not carried over"},
		},
		{
			name:      "a Service name the CRD would refuse is reported",
			manifest:  canary("  provider: istio\n  service: {port: 80, name: App_Svc}", "    stepWeight: 10\n"),
			wantSpec:  []string{`"service":{"port":80}`},
			wantNotes: []string{"spec.service.name: not carried over"},
		},
		{
			// Flagger releases a Canary without analysis with no checks;
			// Sluice writes that out as one blue/green iteration of its
			// default interval, and says so.
			name: "a Canary without analysis becomes one blue/green iteration, reported",
			manifest: strings.Replace(canary("  provider: istio", ""),
				"  analysis:\n    interval: 1m\n", "", 1),
			wantSpec:  []string{`"blueGreen":{"iterations":1}`},
			wantNotes: []string{"spec.analysis: differs"},
		},
		{
			name:      "an interval under a second is raised to 1s",
			manifest:  strings.Replace(canary("  provider: istio", "    stepWeight: 10\n"), "interval: 1m", "interval: 500ms", 1),
			wantSpec:  []string{`"interval":"1s"`},
			wantNotes: []string{"spec.analysis.interval: changed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := convertOne(t, tc.manifest)
			spec := specJSON(t, res)
			for _, want := range tc.wantSpec {
				if !strings.Contains(spec, want) {
					t.Errorf("spec lacks %s:\n%s", want, spec)
				}
			}
			var notes []string
			for _, n := range res.Notes {
				notes = append(notes, n.Field+": "+string(n.Kind))
			}
			for _, field := range tc.wantNoNote {
				for _, n := range res.Notes {
					if n.Field == field {
						t.Errorf("a note on %s: %s", field, n.Reason)
					}
				}
			}
			for _, want := range tc.wantNotes {
				if !strings.Contains(strings.Join(notes, "\n")+"\n", want+"\n") {
					t.Errorf("no note %q among:\n%s", want, strings.Join(notes, "\n"))
				}
			}
		})
	}
}

func TestAnInputThatCannotBeConvertedSaysWhy(t *testing.T) {
	res := convertOne(t, strings.Replace(canary("", ""), "kind: Deployment", "kind: StatefulSet", 1))
	if res.Err == nil || !strings.Contains(res.Err.Error(), "Deployments and DaemonSets only") || len(res.Objects) != 0 {
		t.Fatalf("want an error about the kinds Sluice releases, got %v and %d objects", res.Err, len(res.Objects))
	}
}

// TestADaemonSetCanaryIsConvertedWithoutItsAutoscaler: the kind is carried
// over, with how Sluice parks it; an autoscalerRef cannot go with it.
func TestADaemonSetCanaryIsConvertedWithoutItsAutoscaler(t *testing.T) {
	in := strings.Replace(canary("  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: app}\n", ""),
		"kind: Deployment", "kind: DaemonSet", 1)
	res := convertOne(t, in)
	spec := specJSON(t, res)
	if !strings.Contains(spec, `"kind":"DaemonSet"`) || strings.Contains(spec, "autoscalerRef") {
		t.Errorf("spec %s: want targetRef.kind DaemonSet and no autoscalerRef (the API server refuses it with a DaemonSet)", spec)
	}
	var notes []string
	for _, n := range res.Notes {
		notes = append(notes, n.Field+": "+string(n.Kind)+": "+n.Reason)
	}
	report := strings.Join(notes, "\n")
	for _, want := range []string{"spec.targetRef.kind: differs", "sluice.dev/parked=true", "spec.autoscalerRef: not carried over", "no replica count"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report does not say %q:\n%s", want, report)
		}
	}
}
