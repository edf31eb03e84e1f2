package convert

// Support says how much of a Flagger field Sluice carries over.
type Support string

// Levels of support, as docs/migrating-from-flagger.md words them.
const (
	Maps        Support = "maps"
	MapsInPart  Support = "maps in part"
	Unsupported Support = "not supported"
)

// Field is one Flagger field the converter knows, as docs/migrating-from-
// flagger.md lists it. Path is relative to spec, with [] for list items; a
// field stands for everything under it too.
type Field struct {
	Kind    string // Canary, MetricTemplate or AlertProvider
	Path    string
	Support Support
}

// Fields are the Flagger fields the converter knows. A test checks that
// every one has a row in docs/migrating-from-flagger.md, and that every
// field the converter reads is listed here.
var Fields = []Field{
	{"Canary", "targetRef", MapsInPart},
	{"Canary", "autoscalerRef", Maps},
	{"Canary", "autoscalerRef.primaryScalerReplicas", Maps},
	{"Canary", "autoscalerRef.primaryScalerQueries", Maps},
	{"Canary", "provider", MapsInPart},
	{"Canary", "ingressRef", Unsupported},
	{"Canary", "upstreamRef", Unsupported},
	{"Canary", "routeRef", Unsupported},
	{"Canary", "metricsServer", MapsInPart},
	{"Canary", "progressDeadlineSeconds", Maps},
	{"Canary", "skipAnalysis", Maps},
	{"Canary", "suspend", Maps},
	{"Canary", "revertOnDeletion", MapsInPart},
	{"Canary", "service.port", Maps},
	{"Canary", "service.targetPort", Maps},
	{"Canary", "service.portName", Maps},
	{"Canary", "service.name", MapsInPart},
	{"Canary", "service.hosts", Maps},
	{"Canary", "service.gateways", Maps},
	{"Canary", "service.gatewayRefs", MapsInPart},
	{"Canary", "service.match", MapsInPart},
	{"Canary", "service.retries", Maps},
	{"Canary", "service.timeout", Maps},
	{"Canary", "service.headers", Maps},
	{"Canary", "service.rewrite", Maps},
	{"Canary", "service.trafficPolicy", Maps},
	{"Canary", "service.corsPolicy", Maps},
	{"Canary", "service.portDiscovery", Maps},
	{"Canary", "service.appProtocol", Maps},
	{"Canary", "service.delegation", Unsupported},
	{"Canary", "service.apex", Maps},
	{"Canary", "service.primary", Maps},
	{"Canary", "service.canary", Maps},
	{"Canary", "analysis", Maps},
	{"Canary", "canaryAnalysis", Maps},
	{"Canary", "analysis.interval", Maps},
	{"Canary", "analysis.threshold", Maps},
	{"Canary", "analysis.iterations", Maps},
	{"Canary", "analysis.stepWeight", Maps},
	{"Canary", "analysis.maxWeight", Maps},
	{"Canary", "analysis.stepWeights", Maps},
	{"Canary", "analysis.stepWeightPromotion", Maps},
	{"Canary", "analysis.mirror", MapsInPart},
	{"Canary", "analysis.mirrorWeight", MapsInPart},
	{"Canary", "analysis.match", MapsInPart},
	{"Canary", "analysis.primaryReadyThreshold", Maps},
	{"Canary", "analysis.canaryReadyThreshold", Maps},
	{"Canary", "analysis.sessionAffinity", MapsInPart},
	{"Canary", "analysis.metrics[].name", Maps},
	{"Canary", "analysis.metrics[].templateRef", Maps},
	{"Canary", "analysis.metrics[].thresholdRange", Maps},
	{"Canary", "analysis.metrics[].threshold", Maps},
	{"Canary", "analysis.metrics[].interval", Maps},
	{"Canary", "analysis.metrics[].templateVariables", Maps},
	{"Canary", "analysis.metrics[].query", MapsInPart},
	{"Canary", "analysis.webhooks[].name", Maps},
	{"Canary", "analysis.webhooks[].type", Maps},
	{"Canary", "analysis.webhooks[].url", Maps},
	{"Canary", "analysis.webhooks[].timeout", Maps},
	{"Canary", "analysis.webhooks[].retries", Maps},
	{"Canary", "analysis.webhooks[].metadata", MapsInPart},
	{"Canary", "analysis.webhooks[].muteAlert", Unsupported},
	{"Canary", "analysis.alerts[].name", Maps},
	{"Canary", "analysis.alerts[].severity", Maps},
	{"Canary", "analysis.alerts[].providerRef", MapsInPart},
	{"MetricTemplate", "provider.type", MapsInPart},
	{"MetricTemplate", "provider.address", Maps},
	{"MetricTemplate", "provider.secretRef", MapsInPart},
	{"MetricTemplate", "provider.insecureSkipVerify", Maps},
	{"MetricTemplate", "provider.region", Unsupported},
	{"MetricTemplate", "query", MapsInPart},
	{"AlertProvider", "type", MapsInPart},
	{"AlertProvider", "secretRef", MapsInPart},
	{"AlertProvider", "address", Unsupported},
	{"AlertProvider", "channel", MapsInPart},
	{"AlertProvider", "username", MapsInPart},
	{"AlertProvider", "proxy", Unsupported},
}
