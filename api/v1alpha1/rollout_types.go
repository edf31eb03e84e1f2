package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rollout tells Sluice how to release new versions of a Deployment: it runs
// each new revision as a canary, shifts traffic to it step by step, checks it,
// and promotes or rolls it back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sr,categories=sluice
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.stepProgress`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failedChecks`,description="Failed checks in the current run"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
//
// A run shifts the route of the router it started with; a route the spec
// no longer names is never shifted back. So the router and the adopted
// route may change only at rest, where the route sends the canary nothing
// and the canary's pods have drained: Succeeded; Initialized unless the
// canary of a run cancelled by the target's return to the stable revision
// still drains; Failed once the rollback's drain is over (its clock set,
// the route having been seen sending the canary nothing, and the target
// since seen at zero replicas). Initialized and Failed are recorded before
// the route moves back, so the phase alone does not say the route moved.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase == 'Succeeded' || (oldSelf.status.phase == 'Initialized' && (!has(oldSelf.status.canaryDrainingSince) || (has(oldSelf.status.targetScaledDown) && oldSelf.status.targetScaledDown))) || (oldSelf.status.phase == 'Failed' && (!has(oldSelf.status.canaryWeight) || oldSelf.status.canaryWeight == 0) && has(oldSelf.status.canaryDrainingSince) && has(oldSelf.status.targetScaledDown) && oldSelf.status.targetScaledDown) || (!has(self.spec.routing) ? 'kubernetes' : has(self.spec.routing.gatewayAPI) ? 'gatewayAPI/' + (has(self.spec.routing.gatewayAPI.routeKind) ? self.spec.routing.gatewayAPI.routeKind : 'HTTPRoute') + '/' + (has(self.spec.routing.gatewayAPI.httpRouteRef) ? self.spec.routing.gatewayAPI.httpRouteRef.name : has(self.spec.routing.gatewayAPI.grpcRouteRef) ? self.spec.routing.gatewayAPI.grpcRouteRef.name : '-') : has(self.spec.routing.istio) ? 'istio/' + (has(self.spec.routing.istio.virtualServiceRef) ? self.spec.routing.istio.virtualServiceRef.name : '-') : 'kubernetes') == (!has(oldSelf.spec.routing) ? 'kubernetes' : has(oldSelf.spec.routing.gatewayAPI) ? 'gatewayAPI/' + (has(oldSelf.spec.routing.gatewayAPI.routeKind) ? oldSelf.spec.routing.gatewayAPI.routeKind : 'HTTPRoute') + '/' + (has(oldSelf.spec.routing.gatewayAPI.httpRouteRef) ? oldSelf.spec.routing.gatewayAPI.httpRouteRef.name : has(oldSelf.spec.routing.gatewayAPI.grpcRouteRef) ? oldSelf.spec.routing.gatewayAPI.grpcRouteRef.name : '-') : has(oldSelf.spec.routing.istio) ? 'istio/' + (has(oldSelf.spec.routing.istio.virtualServiceRef) ? oldSelf.spec.routing.istio.virtualServiceRef.name : '-') : 'kubernetes')",message="routing cannot move to another router or route while the Rollout is not at rest (Succeeded, Initialized, or Failed with its canary drained and at zero replicas): the route it leaves would keep sending the canary its share after the canary's pods are gone. Apply the change once the release has ended and its canary has drained (spec.scaleDownDelaySeconds after the route moved back); an abort ends a release now"
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutSpec   `json:"spec"`
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// RolloutSpec is what the user commits: the target, how traffic reaches it, and
// how a new revision is released.
//
// +kubebuilder:validation:XValidation:rule="(!(has(oldSelf.routing) && has(oldSelf.routing.gatewayAPI) && has(oldSelf.routing.gatewayAPI.httpRouteRef)) || (has(self.routing) && has(self.routing.gatewayAPI) && has(self.routing.gatewayAPI.httpRouteRef) && self.routing.gatewayAPI.httpRouteRef.name == oldSelf.routing.gatewayAPI.httpRouteRef.name)) && (!(has(oldSelf.routing) && has(oldSelf.routing.gatewayAPI) && has(oldSelf.routing.gatewayAPI.grpcRouteRef)) || (has(self.routing) && has(self.routing.gatewayAPI) && has(self.routing.gatewayAPI.grpcRouteRef) && self.routing.gatewayAPI.grpcRouteRef.name == oldSelf.routing.gatewayAPI.grpcRouteRef.name)) && (!(has(oldSelf.routing) && has(oldSelf.routing.istio) && has(oldSelf.routing.istio.virtualServiceRef)) || (has(self.routing) && has(self.routing.istio) && has(self.routing.istio.virtualServiceRef) && self.routing.istio.virtualServiceRef.name == oldSelf.routing.istio.virtualServiceRef.name))",message="an adopted route (httpRouteRef, grpcRouteRef, virtualServiceRef) cannot be let go or replaced by editing the spec: it sends its traffic to this Rollout's -primary and -canary Services, which go with the Rollout, and only the Rollout's deletion hands it back to the apex Service. Delete the Rollout (traffic goes back to the target once it is ready) and create it again"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.canary) || (has(self.routing) && (has(self.routing.gatewayAPI) || has(self.routing.istio)))",message="strategy.canary shifts traffic by weight and needs routing.gatewayAPI or routing.istio; with the plain kubernetes router use strategy.blueGreen"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.abTesting) || (has(self.routing) && (has(self.routing.gatewayAPI) || has(self.routing.istio)))",message="strategy.abTesting routes by request and needs routing.gatewayAPI or routing.istio"
// +kubebuilder:validation:XValidation:rule="!has(self.service.name) || (self.service.name != self.targetRef.name + '-primary' && self.service.name != self.targetRef.name + '-canary')",message="service.name may not be the name of the -primary or -canary Service"
// +kubebuilder:validation:XValidation:rule="!(has(self.routing) && has(self.routing.istio) && (has(self.service.appProtocol) ? self.service.appProtocol.matches('^(?i)(tcp|mongo|mysql|redis)$') : (has(self.service.portName) && self.service.portName.matches('^(tcp|mongo|mysql|redis)(-.*)?$')))) || !(has(self.routing.istio.match) || has(self.routing.istio.retries) || has(self.routing.istio.timeout) || has(self.routing.istio.headers) || has(self.routing.istio.rewrite) || has(self.routing.istio.corsPolicy))",message="routing.istio: the main port is TCP (service.appProtocol tcp, mongo, mysql or redis, or a portName such as tcp or tcp-db), so Sluice writes tcp routes: match, retries, timeout, headers, rewrite and corsPolicy act on HTTP requests and cannot be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.routing) && has(self.routing.istio) && (has(self.service.appProtocol) ? self.service.appProtocol.matches('^(?i)(tcp|mongo|mysql|redis)$') : (has(self.service.portName) && self.service.portName.matches('^(tcp|mongo|mysql|redis)(-.*)?$')))) || !(has(self.strategy.abTesting) || (has(self.strategy.blueGreen) && has(self.strategy.blueGreen.mirror) && self.strategy.blueGreen.mirror) || (has(self.strategy.canary) && has(self.strategy.canary.sessionAffinity)))",message="routing.istio: the main port is TCP (service.appProtocol tcp, mongo, mysql or redis, or a portName such as tcp or tcp-db), so Sluice writes tcp routes: strategy.abTesting, blueGreen.mirror and canary.sessionAffinity act on HTTP requests; use strategy.canary weights or blueGreen"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.blueGreen) || !has(self.strategy.blueGreen.mirror) || !self.strategy.blueGreen.mirror || (has(self.routing) && (has(self.routing.gatewayAPI) || has(self.routing.istio)))",message="strategy.blueGreen.mirror copies traffic and needs routing.gatewayAPI or routing.istio"
// +kubebuilder:validation:XValidation:rule="!(has(self.strategy.canary) && has(self.strategy.canary.scaleWithWeight) && self.strategy.canary.scaleWithWeight) || (self.targetRef.kind != 'DaemonSet' && !has(self.autoscalerRef))",message="strategy.canary.scaleWithWeight sizes the canary by its weight: it cannot go with an autoscalerRef, whose autoscaler sizes the canary by its load, nor with a DaemonSet target, which has no replica count"
// +kubebuilder:validation:XValidation:rule="self.targetRef.kind != 'DaemonSet' || !has(self.autoscalerRef)",message="autoscalerRef cannot go with a DaemonSet target: a DaemonSet runs one pod on each node it selects and has no replica count to scale"
// +kubebuilder:validation:XValidation:rule="!(has(self.routing) && has(self.routing.gatewayAPI) && has(self.routing.gatewayAPI.routeKind) && self.routing.gatewayAPI.routeKind == 'GRPCRoute') || !has(self.strategy.canary) || !has(self.strategy.canary.sessionAffinity)",message="strategy.canary.sessionAffinity pins users with a cookie, which gRPC clients do not keep: it cannot work with routing.gatewayAPI.routeKind: GRPCRoute"
// +kubebuilder:validation:XValidation:rule="!(has(self.routing) && has(self.routing.gatewayAPI) && has(self.routing.gatewayAPI.routeKind) && self.routing.gatewayAPI.routeKind == 'GRPCRoute') || !has(self.strategy.abTesting) || self.strategy.abTesting.match.all(m, !has(m.uri) && !has(m.method) && !has(m.cookies))",message="with routing.gatewayAPI.routeKind: GRPCRoute, strategy.abTesting.match may match headers only: a GRPCRoute matches gRPC methods and headers, not URIs, HTTP methods or cookies"
// +kubebuilder:validation:XValidation:rule="!(has(self.routing) && has(self.routing.gatewayAPI) && has(self.routing.gatewayAPI.routeKind) && self.routing.gatewayAPI.routeKind == 'GRPCRoute') || !has(self.analysis) || !has(self.analysis.metrics) || self.analysis.metrics.all(m, has(m.templateRef) || m.name != 'request-success-rate')",message="the built-in request-success-rate cannot judge gRPC: a failed gRPC call is an HTTP 200, and gateways count every call through a GRPCRoute alike (Traefik as code 2, Envoy as 200); with routing.gatewayAPI.routeKind: GRPCRoute give the check a templateRef that reads the app's gRPC statuses"
type RolloutSpec struct {
	// TargetRef names the Deployment or DaemonSet that Sluice releases.
	// Sluice parks it between releases (a Deployment at zero replicas, a
	// DaemonSet on no node) and runs it as the canary during a release.
	TargetRef TargetRef `json:"targetRef"`

	// AutoscalerRef names the autoscaler of the target: Sluice gives the
	// primary its own copy of it and keeps the target's idle while parked.
	// The copy takes a change of the user's autoscaler with the next
	// promotion only: a new scaling policy is part of what is released.
	// +optional
	AutoscalerRef *AutoscalerRef `json:"autoscalerRef,omitempty"`

	// Service describes the Services Sluice creates for the target: the apex
	// `<name>` (or service.name), `<name>-primary` and `<name>-canary`.
	Service ServiceSpec `json:"service"`

	// Routing chooses the router that shifts traffic. Leave it empty for the
	// kubernetes router, which switches the apex Service's selector (blue/green).
	// +optional
	Routing *Routing `json:"routing,omitempty"`

	// Strategy is how a new revision takes traffic.
	Strategy Strategy `json:"strategy"`

	// Analysis is how each step is held and checked.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// ProgressDeadlineSeconds is how long the canary may take to become ready
	// before the release is rolled back.
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// CanaryReadyThreshold is the percent of the canary's replicas that
	// must be available before it takes traffic or a step counts (all of
	// them must run the new version); 100, all, by default.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	CanaryReadyThreshold *int32 `json:"canaryReadyThreshold,omitempty"`

	// PrimaryReadyThreshold is the same for the primary, at installation
	// and promotion. Traffic still moves back to the primary only once it
	// has as many available replicas as the canary serves with.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	PrimaryReadyThreshold *int32 `json:"primaryReadyThreshold,omitempty"`

	// ScaleDownDelaySeconds is how long the canary's pods are kept after the
	// router stopped sending them traffic, at the end of a promotion or a
	// rollback, before the canary is scaled to zero. Gateways, meshes and
	// kube-proxy apply a route or endpoint change some time after the API
	// object says it (a fraction of a second normally, several seconds on a
	// loaded node): requests they still send to the canary must find its
	// pods running, not terminating. The default, 10 seconds, covers a
	// data plane that lags by several seconds, with a margin, while adding
	// little to a release. Raise it for slow data planes (many proxies,
	// long config pushes, long-lived connections); 0 scales the canary down
	// as soon as the route says it takes no traffic.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// Suspend holds the Rollout where it is: no step is taken and no check runs
	// until it is set back to false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// SkipAnalysis promotes a new revision as soon as the canary is ready,
	// without steps, checks or gates.
	// +optional
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`

	// RevertOnDeletion is deprecated and has no effect: deleting a Rollout
	// always scales the target back up, waits until it is ready, and routes
	// traffic to it before Sluice's objects are removed.
	// +optional
	RevertOnDeletion bool `json:"revertOnDeletion,omitempty"`
}

// ApexServiceName is the name of the apex Service: service.name, else the
// target's name.
func (s *RolloutSpec) ApexServiceName() string {
	if s.Service.Name != "" {
		return s.Service.Name
	}
	return s.TargetRef.Name
}

// TargetRef names the workload that a Rollout releases.
//
// +kubebuilder:validation:XValidation:rule="self.kind == oldSelf.kind",message="targetRef.kind cannot change: the primary is of the old kind; delete the Rollout (traffic is handed back to the target) and create it again"
// +kubebuilder:validation:XValidation:rule="self.name == oldSelf.name",message="targetRef.name cannot change: the primary, its Services and routes are the old target's, and only they are handed back when the Rollout goes; delete the Rollout (traffic is handed back to the target) and create one for the other target"
type TargetRef struct {
	// APIVersion of the target.
	// +kubebuilder:default="apps/v1"
	// +kubebuilder:validation:XValidation:rule="self == 'apps/v1'",message="targetRef.apiVersion must be apps/v1"
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`

	// Kind of the target: Deployment or DaemonSet.
	// +kubebuilder:validation:XValidation:rule="self == 'Deployment' || self == 'DaemonSet'",message="targetRef.kind must be Deployment or DaemonSet: Sluice releases those kinds only"
	Kind string `json:"kind"`

	// Name of the target in the Rollout's namespace; fixed once set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	Name string `json:"name"`
}

