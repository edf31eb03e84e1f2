package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Revision identifies what a release would ship: the pod template and the
// checksums of the configuration it uses (by ConfigRef key). What Sluice
// itself adds to a target's template is not part of it: the configuration
// stamp, and the parking of a kind without replicas (a parked target and the
// same target running are one revision).
func Revision(template *corev1.PodTemplateSpec, configs map[string]string) (string, error) {
	h := sha256.New()
	_, stamped := template.Annotations[ConfigStampAnnotation]
	if stamped || IsParked(&template.Spec) {
		template = template.DeepCopy()
		delete(template.Annotations, ConfigStampAnnotation)
		if len(template.Annotations) == 0 {
			template.Annotations = nil
		}
		Unpark(&template.Spec)
	}
	if err := json.NewEncoder(h).Encode(template); err != nil {
		return "", fmt.Errorf("hashing the pod template: %w", err)
	}
	for _, k := range sortedKeys(configs) {
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, configs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:10], nil
}
