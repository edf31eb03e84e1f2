package workload

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StableTemplateAnnotation on the primary holds, from the start of a
// promotion until the next one, the pod template of the stable revision it
// ran before (JSON), so that an abort during the promotion can put it back;
// StableRevisionAnnotation names that revision.
const (
	StableTemplateAnnotation = "sluice.dev/stable-template"
	StableRevisionAnnotation = "sluice.dev/stable-revision"
)

// KeepStableTemplate records the primary's current template as the stable
// one before a promotion replaces it; a primary already promoting (its
// revision is not the stable one) keeps what it recorded.
func KeepStableTemplate(p Workload, stable string) error {
	o := p.Object()
	if o.GetAnnotations() == nil {
		o.SetAnnotations(map[string]string{})
	}
	if o.GetAnnotations()[RevisionAnnotation] != stable {
		return nil
	}
	raw, err := json.Marshal(p.Template())
	if err != nil {
		return fmt.Errorf("keeping the stable template of %s: %w", o.GetName(), err)
	}
	SetAnnotation(p, StableTemplateAnnotation, string(raw))
	SetAnnotation(p, StableRevisionAnnotation, stable)
	return nil
}

// StableTemplate returns the template kept for revision rev, or nil when the
// primary holds none for it.
func StableTemplate(p Workload, rev string) (*corev1.PodTemplateSpec, error) {
	if p.Object().GetAnnotations()[StableRevisionAnnotation] != rev {
		return nil, nil
	}
	return KeptTemplate(p.Object())
}

// KeptTemplate returns the template a primary keeps of its stable revision
// before its last promotion (StableTemplateAnnotation), whatever revision
// that was, or nil when it keeps none.
func KeptTemplate(o metav1.Object) (*corev1.PodTemplateSpec, error) {
	raw := o.GetAnnotations()[StableTemplateAnnotation]
	if raw == "" {
		return nil, nil
	}
	tmpl := &corev1.PodTemplateSpec{}
	if err := json.Unmarshal([]byte(raw), tmpl); err != nil {
		return nil, fmt.Errorf("reading the stable template kept on %s: %w", o.GetName(), err)
	}
	return tmpl, nil
}

// Restorable reports whether the primary keeps the template of the stable
// revision, which an abort during a promotion puts back.
func Restorable(p Workload, stable string) bool {
	ann := p.Object().GetAnnotations()
	return ann[StableTemplateAnnotation] != "" && ann[StableRevisionAnnotation] == stable
}
