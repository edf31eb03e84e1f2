package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Revision identifies what a release would ship: the pod template and the
// checksums of the configuration it uses (by ConfigRef key).
func Revision(template *corev1.PodTemplateSpec, configs map[string]string) (string, error) {
	h := sha256.New()
	if _, stamped := template.Annotations[ConfigStampAnnotation]; stamped {
		// Sluice's own stamp is not part of what the user ships.
		template = template.DeepCopy()
		delete(template.Annotations, ConfigStampAnnotation)
		if len(template.Annotations) == 0 {
			template.Annotations = nil
		}
	}
	if err := json.NewEncoder(h).Encode(template); err != nil {
		return "", fmt.Errorf("hashing the pod template: %w", err)
	}
	for _, k := range sortedKeys(configs) {
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, configs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:10], nil
}
