// A stargz snapshotter daemon for the lazy-pull tests: Debian packages the stargz-snapshotter
// library but not its daemon, and the library's service package needs a CRI module Debian does
// not have. This one serves the snapshotter over containerd's proxy-plugin socket and reads
// every layer from one registry over plain HTTP (the node mirror under test), anonymously.
package main

import (
	"context"
	"flag"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	stargzfs "github.com/containerd/stargz-snapshotter/fs"
	fsconfig "github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/snapshot"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "", "the gRPC socket containerd's proxy plugin connects to")
	root := flag.String("root", "", "where the snapshots and the layers' caches live")
	registry := flag.String("registry", "", "host:port every layer is read from, over plain HTTP")
	flag.Parse()
	ctx := log.WithLogger(context.Background(), log.L)
	if *address == "" || *root == "" || *registry == "" {
		log.G(ctx).Fatal("--address, --root and --registry are required")
	}

	hosts := func(reference.Spec) ([]docker.RegistryHost, error) {
		client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		return []docker.RegistryHost{{
			Client:       client,
			Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(client)),
			Host:         *registry,
			Scheme:       "http",
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		}}, nil
	}
	// Lazy in earnest: nothing of a layer is fetched before a file asks for it.
	fs, err := stargzfs.NewFilesystem(filepath.Join(*root, "stargz"), fsconfig.Config{NoPrefetch: true, NoBackgroundFetch: true},
		stargzfs.WithGetSources(source.FromDefaultLabels(hosts)))
	if err != nil {
		log.G(ctx).WithError(err).Fatal("the stargz filesystem")
	}
	snapshotter, err := snapshot.NewSnapshotter(ctx, filepath.Join(*root, "snapshotter"), fs, snapshot.AsynchronousRemove)
	if err != nil {
		log.G(ctx).WithError(err).Fatal("the snapshotter")
	}
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(snapshotter))
	_ = os.Remove(*address)
	listener, err := net.Listen("unix", *address)
	if err != nil {
		log.G(ctx).WithError(err).Fatal("the socket")
	}
	go func() {
		if err := server.Serve(listener); err != nil {
			log.G(ctx).WithError(err).Fatal("serving")
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	server.Stop()
	// Unmounts the layers' FUSE filesystems.
	if err := snapshotter.Close(); err != nil {
		log.G(ctx).WithError(err).Warn("closing the snapshotter")
	}
}