// AutoscalerRef names a HorizontalPodAutoscaler (autoscaling/v2) or a KEDA
// ScaledObject (keda.sh/v1alpha1) in the Rollout's namespace that scales the
// target Deployment.
//
// +kubebuilder:validation:XValidation:rule="(self.kind == 'HorizontalPodAutoscaler' && self.apiVersion == 'autoscaling/v2') || (self.kind == 'ScaledObject' && self.apiVersion == 'keda.sh/v1alpha1')",message="autoscalerRef must be a HorizontalPodAutoscaler with apiVersion autoscaling/v2 or a ScaledObject with apiVersion keda.sh/v1alpha1"
// +kubebuilder:validation:XValidation:rule="!has(self.primaryScalerQueries) || self.kind == 'ScaledObject'",message="primaryScalerQueries rewrites the queries of KEDA triggers and goes with kind ScaledObject"
type AutoscalerRef struct {
	// APIVersion of the autoscaler: autoscaling/v2 or keda.sh/v1alpha1.
	// +kubebuilder:validation:MaxLength=64
	APIVersion string `json:"apiVersion"`

	// Kind of the autoscaler: HorizontalPodAutoscaler or ScaledObject.
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind"`

	// Name of the autoscaler in the Rollout's namespace. Its copy for the
	// primary is named `<name>-primary`.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	Name string `json:"name"`

	// PrimaryScalerReplicas replaces the minimum and maximum replicas in the
	// primary's copy (the canary keeps the user's).
	// +optional
	PrimaryScalerReplicas *ScalerReplicas `json:"primaryScalerReplicas,omitempty"`

	// PrimaryScalerQueries maps the names of the ScaledObject's triggers to
	// the query that replaces their `query` metadata in the primary's copy,
	// e.g. a Prometheus query on the primary's pods instead of the target's.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	PrimaryScalerQueries map[string]string `json:"primaryScalerQueries,omitempty"`
}

