package batchstate

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// TestTooLargeBodyLogNamesTheSetting: the client's error says the numbers
// only; the log line adds the configuration key that raises the cap.
func TestTooLargeBodyLogNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{
			name: "too large",
			err:  &partnercenter.Error{StatusCode: 200, Err: fmt.Errorf("%w: more than 65536 bytes", partnercenter.ErrResponseTooLarge)},
			want: `level=warn msg="reading batch failed" err="bad response: response body too large: more than 65536 bytes" http_status=200 error_code= request_id= correlation_id= setting=partner_center.max_response_size` + "\n",
		},
		{
			name: "other bad body",
			err:  &partnercenter.Error{StatusCode: 200, Err: fmt.Errorf("decode batch: unexpected EOF")},
			want: `level=warn msg="reading batch failed" err="bad response: decode batch: unexpected EOF" http_status=200 error_code= request_id= correlation_id=` + "\n",
		},
	} {
		var buf bytes.Buffer
		logOutcome(log.NewLogfmtLogger(&buf), BatchState{}, nil, tc.err)
		if got := buf.String(); got != tc.want {
			t.Errorf("%s: logged\n%s want\n%s", tc.name, strings.TrimSpace(got), strings.TrimSpace(tc.want))
		}
	}
}
