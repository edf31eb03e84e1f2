package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of the index entry that name the image. containerd's importer
// (`ctr images import`) takes the full name from io.containerd.image.name;
// org.opencontainers.image.ref.name carries the tag, as the OCI image
// layout specification has it.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// ParseName checks that ref is a fully qualified, tagged image name
// (registry/repository:tag), the form a kubelet with imagePullPolicy: Never
// matches against the node's images.
func ParseName(ref string) (name.Tag, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: want a fully qualified REGISTRY/REPOSITORY:TAG (e.g. localhost/sluice-manager:0.1.0): %w", ref, err)
	}
	return tag, nil
}

// blob is one file of the layout archive.
type blob struct {
	name string
	size int64
	open func() (io.ReadCloser, error)
}

// WriteLayout writes img as an OCI image-layout tar archive (oci-layout,
// index.json, blobs/sha256/...) whose index names it ref. Entries are sorted
// and their headers fixed at mtime, so equal images give equal archives.
func WriteLayout(w io.Writer, img v1.Image, ref name.Tag, platform v1.Platform, mtime time.Time) error {
	desc, err := partial.Descriptor(img)
	if err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: desc.MediaType,
			Size:      desc.Size,
			Digest:    desc.Digest,
			Platform:  &platform,
			Annotations: map[string]string{
				annotationContainerdName: ref.Name(),
				annotationRefName:        ref.TagStr(),
			},
		}},
	})
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	files := []blob{
		bytesBlob("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		bytesBlob("index.json", index),
	}
	for _, b := range [][]byte{manifest, config} {
		d, _, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			return err
		}
		files = append(files, bytesBlob(blobPath(d), b))
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		files = append(files, blob{name: blobPath(d), size: size, open: l.Compressed})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })

	tw := tar.NewWriter(w)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeBlob(tw, f, mtime); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobPath(d v1.Hash) string {
	return "blobs/" + d.Algorithm + "/" + d.Hex
}

func bytesBlob(name string, b []byte) blob {
	return blob{name: name, size: int64(len(b)), open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

func writeBlob(tw *tar.Writer, f blob, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: f.size, Mode: 0o644, ModTime: mtime}); err != nil {
		return err
	}
	rc, err := f.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(tw, rc)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	if n != f.size {
		return fmt.Errorf("write %s: %d bytes, want %d", f.name, n, f.size)
	}
	return nil
}
