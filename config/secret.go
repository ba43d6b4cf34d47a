package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redactedSecret replaces a secret's value wherever it is printed.
const redactedSecret = "<secret>"

// Secret is a string that hides its value from every way of printing it:
// fmt (all verbs), log/slog, YAML, JSON and encoding.TextMarshaler users all
// get "<secret>". An empty Secret prints as "" so that a display of the
// configuration shows that the key is unset. Reveal is the only way to get
// the value back.
type Secret string

// Reveal returns the secret's value. Call it only where the value is sent
// to the token endpoint.
func (s Secret) Reveal() string {
	return string(s)
}

func (s Secret) redacted() string {
	if s == "" {
		return ""
	}
	return redactedSecret
}

// String implements fmt.Stringer.
func (s Secret) String() string {
	return s.redacted()
}

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string {
	return s.redacted()
}

// Format implements fmt.Formatter, so that no verb (%x, %d, %#v, ...) can
// reach the underlying string. %q quotes the redacted text; every other verb
// prints it as %s would, keeping width and alignment flags.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb != 'q' {
		verb = 's'
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.redacted())
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.redacted())
}

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) {
	return s.redacted(), nil
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.redacted())
}

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(s.redacted()), nil
}