// ScalerReplicas bounds the replicas an autoscaler may set.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="primaryScalerReplicas.minReplicas must not be above maxReplicas"
type ScalerReplicas struct {
	// MinReplicas is the least replicas the autoscaler keeps.
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="primaryScalerReplicas.minReplicas must be at least 1: the primary serves all traffic between releases"
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most replicas the autoscaler sets.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
}

// ServiceSpec is the name, port and metadata of the Services that Sluice
// generates.
//
// +kubebuilder:validation:XValidation:rule="has(self.name) == has(oldSelf.name) && (!has(self.name) || self.name == oldSelf.name)",message="service.name cannot change: Sluice would leave the old apex Service behind; delete the Rollout and create it again to rename the Service"
// +kubebuilder:validation:XValidation:rule="!has(self.ports) || self.ports.all(p, p.port != self.port)",message="service.ports may not repeat service.port: it is the main port already"
// +kubebuilder:validation:XValidation:rule="!has(self.ports) || self.ports.all(p, p.name != (has(self.portName) ? self.portName : 'http'))",message="service.ports may not repeat the name of the main port (service.portName, default http)"
// +kubebuilder:validation:XValidation:rule="!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, q.port == p.port && q.protocol == p.protocol))",message="service.ports may not list a port twice"
type ServiceSpec struct {
	// Name of the apex Service, when it is not the target's name (the
	// default). The `-primary` and `-canary` Services keep the target's
	// name, like the primary Deployment.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="service.name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"
	// +optional
	Name string `json:"name,omitempty"`

	// Adopt takes over an apex Service of that name that exists and is not
	// Sluice's (one a team ran before it used Sluice), instead of stalling
	// the Rollout with ServiceConflict. Sluice keeps its other fields (type,
	// load balancer settings, labels, annotations, session affinity) and
	// every port it has beyond the ones Sluice writes; it keeps selecting
	// the pods it selects until the primary is ready, then selects the
	// primary's (with a router; without one, the router moves it as for
	// any apex Service). Deleting the Rollout hands it back selecting the
	// target's pods. The -primary and -canary Services must be Sluice's.
	// +optional
	Adopt bool `json:"adopt,omitempty"`

	// Port the Services listen on.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// TargetPort is the container port (number or name) traffic goes to.
	// Defaults to Port.
	// +optional
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`

	// PortName names the Service port.
	// +kubebuilder:default=http
	// +optional
	PortName string `json:"portName,omitempty"`

	// AppProtocol of the main port (the Service port's appProtocol), for
	// gateways and meshes that choose a protocol by it: e.g. http, h2c,
	// kubernetes.io/h2c, kubernetes.io/ws, grpc.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",message="appProtocol must be a name such as http, h2c or kubernetes.io/h2c"
	// +optional
	AppProtocol string `json:"appProtocol,omitempty"`

	// Ports are more ports that the apex, primary and canary Services carry
	// besides the main one: metrics, gRPC beside HTTP, a TCP port. Each
	// follows its Service's selector; only the main port's traffic is split
	// by the router's weights.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Ports []ServicePort `json:"ports,omitempty"`

	// PortDiscovery adds to the Services, besides the main port and ports,
	// every containerPort declared in the pod template of the pods each
	// Service selects (the apex Service: of both versions). A discovered
	// port keeps the container port's name (or is named after its
	// protocol and number, e.g. tcp-9090), its number and protocol. The main
	// port and ports come first and win: a container port one of them has
	// (same number and protocol) or targets is not added again. A port a new
	// release declares is added; one it drops is removed from the apex and
	// primary Services once the primary's pods no longer declare it.
	// +optional
	PortDiscovery bool `json:"portDiscovery,omitempty"`

	// Apex holds labels and annotations for the apex Service.
	// +optional
	Apex *ServiceMetadata `json:"apex,omitempty"`

	// Primary holds labels and annotations for the `-primary` Service.
	// +optional
	Primary *ServiceMetadata `json:"primary,omitempty"`

	// Canary holds labels and annotations for the `-canary` Service.
	// +optional
	Canary *ServiceMetadata `json:"canary,omitempty"`
}

// ServicePort is one more port of the Services Sluice generates.
type ServicePort struct {
	// Name of the port, unique among the Service's ports.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="a port name must be lower-case letters, digits and '-' (an IANA service name)"
	Name string `json:"name"`

	// Port the Services listen on.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// TargetPort is the container port (number or name). Defaults to Port.
	// +optional
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`

	// Protocol of the port.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP
	// +kubebuilder:default=TCP
	// +optional
	Protocol string `json:"protocol,omitempty"`

	// AppProtocol of the port (see ServiceSpec.appProtocol).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",message="appProtocol must be a name such as http, h2c or kubernetes.io/h2c"
	// +optional
	AppProtocol string `json:"appProtocol,omitempty"`
}

// ServiceMetadata is what Sluice adds to the metadata of a Service, or a
// route, it generates. Keys that Sluice sets itself
// (`app.kubernetes.io/managed-by` and any under `sluice.dev/`) are refused.
type ServiceMetadata struct {
	// Labels added to the Service (or route).
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != 'app.kubernetes.io/managed-by' && !k.startsWith('sluice.dev/'))",message="labels may not set app.kubernetes.io/managed-by or keys under sluice.dev/: Sluice sets them"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations added to the Service (or route).
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('sluice.dev/'))",message="annotations may not set keys under sluice.dev/: Sluice sets them"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Routing holds one field per router; at most one may be set. None set means
// the kubernetes router.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.gatewayAPI) && has(self.istio))",message="set at most one router in routing: gatewayAPI or istio"
type Routing struct {
	// GatewayAPI routes through a Gateway API HTTPRoute or GRPCRoute.
	// +optional
	GatewayAPI *GatewayAPIRouting `json:"gatewayAPI,omitempty"`

	// Istio routes through an Istio VirtualService.
	// +optional
	Istio *IstioRouting `json:"istio,omitempty"`
}

