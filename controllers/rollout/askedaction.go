package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// askedAction is the request a user made with the action annotations, as a
// reconcile read it.
type askedAction struct {
	action, by string
	// hasBy: the action-by annotation is there (it may be empty).
	hasBy bool
}

func askedActionOf(ro *sluicev1.Rollout) askedAction {
	by, hasBy := ro.Annotations[sluicev1.ActionByAnnotation]
	return askedAction{action: ro.Annotations[sluicev1.ActionAnnotation], by: by, hasBy: hasBy}
}

// clearPatch is a JSON patch that removes the annotations only while they
// still hold this request: one asked since (`kubectl sluice resume` right
// after `pause`) replaced them with the next, which a plain removal would
// erase unseen.
func (a askedAction) clearPatch() ([]byte, error) {
	type op struct {
		Op    string  `json:"op"`
		Path  string  `json:"path"`
		Value *string `json:"value,omitempty"`
	}
	path := func(key string) string {
		return "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
	}
	ops := []op{
		{Op: "test", Path: path(sluicev1.ActionAnnotation), Value: &a.action},
		{Op: "remove", Path: path(sluicev1.ActionAnnotation)},
	}
	if a.hasBy {
		ops = append(ops,
			op{Op: "test", Path: path(sluicev1.ActionByAnnotation), Value: &a.by},
			op{Op: "remove", Path: path(sluicev1.ActionByAnnotation)})
	}
	return json.Marshal(ops)
}

// clearAction removes the action annotations once the action asked is
// recorded, and leaves them when they hold a request asked since: its own
// watch event brings that one to a reconcile.
func (r *Reconciler) clearAction(ctx context.Context, ro *sluicev1.Rollout, asked askedAction) error {
	patch, err := asked.clearPatch()
	if err != nil {
		return err
	}
	from := ro.ResourceVersion
	err = r.Patch(ctx, ro, client.RawPatch(types.JSONPatchType, patch))
	if err == nil {
		r.writes.wrote(client.ObjectKeyFromObject(ro), from, ro.ResourceVersion)
		return nil
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	// A test that failed is answered as an invalid request, like a request
	// refused for another reason: only the live annotations tell them apart.
	// Gone or replaced, the request carried out is no longer there to clear.
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
	if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ro), live); gerr == nil && !asked.isIn(live.GetAnnotations()) {
		return nil
	}
	return fmt.Errorf("clearing the action annotation: %w", err)
}

// isIn reports whether annotations still hold this request.
func (a askedAction) isIn(annotations map[string]string) bool {
	by, hasBy := annotations[sluicev1.ActionByAnnotation]
	return annotations[sluicev1.ActionAnnotation] == a.action && by == a.by && hasBy == a.hasBy
}
