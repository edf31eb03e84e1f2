package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MetricsCredentialsLabel, set to "true" on a Secret, lets MetricTemplates of
// the Secret's namespace send its credentials to their provider. A template
// may name no other Secret: without the opt-in, anyone who may write a
// MetricTemplate could have the manager read any Secret of the namespace and
// send it to an address of their choosing. A service-account token is never
// used, labelled or not.
const MetricsCredentialsLabel = "sluice.dev/metrics-credentials"

// MetricTemplate is a reusable metric query that Rollouts refer to by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mt,categories=sluice
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.type`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.provider.address`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`
}

// MetricTemplateList is a list of MetricTemplates.
//
// +kubebuilder:object:root=true
type MetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricTemplate `json:"items"`
}

// MetricTemplateSpec is a provider and a query.
type MetricTemplateSpec struct {
	// Provider is where the query runs.
	Provider MetricProvider `json:"provider"`

	// Query is a Go template that renders to the provider's query language.
	// It sees .namespace, .name, .target, .service, .interval and .variables.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	Query string `json:"query"`
}

// Provider types a MetricTemplate may name.
const (
	ProviderPrometheus = "prometheus"
	ProviderWeb        = "web"
	ProviderDatadog    = "datadog"
	ProviderNewRelic   = "newrelic"
	ProviderDynatrace  = "dynatrace"
	ProviderCloudWatch = "cloudwatch"
	ProviderInfluxDB   = "influxdb"
	ProviderGraphite   = "graphite"
	ProviderKubernetes = "kubernetes"
)

// MetricProvider is a metrics backend. Each type reads its own fields and
// its own keys of the credentials Secret (docs/metrics.md lists them); the
// API server refuses a template that lacks what its type needs.
//
// +kubebuilder:validation:XValidation:rule="!has(self.type) || !(self.type in ['web', 'dynatrace', 'influxdb', 'graphite']) || has(self.address)",message="provider types web, dynatrace, influxdb and graphite need provider.address"
// +kubebuilder:validation:XValidation:rule="has(self.jsonPath) == (has(self.type) && self.type == 'web')",message="provider.jsonPath is required by, and only allowed for, type web"
// +kubebuilder:validation:XValidation:rule="!has(self.method) || (has(self.type) && self.type == 'web')",message="provider.method is only allowed for type web"
// +kubebuilder:validation:XValidation:rule="!has(self.body) || (has(self.type) && self.type == 'web' && has(self.method) && self.method == 'POST')",message="provider.body is only allowed for type web with method POST"
// +kubebuilder:validation:XValidation:rule="has(self.region) == (has(self.type) && self.type == 'cloudwatch')",message="provider.region is required by, and only allowed for, type cloudwatch"
// +kubebuilder:validation:XValidation:rule="has(self.accountID) == (has(self.type) && self.type == 'newrelic')",message="provider.accountID is required by, and only allowed for, type newrelic"
// +kubebuilder:validation:XValidation:rule="has(self.database) == (has(self.type) && self.type == 'influxdb')",message="provider.database is required by, and only allowed for, type influxdb"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || !(self.type in ['datadog', 'newrelic', 'dynatrace', 'cloudwatch']) || has(self.secretRef)",message="provider types datadog, newrelic, dynatrace and cloudwatch need provider.secretRef (their API keys)"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'kubernetes' || (!has(self.address) && !has(self.secretRef) && !has(self.headers))",message="provider type kubernetes reads the cluster's external metrics API: it takes no address, secretRef or headers"
type MetricProvider struct {
	// Type of the provider.
	// +kubebuilder:validation:Enum=prometheus;web;datadog;newrelic;dynatrace;cloudwatch;influxdb;graphite;kubernetes
	// +kubebuilder:default=prometheus
	// +optional
	Type string `json:"type,omitempty"`

	// Address of the provider, e.g. http://prometheus.monitoring:9090.
	// Prometheus defaults to the manager's --prometheus-address; datadog to
	// https://api.datadoghq.com, newrelic to https://api.newrelic.com and
	// cloudwatch to the region's endpoint. Required by web (the base URL the
	// query's path is resolved against), dynatrace (the environment URL),
	// influxdb and graphite.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="address must be an absolute http or https URL"
	Address string `json:"address,omitempty"`

	// SecretRef names a Secret in the template's namespace with the
	// credentials: `token` (bearer), or `username` and `password` (basic),
	// and optionally `ca.crt`; datadog reads `api-key` and `app-key`,
	// newrelic `api-key`, dynatrace `api-token`, cloudwatch
	// `aws-access-key-id`, `aws-secret-access-key` and optionally
	// `aws-session-token`. The Secret must carry the label
	// `sluice.dev/metrics-credentials: "true"` and must not be a
	// service-account token. A ClusterMetricTemplate's Secret is read from
	// the manager's namespace.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// InsecureSkipVerify skips TLS verification of the provider.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// Headers are sent with every query: at most 8, names HTTP tokens of
	// at most 128 characters, values at most 4096 characters without line
	// breaks.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 128 && k.matches('^[!#$%&*+.^_|~0-9A-Za-z-]+$') && size(self[k]) <= 4096 && !self[k].contains('\\n') && !self[k].contains('\\r'))",message="header names must be HTTP tokens and values at most 4096 characters without line breaks"
	Headers map[string]string `json:"headers,omitempty"`

	// JSONPath (web) selects the one number in the JSON answer, in
	// kubectl's JSONPath syntax, e.g. {.data.errorRate}.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	JSONPath string `json:"jsonPath,omitempty"`

	// Method (web) is GET (the default) or POST.
	// +optional
	// +kubebuilder:validation:Enum=GET;POST
	Method string `json:"method,omitempty"`

	// Body (web, POST) is a Go template rendered like the query and sent as
	// the request body (Content-Type application/json unless a header says
	// otherwise).
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Body string `json:"body,omitempty"`

	// Region (cloudwatch) is the AWS region, e.g. eu-west-1.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+$`
	Region string `json:"region,omitempty"`

	// AccountID (newrelic) is the New Relic account the NRQL query runs in.
	// +optional
	// +kubebuilder:validation:Minimum=1
	AccountID *int64 `json:"accountID,omitempty"`

	// Database (influxdb) is the InfluxDB database the InfluxQL query runs in.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Database string `json:"database,omitempty"`
}

// SharedWithAnnotation, on a MetricTemplate, lists the namespaces (comma
// separated, or "*" for all) whose Rollouts may use the template through a
// templateRef with a namespace. Without it a template serves its own
// namespace only: whoever owns a template (and the credentials Secret of its
// namespace it names) decides who may have Sluice query with it.
const SharedWithAnnotation = "sluice.dev/shared-with"

// ClusterMetricTemplate is a MetricTemplate that every namespace's Rollouts
// may use (templateRef.kind: ClusterMetricTemplate). Its credentials Secret
// is read from the manager's namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cmt,categories=sluice
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.type`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.provider.address`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterMetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`
}

// ClusterMetricTemplateList is a list of ClusterMetricTemplates.
//
// +kubebuilder:object:root=true
type ClusterMetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterMetricTemplate `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MetricTemplate{}, &MetricTemplateList{}, &ClusterMetricTemplate{}, &ClusterMetricTemplateList{})
}
