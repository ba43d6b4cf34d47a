package config

import (
	"os"
	"testing"
)

// TestMain clears the Azure Workload Identity webhook's variables, which
// applyEnvDefaults reads, so that the suite means the same inside a pod
// with a workload identity; tests that need them set them with t.Setenv.
func TestMain(m *testing.M) {
	for _, name := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
		_ = os.Unsetenv(name) // only fails for an invalid name
	}
	os.Exit(m.Run())
}
