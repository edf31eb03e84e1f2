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

// MetricProvider is a metrics backend.
type MetricProvider struct {
	// Type of the provider.
	// +kubebuilder:validation:Enum=prometheus
	// +kubebuilder:default=prometheus
	// +optional
	Type string `json:"type,omitempty"`

	// Address of the provider, e.g. http://prometheus.monitoring:9090.
	// Defaults to the manager's --prometheus-address.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('http://') || self.startsWith('https://'))",message="address must be an absolute http or https URL"
	Address string `json:"address,omitempty"`

	// SecretRef names a Secret in the template's namespace with the
	// credentials: `token` (bearer), or `username` and `password` (basic),
	// and optionally `ca.crt`. The Secret must carry the label
	// `sluice.dev/metrics-credentials: "true"` and must not be a
	// service-account token.
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
}

func init() {
	SchemeBuilder.Register(&MetricTemplate{}, &MetricTemplateList{})
}
