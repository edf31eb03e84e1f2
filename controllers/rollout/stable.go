package rollout

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// StableTemplateAnnotation on the primary Deployment holds, from the start of
// a promotion until the next one, the pod template of the stable revision it
// ran before (JSON), so that an abort during the promotion can put it back;
// StableRevisionAnnotation names that revision.
const (
	StableTemplateAnnotation = "sluice.dev/stable-template"
	StableRevisionAnnotation = "sluice.dev/stable-revision"
)

// keepStableTemplate records the primary's current template as the stable
// one before a promotion replaces it; a primary already promoting (its
// revision is not the stable one) keeps what it recorded.
func keepStableTemplate(p *appsv1.Deployment, stable string) error {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if p.Annotations[RevisionAnnotation] != stable {
		return nil
	}
	raw, err := json.Marshal(p.Spec.Template)
	if err != nil {
		return fmt.Errorf("keeping the stable template of %s: %w", p.Name, err)
	}
	p.Annotations[StableTemplateAnnotation] = string(raw)
	p.Annotations[StableRevisionAnnotation] = stable
	return nil
}

// stableTemplate returns the template kept for revision rev, or nil when the
// primary holds none for it.
func stableTemplate(p *appsv1.Deployment, rev string) (*corev1.PodTemplateSpec, error) {
	raw := p.Annotations[StableTemplateAnnotation]
	if raw == "" || p.Annotations[StableRevisionAnnotation] != rev {
		return nil, nil
	}
	tmpl := &corev1.PodTemplateSpec{}
	if err := json.Unmarshal([]byte(raw), tmpl); err != nil {
		return nil, fmt.Errorf("reading the stable template kept on %s: %w", p.Name, err)
	}
	return tmpl, nil
}
