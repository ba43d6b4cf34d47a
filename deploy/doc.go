// Package deploy holds the tests of the Kubernetes deployment files: the
// Helm chart under helm/partnercenter-exporter is rendered with the Helm
// library for every values file under ci/, every object is decoded
// strictly and case-sensitively into its API type, the operator objects
// are validated against the Prometheus Operator's CRDs, the pods against
// Pod Security "restricted", and the references between the objects are
// followed.
//
// It is a module of its own so that the exporter's module, and so its
// Docker build, does not carry Helm and the Kubernetes API types.
package deploy