// GatewayAPIRouting configures the Gateway API router.
// +kubebuilder:validation:XValidation:rule="!has(self.httpRouteRef) || (!has(self.filters) && !has(self.timeouts))",message="filters and timeouts go on a generated HTTPRoute; an adopted one (httpRouteRef) keeps its own"
// +kubebuilder:validation:XValidation:rule="!has(self.grpcRouteRef) || !has(self.filters)",message="filters go on a generated GRPCRoute; an adopted one (grpcRouteRef) keeps its own"
// +kubebuilder:validation:XValidation:rule="!has(self.grpcRouteRef) || (has(self.routeKind) && self.routeKind == 'GRPCRoute')",message="grpcRouteRef adopts a GRPCRoute: set routeKind: GRPCRoute with it"
// +kubebuilder:validation:XValidation:rule="!has(self.httpRouteRef) || !has(self.routeKind) || self.routeKind == 'HTTPRoute'",message="httpRouteRef adopts an HTTPRoute: with routeKind: GRPCRoute adopt a GRPCRoute with grpcRouteRef"
// +kubebuilder:validation:XValidation:rule="!has(self.timeouts) || !has(self.routeKind) || self.routeKind == 'HTTPRoute'",message="timeouts are HTTPRoute timeouts: the Gateway API's GRPCRoute has none"
// +kubebuilder:validation:XValidation:rule="!has(self.metadata) || (!has(self.httpRouteRef) && !has(self.grpcRouteRef))",message="metadata goes on the route Sluice generates; an adopted one (httpRouteRef, grpcRouteRef) keeps its own"
type GatewayAPIRouting struct {
	// Metadata holds labels and annotations Sluice keeps on the route
	// (HTTPRoute or GRPCRoute) it generates (e.g. external-dns's, or a
	// team label). A key removed here is removed from the route; keys
	// others set on it are left alone.
	// +optional
	Metadata *ServiceMetadata `json:"metadata,omitempty"`

	// RouteKind is the kind of route Sluice generates or adopts: HTTPRoute
	// (the default) or GRPCRoute, for gateways and meshes that route gRPC
	// by service and method. It is chosen here rather than inferred from
	// the Service's appProtocol: h2c and grpc backends are routed through
	// HTTPRoutes by many gateways too, and a route of the other kind would
	// appear, or be replaced, when only a port's protocol changed.
	// +kubebuilder:validation:Enum=HTTPRoute;GRPCRoute
	// +optional
	RouteKind string `json:"routeKind,omitempty"`

	// ParentRefs are the Gateways the generated route attaches to, or
	// Services for mesh (GAMMA) routing.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	ParentRefs []ParentReference `json:"parentRefs,omitempty"`

	// Hostnames of the generated route.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Hostnames []string `json:"hostnames,omitempty"`

	// HTTPRouteRef adopts an existing HTTPRoute: Sluice edits only the
	// backendRefs of its rules that point at the apex Service.
	// +optional
	HTTPRouteRef *LocalObjectReference `json:"httpRouteRef,omitempty"`

	// GRPCRouteRef adopts an existing GRPCRoute (with routeKind:
	// GRPCRoute): Sluice edits only the backendRefs of its rules that point
	// at the apex Service.
	// +optional
	GRPCRouteRef *LocalObjectReference `json:"grpcRouteRef,omitempty"`

	// Timeouts of the generated HTTPRoute's rules (the Gateway API's
	// HTTPRouteTimeouts), for gateways that implement them.
	// +optional
	Timeouts *GatewayAPITimeouts `json:"timeouts,omitempty"`

	// Filters of the generated route's rules (HTTPRoute or GRPCRoute), for
	// both versions: header changes, or an ExtensionRef to a filter of the
	// gateway's own.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Filters []GatewayAPIFilter `json:"filters,omitempty"`
}

// GatewayAPITimeouts are the timeouts of a generated HTTPRoute's rules, in
// the Gateway API's duration format (e.g. 10s, 1m30s, 500ms).
type GatewayAPITimeouts struct {
	// Request is the timeout of the whole request, from the gateway's view.
	// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
	// +optional
	Request string `json:"request,omitempty"`
	// BackendRequest is the timeout of one request to a backend (a retry
	// is another).
	// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
	// +optional
	BackendRequest string `json:"backendRequest,omitempty"`
}

// GatewayAPIFilter is one filter of a generated HTTPRoute's rules.
//
// +kubebuilder:validation:XValidation:rule="(self.type == 'RequestHeaderModifier') == has(self.requestHeaderModifier) && (self.type == 'ResponseHeaderModifier') == has(self.responseHeaderModifier) && (self.type == 'ExtensionRef') == has(self.extensionRef)",message="a filter sets exactly the field of its type"
type GatewayAPIFilter struct {
	// Type of the filter.
	// +kubebuilder:validation:Enum=RequestHeaderModifier;ResponseHeaderModifier;ExtensionRef
	Type string `json:"type"`
	// RequestHeaderModifier changes the request's headers.
	// +optional
	RequestHeaderModifier *HeaderOperations `json:"requestHeaderModifier,omitempty"`
	// ResponseHeaderModifier changes the response's headers.
	// +optional
	ResponseHeaderModifier *HeaderOperations `json:"responseHeaderModifier,omitempty"`
	// ExtensionRef names a filter object of the gateway's own.
	// +optional
	ExtensionRef *GatewayAPIExtensionRef `json:"extensionRef,omitempty"`
}

