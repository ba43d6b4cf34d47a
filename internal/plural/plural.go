// Package plural words a count of things for logs and pages.
package plural

import "strconv"

// Count returns n with the singular or plural noun: "1 batch", "3 batches",
// "0 batches".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
