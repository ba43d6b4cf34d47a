// Package deploy holds the tests of the Kubernetes deployment files: the
// Helm chart under helm/partnercenter-exporter is rendered with the Helm
// library and every object is decoded strictly into its API type.
//
// It is a module of its own so that the exporter's module, and so its
// Docker build, does not carry Helm and the Kubernetes API types.
package deploy
