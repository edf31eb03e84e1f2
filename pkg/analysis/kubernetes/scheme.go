package kubernetes

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// groupVersion is the external metrics API's.
var groupVersion = schema.GroupVersion{Group: "external.metrics.k8s.io", Version: "v1beta1"}

// codecs only decode raw answers: the client reads bytes and decodes them
// itself, so no type needs registering.
var codecs = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
