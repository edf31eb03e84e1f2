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

// actionAnnotations are the annotations of a request for an action.
var actionAnnotations = []string{sluicev1.ActionAnnotation, sluicev1.ActionByAnnotation, sluicev1.ActionIDAnnotation}

// askedAction is the request a user made with the action annotations, as a
// reconcile read it: those of them that were there, by key.
type askedAction map[string]string

// It is nil when no action is asked, as it is in nearly every reconcile:
// only a request has annotations to clear.
func askedActionOf(ro *sluicev1.Rollout) askedAction {
	if _, ok := ro.Annotations[sluicev1.ActionAnnotation]; !ok {
		return nil
	}
	asked := make(askedAction, len(actionAnnotations))
	for _, k := range actionAnnotations {
		if v, ok := ro.Annotations[k]; ok {
			asked[k] = v
		}
	}
	return asked
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
	var ops []op
	for _, k := range actionAnnotations {
		v, ok := a[k]
		if !ok {
			continue
		}
		path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
		ops = append(ops, op{Op: "test", Path: path, Value: &v}, op{Op: "remove", Path: path})
	}
	return json.Marshal(ops)
}

// isIn reports whether annotations still hold this request.
func (a askedAction) isIn(annotations map[string]string) bool {
	for _, k := range actionAnnotations {
		v, ok := annotations[k]
		if w, asked := a[k]; ok != asked || v != w {
			return false
		}
	}
	return true
}

// clearAction removes the action annotations once the action asked is
// acted on, and leaves them when they hold a request asked since: its own
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
	// Gone or replaced, the request acted on is no longer there to clear.
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
	if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ro), live); gerr == nil && !asked.isIn(live.GetAnnotations()) {
		return nil
	}
	return fmt.Errorf("clearing the action annotation: %w", err)
}
