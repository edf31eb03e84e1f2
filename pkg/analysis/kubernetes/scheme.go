package kubernetes

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// groupVersion is the external metrics API's.
var groupVersion = schema.GroupVersion{Group: "external.metrics.k8s.io", Version: "v1beta1"}

// codecs decode only the metav1.Status of an error answer, so that its
// message (the API server's "User ... cannot list resource ...", an
// adapter's reason for a 500) is kept; without it client-go words every
// error as "unknown". The client reads a value list as bytes and decodes
// it itself, so no other type needs registering.
var codecs = serializer.NewCodecFactory(statusScheme()).WithoutConversion()

func statusScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, groupVersion)
	return s
}
