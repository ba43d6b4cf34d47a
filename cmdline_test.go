package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestShippedCommandLines checks with the program's own parser that the
// arguments the image (Dockerfile CMD) and the Compose example give the
// exporter are ones it accepts and mean what they say. The rest of those
// files is checked by the e2e module (TestDockerfileFinalStage,
// TestExampleCompose), which cannot call parseFlags.
func TestShippedCommandLines(t *testing.T) {
	t.Run("Dockerfile CMD", func(t *testing.T) {
		data, err := os.ReadFile("Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		// The last CMD is the final stage's, in exec form on one line.
		var cmdLine string
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "CMD "); ok {
				cmdLine = rest
			}
		}
		var cmd []string
		if err := json.Unmarshal([]byte(cmdLine), &cmd); err != nil {
			t.Fatalf("CMD %q is not in exec form: %v", cmdLine, err)
		}
		f, err := parseFlags(cmd, io.Discard, io.Discard)
		if err != nil || f.configFile != "/etc/partnercenter_exporter/partnercenter.yml" {
			t.Errorf("CMD does not parse: config file %v, error %v", f, err)
		}
	})
	t.Run("Compose exporter command", func(t *testing.T) {
		data, err := os.ReadFile("examples/docker-compose.yml")
		if err != nil {
			t.Fatal(err)
		}
		var compose struct {
			Services map[string]struct {
				Command []string `yaml:"command"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal(data, &compose); err != nil {
			t.Fatal(err)
		}
		command := compose.Services["exporter"].Command
		f, err := parseFlags(command, io.Discard, io.Discard)
		if err != nil || !f.demo {
			t.Errorf("exporter command %v: demo %v, error %v", command, f != nil && f.demo, err)
		}
	})
}
