package guid

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	const id = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{name: "lower case", s: id, want: true},
		{name: "upper case", s: strings.ToUpper(id), want: true},
		{name: "mixed case", s: "0B1c2D3e-4f50-4A6b-8c7d-9E0f1a2b3c4d", want: true},
		{name: "not version 4", s: "00000000-0000-0000-0000-000000000000", want: true},
		{name: "empty", s: "", want: false},
		{name: "short", s: "12ab", want: false},
		{name: "one digit more", s: id + "0", want: false},
		{name: "one digit less", s: id[:35], want: false},
		{name: "not hex", s: id[:35] + "g", want: false},
		{name: "underscore for a dash", s: "0b1c2d3e_4f50-4a6b-8c7d-9e0f1a2b3c4d", want: false},
		{name: "trailing newline", s: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4\n", want: false},
		{name: "braces", s: "{" + id[1:35] + "}", want: false},
		{name: "dash moved", s: "0b1c2d3e-4f50-4a6b-8c7d9-e0f1a2b3c4d", want: false},
		{name: "no dashes", s: strings.ReplaceAll(id, "-", "") + "0000", want: false},
		{name: "non-ASCII bytes", s: "ÿÿÿÿ-4f50-4a6b-8c7d-9e0f1a2b3c4d", want: false},
		{name: "full-width digit", s: "０b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c", want: false},
	} {
		if got := Valid(tc.s); got != tc.want {
			t.Errorf("%s: Valid(%q) = %v, want %v", tc.name, tc.s, got, tc.want)
		}
	}
}
