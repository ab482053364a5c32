// Package deploy holds what runs Switchboard beyond `make run`, and the
// tests that check it without a Docker engine, a cluster or a network:
//
//   - ../docker-compose.yml and the services' Dockerfiles: Redis, auth,
//     cache, gateway replicas behind HAProxy (haproxy/), and Prometheus
//     (prometheus/) and Grafana (grafana/) under the "monitoring" profile;
//   - k8s/: Kubernetes manifests, applied with `kubectl apply -k deploy/k8s`.
//
// Roles in the tests:
//   - Service source: the Go files of services/<name> and libs, scanned for
//     the environment variables a service reads (calls on a config.Env) and
//     the metric names it can export.
//   - Compose project: the compose file as compose-go loads and validates it.
//   - promtool: Prometheus's own checker, run on the scrape configuration,
//     the alert rules and the rules' unit tests.
//   - Manifest: one Kubernetes object, decoded strictly into its k8s.io/api
//     type, so that a misspelt field fails instead of being dropped.
//   - make run: run-local.sh, run as a terminal runs a foreground job (a
//     process group of its own) on the binaries libs/proctest builds and on
//     free ports, then stopped with SIGINT to the group, as Ctrl-C does.
//
// The package has no code outside its tests; this file documents it.
package deploy
