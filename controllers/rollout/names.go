package rollout

import "github.com/sluice-dev/sluice/pkg/workload"

// The labels and annotations of the workload seam (pkg/workload), under the
// names the rest of Sluice and its tests know them by.
const (
	// RolloutLabel on Sluice's objects names the Rollout they belong to.
	RolloutLabel = workload.RolloutLabel
	// RevisionAnnotation on the primary records the revision it runs.
	RevisionAnnotation = workload.RevisionAnnotation
	// ConfigStampAnnotation on the target's pod template is the checksum of
	// the configuration its pods were started with.
	ConfigStampAnnotation = workload.ConfigStampAnnotation
	// StableConfigsAnnotation on the primary lists the config copies kept
	// for an abort during a promotion.
	StableConfigsAnnotation = workload.StableConfigsAnnotation
	// StableTemplateAnnotation and StableRevisionAnnotation on the primary
	// keep the stable revision's template for an abort during a promotion.
	StableTemplateAnnotation = workload.StableTemplateAnnotation
	StableRevisionAnnotation = workload.StableRevisionAnnotation
)
