package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertCredentialsLabel, set to "true" on a Secret, lets AlertProviders of
// the Secret's namespace send alerts to the URL the Secret holds (its key
// AlertAddressKey). An AlertProvider may name no other Secret: without the
// opt-in, anyone who may write an AlertProvider could have the manager read
// any Secret of the namespace and post it to a URL of their choosing. It is
// not MetricsCredentialsLabel: a Secret opted in as a metrics provider's
// credentials is not thereby a destination of alerts, nor the other way.
// A service-account token is never used, labelled or not.
const AlertCredentialsLabel = "sluice.dev/alert-credentials"

// AlertAddressKey is the key of an AlertProvider's Secret that holds the
// incoming-webhook URL alerts are posted to.
const AlertAddressKey = "address"

// AlertProviderType is the kind of receiver an AlertProvider posts to.
//
// +kubebuilder:validation:Enum=slack;msteams;discord;googlechat;webhook
type AlertProviderType string

// AlertProvider types.
const (
	AlertSlack      AlertProviderType = "slack"
	AlertMSTeams    AlertProviderType = "msteams"
	AlertDiscord    AlertProviderType = "discord"
	AlertGoogleChat AlertProviderType = "googlechat"
	// AlertWebhook POSTs Sluice's own JSON message (docs/operations.md).
	AlertWebhook AlertProviderType = "webhook"
)

// AlertProvider is a chat or webhook receiver that Rollouts of its namespace
// send alerts to (spec.analysis.alerts). The URL is read from a Secret of
// the same namespace that has opted in with AlertCredentialsLabel.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ap,categories=sluice
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretRef.name`
// +kubebuilder:printcolumn:name="Channel",type=string,JSONPath=`.spec.channel`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AlertProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AlertProviderSpec `json:"spec"`
}

// AlertProviderList is a list of AlertProviders.
//
// +kubebuilder:object:root=true
type AlertProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertProvider `json:"items"`
}

// AlertProviderSpec is a receiver type, the Secret with its URL, and the
// options of receivers that have them.
//
// +kubebuilder:validation:XValidation:rule="!has(self.channel) || self.type == 'slack'",message="channel is a Slack option: the other receivers post where their webhook URL points"
// +kubebuilder:validation:XValidation:rule="!has(self.username) || self.type in ['slack', 'discord']",message="username is a Slack or Discord option"
type AlertProviderSpec struct {
	// Type is the receiver: slack, msteams, discord, googlechat or webhook
	// (Sluice's JSON message, for a receiver of your own).
	Type AlertProviderType `json:"type"`

	// SecretRef names a Secret in the AlertProvider's namespace whose key
	// `address` holds the incoming-webhook URL (http or https). The Secret
	// must carry the label sluice.dev/alert-credentials: "true".
	SecretRef LocalObjectReference `json:"secretRef"`

	// Channel overrides the Slack channel of the webhook (Slack only; only
	// legacy Slack webhooks honour it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:XValidation:rule="self.matches('^[#@]?[a-zA-Z0-9._-]+$')",message="channel must be a Slack channel or user name such as #releases or releases"
	// +optional
	Channel string `json:"channel,omitempty"`

	// Username is the name the message is posted under (Slack and Discord).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\n') && !self.contains('\\r')",message="username must be one line"
	// +optional
	Username string `json:"username,omitempty"`
}

func init() {
	SchemeBuilder.Register(&AlertProvider{}, &AlertProviderList{})
}