// GatewayAPIExtensionRef names an implementation-specific filter object in
// the Rollout's namespace.
type GatewayAPIExtensionRef struct {
	// Group of the filter object's kind ("" for the core group).
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group"`
	// Kind of the filter object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// Name of the filter object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ParentReference names a Gateway, or a Service for mesh (GAMMA) routing:
// an HTTPRoute whose parent is a Service routes the east-west traffic sent
// to that Service, in meshes that implement the Gateway API's GAMMA
// initiative (Linkerd, Istio ambient, Cilium and others).
//
// +kubebuilder:validation:XValidation:rule="!has(self.port) || (has(self.kind) && self.kind == 'Service')",message="port goes with kind: Service (the Service port a mesh route applies to)"
type ParentReference struct {
	// Kind of the parent: Gateway (the default) or Service (mesh routing).
	// +kubebuilder:validation:Enum=Gateway;Service
	// +kubebuilder:default=Gateway
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the Gateway or Service.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the parent; defaults to the Rollout's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// SectionName is the Gateway listener (or Service port name) to attach to.
	// +optional
	SectionName string `json:"sectionName,omitempty"`
	// Port of a Service parent the route applies to; all its ports when unset.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// IstioRouting configures the Istio router.
// +kubebuilder:validation:XValidation:rule="!has(self.destinationRuleRefs) || !has(self.trafficPolicy)",message="trafficPolicy goes on the DestinationRules Sluice generates; adopted ones (destinationRuleRefs) keep their own: write it there"
// +kubebuilder:validation:XValidation:rule="!has(self.metadata) || !has(self.virtualServiceRef)",message="metadata goes on the VirtualService Sluice generates; an adopted one (virtualServiceRef) keeps its own"
type IstioRouting struct {
	// Metadata holds labels and annotations Sluice keeps on the
	// VirtualService it generates (e.g. external-dns's, or a team label).
	// A key removed here is removed from the route; keys others set on
	// it are left alone.
	// +optional
	Metadata *ServiceMetadata `json:"metadata,omitempty"`

	// Hosts of the generated VirtualService (the apex Service's name is
	// always added, for traffic inside the mesh).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Hosts []string `json:"hosts,omitempty"`
	// Gateways of the generated VirtualService.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Gateways []string `json:"gateways,omitempty"`
	// Match restricts the generated route to these requests.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Match []RequestMatch `json:"match,omitempty"`
	// Retries of the generated route.
	// +optional
	Retries *IstioRetries `json:"retries,omitempty"`
	// Timeout of the generated route.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Headers manipulates request and response headers on the generated route.
	// +optional
	Headers *IstioHeaders `json:"headers,omitempty"`
	// Rewrite rewrites the URI or authority of requests on the generated route.
	// +optional
	Rewrite *IstioRewrite `json:"rewrite,omitempty"`
	// TrafficPolicy is an Istio DestinationRule trafficPolicy, in Istio's own
	// shape (loadBalancer, connectionPool, outlierDetection, tls, ...), set
	// on the -primary and -canary DestinationRules Sluice generates. The API
	// server keeps it as written; Sluice checks it against Istio's schema
	// when it reconciles and stalls the Rollout (reason
	// InvalidTrafficPolicy) when it does not parse.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	TrafficPolicy *runtime.RawExtension `json:"trafficPolicy,omitempty"`
	// CorsPolicy is an Istio HTTPRoute corsPolicy, in Istio's own shape
	// (allowOrigins, allowMethods, allowHeaders, exposeHeaders, maxAge,
	// allowCredentials), set on the generated VirtualService's route. Not
	// used with virtualServiceRef: put it in your VirtualService. Checked
	// like trafficPolicy (reason InvalidCorsPolicy).
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	CorsPolicy *runtime.RawExtension `json:"corsPolicy,omitempty"`
	// VirtualServiceRef adopts an existing VirtualService: Sluice edits only
	// the destinations of its routes that point at the apex Service.
	// +optional
	VirtualServiceRef *LocalObjectReference `json:"virtualServiceRef,omitempty"`
	// DestinationRuleRefs adopts the user's DestinationRules of the -primary
	// and -canary hosts instead of generating them: Sluice checks that each
	// names its host and never writes them, so their trafficPolicy, subsets,
	// exportTo and the rest stay the user's.
	// +optional
	DestinationRuleRefs *IstioDestinationRuleRefs `json:"destinationRuleRefs,omitempty"`
}

// IstioDestinationRuleRefs names the user's DestinationRules of the -primary
// and -canary Services.
// +kubebuilder:validation:XValidation:rule="self.primary.name != self.canary.name",message="destinationRuleRefs.primary and .canary must be two DestinationRules: each is for one host"
type IstioDestinationRuleRefs struct {
	// Primary names the DestinationRule whose host is the -primary Service.
	Primary LocalObjectReference `json:"primary"`
	// Canary names the DestinationRule whose host is the -canary Service.
	Canary LocalObjectReference `json:"canary"`
}

// IstioRetries is an Istio retry policy.
type IstioRetries struct {
	// Attempts is the number of retries.
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts"`
	// PerTryTimeout bounds each try.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
	// RetryOn lists the conditions to retry on, e.g. "5xx,reset".
	// +optional
	RetryOn string `json:"retryOn,omitempty"`
}

// IstioHeaders are header operations on requests and responses.
type IstioHeaders struct {
	// +optional
	Request *HeaderOperations `json:"request,omitempty"`
	// +optional
	Response *HeaderOperations `json:"response,omitempty"`
}

// HeaderOperations sets, adds and removes headers.
type HeaderOperations struct {
	// +optional
	Set map[string]string `json:"set,omitempty"`
	// +optional
	Add map[string]string `json:"add,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Remove []string `json:"remove,omitempty"`
}

// IstioRewrite rewrites requests.
type IstioRewrite struct {
	// +optional
	URI string `json:"uri,omitempty"`
	// +optional
	Authority string `json:"authority,omitempty"`
}

// RequestMatch selects requests by URI, method, headers and cookies. All
// the conditions given must hold.
type RequestMatch struct {
	// URI of the request.
	// +optional
	URI *StringMatch `json:"uri,omitempty"`
	// Method of the request, e.g. GET.
	// +optional
	Method string `json:"method,omitempty"`
	// Headers by name.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// Cookies by name, matched exactly.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Cookies map[string]string `json:"cookies,omitempty"`
}

// StringMatch matches a string exactly, by prefix or by regular expression;
// set exactly one.
//
// +kubebuilder:validation:XValidation:rule="(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1",message="set exactly one of exact, prefix or regex"
type StringMatch struct {
	// +optional
	Exact *string `json:"exact,omitempty"`
	// +optional
	Prefix *string `json:"prefix,omitempty"`
	// +optional
	Regex *string `json:"regex,omitempty"`
}

// LocalObjectReference names an object in the Rollout's namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// Strategy is how a new revision takes traffic; set exactly one.
//
// +kubebuilder:validation:XValidation:rule="(has(self.canary) ? 1 : 0) + (has(self.blueGreen) ? 1 : 0) + (has(self.abTesting) ? 1 : 0) == 1",message="set exactly one strategy: canary, blueGreen or abTesting"
type Strategy struct {
	// Canary moves traffic to the new revision in weighted steps.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`

	// BlueGreen keeps all traffic on the primary while the new revision is
	// checked for a number of iterations, then switches it all at once.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`

	// ABTesting sends the requests that match to the canary, and the rest to
	// the primary, for a number of iterations, then promotes.
	// +optional
	ABTesting *ABTestingStrategy `json:"abTesting,omitempty"`
}

// ABTestingStrategy routes matching requests to the canary.
type ABTestingStrategy struct {
	// Iterations is how many analysis intervals the canary must pass.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Iterations int32 `json:"iterations,omitempty"`

	// Match lists the requests that go to the canary (any of them).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Match []RequestMatch `json:"match"`
}

// AffinityPin says which versions' users session affinity keeps where they
// are.
// +kubebuilder:validation:Enum=Both;CanaryOnly
type AffinityPin string

const (
	// PinBoth keeps every user on the version it first reached: users of
	// the primary stay there too, and the weights apply to new users only.
	PinBoth AffinityPin = "Both"
	// PinCanaryOnly keeps users who reached the canary there; users of the
	// primary carry no cookie and are weighted anew on each request, so
	// more of them reach the canary as its weight grows (Flagger's way).
	PinCanaryOnly AffinityPin = "CanaryOnly"
)

// SessionAffinity keeps a user on the version it first reached.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sameSite) || self.sameSite != 'None' || (has(self.secure) && self.secure)",message="sameSite: None needs secure: true (browsers drop a SameSite=None cookie that is not Secure)"
type SessionAffinity struct {
	// CookieName of the affinity cookie.
	// +kubebuilder:default=sluice-affinity
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	CookieName string `json:"cookieName,omitempty"`
	// MaxAge of the cookie in seconds.
	// +kubebuilder:default=86400
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxAge int32 `json:"maxAge,omitempty"`
	// Secure adds the cookie's Secure attribute: browsers send it over
	// HTTPS only.
	// +optional
	Secure bool `json:"secure,omitempty"`
	// SameSite is the cookie's SameSite attribute; None needs secure.
	// +kubebuilder:validation:Enum=Strict;Lax;None
	// +optional
	SameSite string `json:"sameSite,omitempty"`
	// Domain is the cookie's Domain attribute; empty means the host that
	// answered.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`
	// +optional
	Domain string `json:"domain,omitempty"`
	// Path is the cookie's Path attribute.
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/[!-:<-~]*$`
	// +optional
	Path string `json:"path,omitempty"`
	// Pin is whose users stay where they are: Both (the default: no user
	// ever switches version during a run) or CanaryOnly (only users who
	// reached the canary stay there, as in Flagger).
	// +kubebuilder:default=Both
	// +optional
	Pin AffinityPin `json:"pin,omitempty"`
}

// CanaryStrategy lists the weights a canary goes through, in one of three
// ways: explicit steps, stepWeight up to maxWeight, or a list of stepWeights.
//
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || (!has(self.stepWeight) && !has(self.stepWeights) && !has(self.maxWeight))",message="steps cannot be combined with stepWeight, stepWeights or maxWeight: list the weights one way only"
// +kubebuilder:validation:XValidation:rule="!(has(self.stepWeight) && has(self.stepWeights))",message="stepWeight and stepWeights are alternatives: set one of them"
// +kubebuilder:validation:XValidation:rule="has(self.steps) || has(self.stepWeight) || has(self.stepWeights)",message="a canary needs steps, stepWeight (with maxWeight) or stepWeights"
// +kubebuilder:validation:XValidation:rule="!has(self.maxWeight) || has(self.stepWeight)",message="maxWeight goes with stepWeight"
// +kubebuilder:validation:XValidation:rule="!has(self.maxWeight) || !has(self.stepWeight) || self.maxWeight >= self.stepWeight",message="maxWeight must be at least stepWeight"
// +kubebuilder:validation:XValidation:rule="!(has(self.scaleWithWeight) && self.scaleWithWeight && has(self.sessionAffinity))",message="scaleWithWeight sizes the canary for its weight, but with sessionAffinity the users pinned to the canary are not its weight's share of the traffic: use one or the other"
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || (has(self.scaleWithWeight) && self.scaleWithWeight)",message="minReplicas is the fewest replicas of a canary sized by its weight: it goes with scaleWithWeight: true"
type CanaryStrategy struct {
	// Steps are explicit setWeight and pause steps, in order.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted() && self.all(s, !has(s.setWeight) || self.exists_one(t, has(t.setWeight) && t.setWeight == s.setWeight))",message="the setWeight values of steps must increase from one step to the next"
	Steps []CanaryStep `json:"steps,omitempty"`

	// StepWeight is the weight added at each step, up to MaxWeight.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	StepWeight *int32 `json:"stepWeight,omitempty"`

	// MaxWeight is the last weight before promotion (default 100 when
	// stepWeight is set).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxWeight *int32 `json:"maxWeight,omitempty"`

	// SessionAffinity keeps each user on the version it first reached while
	// the canary's weight grows; dropped after promotion or rollback.
	// +optional
	SessionAffinity *SessionAffinity `json:"sessionAffinity,omitempty"`

	// StepWeights lists the weights of each step.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted() && self.all(w, self.exists_one(v, v == w))",message="stepWeights must increase from one step to the next, e.g. [5, 25, 50]"
	StepWeights []int32 `json:"stepWeights,omitempty"`

	// StepWeightPromotion moves traffic back to the primary in steps of this
	// many percent, each held one analysis interval, once the primary runs
	// the new revision and is ready; without it, all traffic moves back at
	// once. No checks run during these steps: the canary's were done.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	StepWeightPromotion *int32 `json:"stepWeightPromotion,omitempty"`

	// ScaleWithWeight runs the canary with the replicas its weight needs
	// rather than as many as the primary: the primary's count times the
	// weight, rounded up, so that no canary pod carries more than a
	// primary pod, and at least minReplicas (two by default; never more
	// than the primary runs), so that one lost pod leaves one serving.
	// Before each increase of the weight the canary is scaled for it and
	// its new pods are ready; before it takes all traffic at promotion it
	// grows to the primary's size. Not with
	// sessionAffinity, an autoscalerRef (the autoscaler sizes the canary)
	// or a DaemonSet target.
	// +optional
	ScaleWithWeight bool `json:"scaleWithWeight,omitempty"`

	// MinReplicas is the fewest replicas a canary sized by its weight
	// (scaleWithWeight) runs, however small its weight: 2 when unset, so
	// that one lost pod leaves one serving the canary's share. Never more
	// than the primary runs. 1 saves a pod, at the cost of failed requests
	// while a lone canary pod is replaced; more spreads a small canary over
	// more nodes or zones.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
}

// CanaryStep is one step of a canary: a weight, or a pause.
//
// +kubebuilder:validation:XValidation:rule="has(self.setWeight) != has(self.pause)",message="a step is either setWeight or pause, not both and not neither"
type CanaryStep struct {
	// SetWeight sends this percentage of traffic to the canary, holds it for
	// the analysis interval and checks it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// Pause holds the current weight: for Duration, or until promoted by hand
	// when Duration is not set.
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`
}

// PauseStep holds a canary at its weight.
type PauseStep struct {
	// Duration of the pause; empty means until a manual promote.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// BlueGreenStrategy keeps traffic on the primary while the canary is checked.
//
// +kubebuilder:validation:XValidation:rule="!has(self.mirrorPercent) || (has(self.mirror) && self.mirror)",message="mirrorPercent goes with mirror: true"
type BlueGreenStrategy struct {
	// Mirror copies live traffic to the canary (its answers are dropped)
	// while all traffic is served by the primary.
	// +optional
	Mirror bool `json:"mirror,omitempty"`

	// MirrorPercent is the share of requests copied (default 100).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MirrorPercent *int32 `json:"mirrorPercent,omitempty"`

	// Iterations is how many analysis intervals the canary must pass before
	// all traffic switches to it.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Iterations int32 `json:"iterations,omitempty"`
}

// Analysis is how each step is held and checked.
type Analysis struct {
	// Interval is how long each step is held before it is checked.
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self) >= duration('1s')",message="interval must be at least 1s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Threshold is the number of failed checks that rolls the release back.
	// +kubebuilder:default=5
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="threshold must be at least 1: it is the number of failed checks that rolls the release back"
	// +optional
	Threshold int32 `json:"threshold,omitempty"`

	// Metrics are checked after each step's hold.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=map
	// +listMapKey=name
	Metrics []MetricCheck `json:"metrics,omitempty"`

	// Webhooks are the gates and hooks called during a release.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=map
	// +listMapKey=name
	Webhooks []Webhook `json:"webhooks,omitempty"`

	// Alerts send the release's events, at or above a severity, to
	// AlertProviders of the Rollout's namespace. Delivery is in the
	// background and never holds the release.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=map
	// +listMapKey=name
	Alerts []Alert `json:"alerts,omitempty"`
}

// AlertSeverity is how serious an event is: info (every event), warn (a
// failed check, a hold, an ignored action) or error (a rollback, a stalled
// release). docs/operations.md lists which event has which.
//
// +kubebuilder:validation:Enum=info;warn;error
type AlertSeverity string

// Alert severities, from the least to the most serious.
const (
	SeverityInfo  AlertSeverity = "info"
	SeverityWarn  AlertSeverity = "warn"
	SeverityError AlertSeverity = "error"
)

// Rank orders severities: info < warn < error; an unknown one ranks as info.
func (s AlertSeverity) Rank() int {
	switch s {
	case SeverityWarn:
		return 1
	case SeverityError:
		return 2
	}
	return 0
}

// Admits reports whether an alert of severity s is sent an event of
// severity ev: the event is at least as serious.
func (s AlertSeverity) Admits(ev AlertSeverity) bool { return ev.Rank() >= s.Rank() }

// Alert sends the events of a Rollout at or above Severity to an
// AlertProvider of its namespace.
type Alert struct {
	// Name of the alert, unique in the Rollout.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Severity is the least serious event sent: info sends every event,
	// warn the warnings and errors, error only the errors.
	// +kubebuilder:default=info
	// +optional
	Severity AlertSeverity `json:"severity,omitempty"`

	// ProviderRef names the AlertProvider, in the Rollout's namespace.
	ProviderRef LocalObjectReference `json:"providerRef"`
}

// Built-in metric names, usable without a templateRef.
const (
	MetricRequestSuccessRate = "request-success-rate"
	MetricRequestDuration    = "request-duration"
)

// MetricCheck is one metric checked after each step: against a range, against
// the primary (compare), or both.
//
// +kubebuilder:validation:XValidation:rule="has(self.templateRef) || self.name in ['request-success-rate', 'request-duration']",message="a metric without templateRef must be a built-in one: request-success-rate or request-duration"
// +kubebuilder:validation:XValidation:rule="has(self.thresholdRange) || has(self.compare)",message="a metric needs thresholdRange, compare or both"
// +kubebuilder:validation:XValidation:rule="!has(self.compare) || has(self.templateRef)",message="compare needs a templateRef: the template's query is run once for the canary and once for the primary"
// +kubebuilder:validation:XValidation:rule="!has(self.minRequests) || !has(self.templateRef)",message="minRequests guards the built-in checks (request-success-rate, request-duration), whose request counter Sluice knows; a template's query can guard itself, e.g. <query> and on() (sum(increase(<requests>[{{ .interval }}])) >= 100)"
type MetricCheck struct {
	// Name of the check; a built-in metric name when TemplateRef is empty.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// TemplateRef names the MetricTemplate (or ClusterMetricTemplate) whose
	// query the check runs.
	// +optional
	TemplateRef *MetricTemplateReference `json:"templateRef,omitempty"`

	// ThresholdRange is the range the value must be in for the check to
	// pass. With compare, the value is the canary's median over the window.
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty"`

	// Compare judges the canary against the primary: the template's query
	// is run over the window for each side and the two series are compared
	// (Mann-Whitney U test and Hodges-Lehmann shift). With thresholdRange
	// too, both must pass.
	// +optional
	Compare *Compare `json:"compare,omitempty"`

	// Interval is the query window, e.g. 1m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Variables are given to the MetricTemplate's query as .variables.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Variables map[string]string `json:"variables,omitempty"`

	// OnNoData says what a query that returns nothing means.
	// +kubebuilder:validation:Enum=fail;hold;pass
	// +kubebuilder:default=fail
	// +optional
	OnNoData NoDataPolicy `json:"onNoData,omitempty"`

	// MinRequests, on a built-in check, is the fewest requests the canary
	// must have answered over the window for the check to be judged: a
	// success rate of 100 % over three requests says little about a
	// release. With fewer, the check has no data and onNoData decides
	// (hold waits for traffic, fail counts a failed check). Unset, any
	// request is enough.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	// +optional
	MinRequests *int64 `json:"minRequests,omitempty"`
}

// Compare baselines. The primary is the only one today.
const (
	BaselinePrimary = "primary"
)

// CompareDirection says which way a compared metric gets worse.
// +kubebuilder:validation:Enum=increase;decrease;either
type CompareDirection string

// Compare directions.
const (
	// CompareIncrease: higher is worse (latency, error rate).
	CompareIncrease CompareDirection = "increase"
	// CompareDecrease: lower is worse (success rate, throughput).
	CompareDecrease CompareDirection = "decrease"
	// CompareEither: any significant difference beyond the tolerance is worse.
	CompareEither CompareDirection = "either"
)

// Compare judges a metric of the canary against the same metric of the
// baseline (the primary) over the same window.
type Compare struct {
	// Baseline is what the canary is compared with: primary (the only one).
	// +kubebuilder:validation:Enum=primary
	// +kubebuilder:default=primary
	// +optional
	Baseline string `json:"baseline,omitempty"`

	// Direction is the way the metric gets worse: increase (latency, error
	// rate), decrease (success rate) or either. Required: a wrong default
	// would let a canary through that is worse the other way.
	Direction CompareDirection `json:"direction"`

	// Tolerance is how much worse than the primary's median the canary may
	// be, as a percentage from 0% to 1000%: "10%" lets a latency be up to
	// 10% higher. 0% fails on any significant worsening.
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+([.][0-9]+)?%$')",message="tolerance must be a percentage such as 10% or 2.5%"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+([.][0-9]+)?%$') || double(self.replace('%', '')) <= 1000.0",message="tolerance must be at most 1000%"
	// +optional
	Tolerance string `json:"tolerance,omitempty"`

	// MinSamples is the fewest samples each side needs to be judged; with
	// fewer, onNoData decides.
	// +kubebuilder:default=5
	// +kubebuilder:validation:XValidation:rule="self >= 3 && self <= 10000",message="minSamples must be between 3 and 10000"
	// +optional
	MinSamples int32 `json:"minSamples,omitempty"`

	// Alpha is the significance level: the canary fails only when the
	// test's p-value is below it.
	// +kubebuilder:default=0.05
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 0.5",message="alpha must be above 0 and at most 0.5 (0.05 is usual)"
	// +optional
	Alpha *float64 `json:"alpha,omitempty"`

	// OnNoData says what a side without samples (or with fewer than
	// minSamples) means; the check's onNoData when empty.
	// +kubebuilder:validation:Enum=fail;hold;pass
	// +optional
	OnNoData NoDataPolicy `json:"onNoData,omitempty"`

	// Step is the spacing of the samples within the window. Each sample is
	// the query evaluated at one step, with .interval set to the step.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self) >= duration('1s')",message="compare.step must be at least 1s"
	// +optional
	Step *metav1.Duration `json:"step,omitempty"`
}

// Kinds a metric check's templateRef may name.
const (
	KindMetricTemplate        = "MetricTemplate"
	KindClusterMetricTemplate = "ClusterMetricTemplate"
)

// MetricTemplateReference names a MetricTemplate, in the Rollout's namespace
// unless namespace says otherwise (the template must then share itself with
// the Rollout's namespace, see SharedWithAnnotation), or a
// ClusterMetricTemplate.
//
// +kubebuilder:validation:XValidation:rule="!has(self.namespace) || !has(self.kind) || self.kind == 'MetricTemplate'",message="a ClusterMetricTemplate has no namespace"
type MetricTemplateReference struct {
	// Name of the template.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of a MetricTemplate; the Rollout's when empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// Kind is MetricTemplate (the default) or ClusterMetricTemplate.
	// +optional
	// +kubebuilder:validation:Enum=MetricTemplate;ClusterMetricTemplate
	Kind string `json:"kind,omitempty"`
}

// NoDataPolicy says what a metric query without a result means.
type NoDataPolicy string

// No-data policies.
const (
	NoDataFail NoDataPolicy = "fail"
	NoDataHold NoDataPolicy = "hold"
	NoDataPass NoDataPolicy = "pass"
)

// ThresholdRange bounds a metric value; at least one bound is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="thresholdRange needs min, max or both"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="thresholdRange.min must not be above thresholdRange.max"
type ThresholdRange struct {
	// Min is the lowest passing value.
	// +optional
	Min *float64 `json:"min,omitempty"`
	// Max is the highest passing value.
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// HookType says when a webhook is called and what its answer means.
// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event
type HookType string

// Webhook types.
const (
	HookConfirmRollout         HookType = "confirm-rollout"
	HookPreRollout             HookType = "pre-rollout"
	HookRollout                HookType = "rollout"
	HookConfirmTrafficIncrease HookType = "confirm-traffic-increase"
	HookConfirmPromotion       HookType = "confirm-promotion"
	HookPostRollout            HookType = "post-rollout"
	HookRollback               HookType = "rollback"
	HookEvent                  HookType = "event"
)

// HookTypes are all the webhook types, in the order of a release.
var HookTypes = []HookType{
	HookConfirmRollout, HookPreRollout, HookRollout, HookConfirmTrafficIncrease,
	HookConfirmPromotion, HookPostRollout, HookRollback, HookEvent,
}

// Webhook is a gate or hook called during a release.
type Webhook struct {
	// Name of the webhook.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Type says when the webhook is called.
	Type HookType `json:"type"`

	// URL the payload is POSTed to.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="url must be an absolute http or https URL"
	URL string `json:"url"`

	// Timeout of one call.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 30s, 5m or 1h30m"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Retries after a failed call, within the same check.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +optional
	Retries int32 `json:"retries,omitempty"`

	// Metadata is sent with the payload.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Phase is where a Rollout's release stands.
type Phase string

// Rollout phases.
const (
	PhaseInitializing     Phase = "Initializing"
	PhaseInitialized      Phase = "Initialized"
	PhaseWaiting          Phase = "Waiting"
	PhaseProgressing      Phase = "Progressing"
	PhaseWaitingPromotion Phase = "WaitingPromotion"
	PhasePromoting        Phase = "Promoting"
	PhaseFinalising       Phase = "Finalising"
	PhaseSucceeded        Phase = "Succeeded"
	PhaseFailed           Phase = "Failed"
	PhaseTerminating      Phase = "Terminating"
)

// Condition types Sluice sets on a Rollout. Ready, Reconciling and Stalled
// follow the conventions that kstatus reads.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionSuspended is True while spec.suspend holds the Rollout.
	ConditionSuspended = "Suspended"
	// ConditionGate is True while a webhook gate holds the release.
	ConditionGate = "GateClosed"
	// ConditionAlerts is False while an alert of spec.analysis.alerts
	// cannot be sent (its AlertProvider or Secret is missing or unusable);
	// set when events are sent, absent without alerts. It never holds the
	// release, and kstatus does not read it.
	ConditionAlerts = "AlertsReady"
)

// RolloutStatus is everything Sluice needs to resume a release after a
// restart; nothing else is kept in memory.
type RolloutStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// ObservedTargetGeneration is the generation of the target Deployment
	// last reconciled: a client that just changed the Deployment waits until
	// it catches up before reading the phase as the outcome of its change.
	// +optional
	ObservedTargetGeneration int64 `json:"observedTargetGeneration,omitempty"`

	// Phase of the release.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// CanaryWeight is the percentage of traffic the canary should receive.
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`

	// CanaryShareHeld is true while the canary, left with no available pod
	// mid-run, has its share of the traffic (canaryWeight) held on the
	// primary; the share goes back to it once it is ready again.
	// +optional
	CanaryShareHeld bool `json:"canaryShareHeld,omitempty"`

	// CurrentStepIndex is the index of the current step (0-based).
	// +optional
	CurrentStepIndex int32 `json:"currentStepIndex"`

	// StepProgress is the current step as "i/n" for display.
	// +optional
	StepProgress string `json:"stepProgress,omitempty"`

	// FailedChecks counts the failed checks of the current run.
	// +optional
	FailedChecks int32 `json:"failedChecks"`

	// StableRevision is the revision the primary serves.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`

	// CanaryRevision is the revision under release.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`

	// FailedRevision is the last revision that was rolled back; it is not
	// released again until it changes or a retry is asked for.
	// +optional
	FailedRevision string `json:"failedRevision,omitempty"`

	// TrackedConfigs maps "configmap/NAME" and "secret/NAME" used by the
	// target's pod template to the checksum of their data ("in-place" for
	// a service account token, which the primary reads uncopied).
	// +optional
	TrackedConfigs map[string]string `json:"trackedConfigs,omitempty"`

	// Autoscaler is the autoscaler whose copy Sluice runs for the primary.
	// When spec.autoscalerRef no longer names it, Sluice deletes the copy
	// and lifts its pause from the autoscaler, then clears this.
	// +optional
	Autoscaler *AutoscalerRef `json:"autoscaler,omitempty"`

	// RunStartedAt is when the current run started.
	// +optional
	RunStartedAt *metav1.Time `json:"runStartedAt,omitempty"`

	// PreviousCanaryUntil is when the target last served a revision other
	// than this run's, as the run started: the end of the last run's drain
	// (or of the handover at installation), or the run's start when it
	// began over a run whose canary may have taken traffic. A check whose
	// query reads back before it would read that revision's traffic as
	// this one's: a threshold check waits (verdict Wait) until it does not,
	// and a compare check's samples start once they do not. Unset when the
	// target served nothing before.
	// +optional
	PreviousCanaryUntil *metav1.Time `json:"previousCanaryUntil,omitempty"`

	// WaitingSince is when Sluice started waiting for the canary to be ready;
	// the progress deadline counts from here.
	// +optional
	WaitingSince *metav1.Time `json:"waitingSince,omitempty"`

	// StepStartedAt is when the current step's weight was confirmed by the
	// router; the step's hold counts from here. After checks that did not
	// end the step, it is set so that the hold ends when they are asked
	// again: an interval later, or when the checks that wait can answer.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// LastCheckAt is when the checks last ran.
	// +optional
	LastCheckAt *metav1.Time `json:"lastCheckAt,omitempty"`

	// PreRolloutPassed is true once the pre-rollout hooks passed in this run.
	// +optional
	PreRolloutPassed bool `json:"preRolloutPassed,omitempty"`

	// Paused is true while a pause action holds the Rollout.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// LastAction is the last runtime action carried out. One asked with an
	// id (sluice.dev/action-id, which kubectl sluice sets) is carried out
	// once: seen again, its annotations' removal was lost (a crash, an
	// error), and they are only removed.
	// +optional
	LastAction *ActionRecord `json:"lastAction,omitempty"`

	// FullPromotion is true when a promote-full action asked to skip the
	// remaining steps and gates of the current run.
	// +optional
	FullPromotion bool `json:"fullPromotion,omitempty"`

	// PromotionStartedAt is when the current promotion started; the
	// progress deadline of the promotion counts from here.
	// +optional
	PromotionStartedAt *metav1.Time `json:"promotionStartedAt,omitempty"`

	// CanaryDrainingSince is when, after a promotion or a rollback (or the
	// handover to the primary at installation), the router was first seen
	// sending the target no traffic: its pods are kept until
	// spec.scaleDownDelaySeconds later, while the data plane drains. It
	// stays until the next run's canary serves, so that a restarted manager
	// neither cuts a drain short nor starts it again.
	// +optional
	CanaryDrainingSince *metav1.Time `json:"canaryDrainingSince,omitempty"`

	// TargetScaledDown is true once the target was seen at zero replicas
	// outside a run: a replica count set on it afterwards is its owner's
	// wish and passed on to the primary, while a count left over from a run
	// never lowers the primary.
	// +optional
	TargetScaledDown bool `json:"targetScaledDown,omitempty"`

	// HandedBackAt is when, during deletion, traffic was handed back to the
	// target; Sluice's objects are removed a short drain time later.
	// +optional
	HandedBackAt *metav1.Time `json:"handedBackAt,omitempty"`

	// PostRolloutPending is true until the post-rollout hooks ran after a run.
	// +optional
	PostRolloutPending bool `json:"postRolloutPending,omitempty"`

	// Metrics holds the last result of each metric check.
	// +optional
	// +listType=map
	// +listMapKey=name
	Metrics []MetricStatus `json:"metrics,omitempty"`

	// Message says in words what the Rollout is doing or why it stopped.
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Suspended, GateClosed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CanaryTraffic is the percentage of traffic the canary is given now: its
// weight, or none while its share is held on the primary.
func (s *RolloutStatus) CanaryTraffic() int32 {
	if s.CanaryShareHeld {
		return 0
	}
	return s.CanaryWeight
}

// MetricStatus is the last result of one metric check.
type MetricStatus struct {
	// Name of the metric check.
	Name string `json:"name"`
	// Value last measured, as text (empty when there was no data).
	// +optional
	Value string `json:"value,omitempty"`
	// Verdict of the last check: Pass, Fail, NoData, Error, or Wait (a
	// window that still reads the revision the canary served before this
	// run: see status.previousCanaryUntil).
	// +optional
	Verdict string `json:"verdict,omitempty"`
	// Message explains a failure or error.
	// +optional
	Message string `json:"message,omitempty"`
	// PrimaryValue is, for a compare check, the primary's median over the
	// window, as text; Value is then the canary's.
	// +optional
	PrimaryValue string `json:"primaryValue,omitempty"`
	// Estimate is, for a compare check, how much the canary differs from
	// the primary (Hodges-Lehmann shift): "+21.3%" relative to the
	// primary's median, or in the metric's unit ("+0.002") when that
	// median is 0.
	// +optional
	Estimate string `json:"estimate,omitempty"`
	// PValue is, for a compare check, the test's p-value, as text.
	// +optional
	PValue string `json:"pValue,omitempty"`
	// CheckedAt is when the check ran.
	// +optional
	CheckedAt *metav1.Time `json:"checkedAt,omitempty"`
}

func init() {
	SchemeBuilder.Register(&Rollout{}, &RolloutList{})
}
