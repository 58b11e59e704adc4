// Command image builds flowproof's container image without a container
// engine (see package image) and writes it as a tarball:
//
//	make image    # bin/flowproof-image.tar, tagged flowproof:dev
//	docker load -i bin/flowproof-image.tar
//	go run github.com/google/go-containerregistry/cmd/crane@v0.22.1 push bin/flowproof-image.tar REGISTRY/flowproof:TAG
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/flowproof/flowproof/deploy/cluster/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var opts image.Options
	out := flag.String("o", "flowproof-image.tar", "tarball to write")
	tag := flag.String("tag", "flowproof:dev", "tag the tarball gives the image")
	flag.StringVar(&opts.RepoRoot, "repo", ".", "flowproof checkout to build")
	flag.StringVar(&opts.Arch, "arch", "", "GOARCH of the image (default: this machine's)")
	flag.StringVar(&opts.CABundleFile, "ca-bundle", "", "PEM CA bundle to put in the image (default: "+image.CABundle+")")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	img, err := image.Build(ctx, opts)
	if err != nil {
		return err
	}
	if err := image.WriteTarball(*out, *tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Printf("%s: %s %s\n", *out, *tag, digest)
	return nil
}
