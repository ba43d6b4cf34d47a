package deploy

import (
	"strings"
	"testing"
)

// TestStrictDecoding: what the API server refuses, the tests refuse, and
// encoding/json would have let through.
func TestStrictDecoding(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n"
	for name, tc := range map[string]struct{ doc, want string }{
		"duplicate key":  {svc + "  type: ClusterIP\n  type: NodePort\n", `"type" already set in map`},
		"miscased field": {svc + "  ports:\n    - port: 80\n      targetport: http\n", `unknown field "spec.ports[0].targetport"`},
		"unknown field":  {svc + "  portz: []\n", `unknown field "spec.portz"`},
		"unknown kind":   {"apiVersion: v1\nkind: Servic\nmetadata:\n  name: s\n", `unexpected kind "v1" "Servic"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeStrict(tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %s", err, tc.want)
			}
		})
	}
	if _, err := decodeStrict(svc + "  type: ClusterIP\n"); err != nil {
		t.Errorf("a valid Service: %v", err)
	}
}

// TestSplitDocuments: documents split as kubectl splits them, also on a
// separator with a comment after it or at the start; empty documents
// (comments only) are dropped.
func TestSplitDocuments(t *testing.T) {
	text := "---\n# only a comment\n---\na: 1\n--- # the second\nb: 2\n---\n\n"
	docs := splitDocuments(t, "test", text)
	if len(docs) != 2 || !strings.Contains(docs[0], "a: 1") || !strings.Contains(docs[1], "b: 2") {
		t.Errorf("documents %q, want a: 1 and b: 2", docs)
	}
}
