package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one file of the image: the host file Src copied to the absolute
// path Dest. A zero Mode takes 0755 when Src has an execute bit, else 0644,
// so the host's umask and owner never reach the image.
type File struct {
	Src  string
	Dest string
	Mode fs.FileMode
}

// Spec is everything an image is built from. Two builds of equal Specs over
// files of equal content give the same manifest digest.
type Spec struct {
	Files      []File
	Entrypoint []string
	User       string
	WorkDir    string
	Env        []string
	Labels     map[string]string
	// Created is the time of the image config, its history and every file
	// (SOURCE_DATE_EPOCH), so that a rebuild does not depend on the clock.
	Created  time.Time
	Platform v1.Platform
	// Tmp adds /tmp as an empty directory with mode 1777.
	Tmp bool
}

// builtBy is written into the image history instead of a host or user name.
const builtBy = "sluice hack/tools/images"

// Build writes the single layer of spec into a gzip file in tmpDir and
// returns the image around it. The layer file must outlive the image: the
// image reads it again when it is written out.
func Build(spec Spec, tmpDir string) (v1.Image, error) {
	entries, err := layerEntries(spec)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmpDir, "layer-*.tar.gz")
	if err != nil {
		return nil, err
	}
	if err := writeLayer(f, entries, spec.Created); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	// The layer is already gzipped: ggcr keeps the bytes as they are and
	// computes the diff ID by decompressing them.
	layer, err := tarball.LayerFromFile(f.Name(), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = spec.Platform.OS
	cf.Architecture = spec.Platform.Architecture
	cf.Variant = spec.Platform.Variant
	cf.Created = v1.Time{Time: spec.Created}
	cf.Config = v1.Config{
		Entrypoint: spec.Entrypoint,
		User:       spec.User,
		WorkingDir: spec.WorkDir,
		Env:        spec.Env,
		Labels:     spec.Labels,
	}
	base, err = mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: spec.Created},
			CreatedBy: builtBy,
			Comment:   "static files, no base image",
		},
	})
}

// entry is one tar entry of the layer; src is empty for a directory.
type entry struct {
	name string // relative, directories end in "/"
	src  string
	mode int64
}

// layerEntries lists the files of spec and every parent directory, sorted by
// name (so a parent comes before its children), and rejects two files at one
// path.
func layerEntries(spec Spec) ([]entry, error) {
	byName := map[string]entry{}
	addDirs := func(dir string) {
		for dir != "/" && dir != "." {
			name := strings.TrimPrefix(dir, "/") + "/"
			if _, ok := byName[name]; !ok {
				byName[name] = entry{name: name, mode: 0o755}
			}
			dir = path.Dir(dir)
		}
	}
	if spec.Tmp {
		byName["tmp/"] = entry{name: "tmp/", mode: 0o1777}
	}
	for _, f := range spec.Files {
		dest := path.Clean(f.Dest)
		if !path.IsAbs(f.Dest) || dest == "/" {
			return nil, fmt.Errorf("file %s: destination %q is not an absolute file path", f.Src, f.Dest)
		}
		name := strings.TrimPrefix(dest, "/")
		if _, ok := byName[name]; ok {
			return nil, fmt.Errorf("file %s: two files at %s", f.Src, dest)
		}
		if _, ok := byName[name+"/"]; ok {
			return nil, fmt.Errorf("file %s: %s is a directory", f.Src, dest)
		}
		fi, err := os.Stat(f.Src)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("file %s: not a regular file", f.Src)
		}
		mode := int64(f.Mode.Perm())
		if f.Mode&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		if f.Mode == 0 {
			mode = 0o644
			if fi.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
		}
		byName[name] = entry{name: name, src: f.Src, mode: mode}
		addDirs(path.Dir(dest))
	}
	for name := range byName {
		if !strings.HasSuffix(name, "/") {
			if _, ok := byName[name+"/"]; ok {
				return nil, fmt.Errorf("/%s is both a file and a parent directory", name)
			}
		}
	}
	entries := make([]entry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries, nil
}

// writeLayer writes entries as a gzipped tar. Every header has the same
// time, owner 0:0 and no user or group name; the gzip header has no name and
// no time, so equal entries give equal bytes.
func writeLayer(w io.Writer, entries []entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := writeEntry(tw, e, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeEntry(tw *tar.Writer, e entry, mtime time.Time) error {
	hdr := &tar.Header{
		Name:    e.name,
		Mode:    e.mode,
		ModTime: mtime,
	}
	if e.src == "" {
		hdr.Typeflag = tar.TypeDir
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.src, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("copy %s: size changed while reading (%d, then %d bytes)", e.src, hdr.Size, n)
	}
	return nil
}
