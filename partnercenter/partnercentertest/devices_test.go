package partnercentertest_test

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

var (
	guidPattern       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	serialPattern     = regexp.MustCompile(`^(5CG[0-9]{4}[A-Z]{3}|PF[0-9A-Z]{6})$`)
	productKeyPattern = regexp.MustCompile(`^[1-9][0-9]{12}$`)
)

func TestGenerateDevices(t *testing.T) {
	failures := map[string]int{"806": 30, "808": 12, "999": 2}
	devices := partnercentertest.GenerateDevices(1000, 42, failures)
	if len(devices) != 1000 {
		t.Fatalf("%d devices, want 1000", len(devices))
	}
	if again := partnercentertest.GenerateDevices(1000, 42, failures); !slices.Equal(devices, again) {
		t.Error("the same seed gave different devices")
	}
	if other := partnercentertest.GenerateDevices(1000, 43, failures); slices.Equal(devices, other) {
		t.Error("another seed gave the same devices")
	}

	perCode := map[string]int{}
	serials := map[string]bool{}
	styles := map[string]int{}
	for i, d := range devices {
		if !guidPattern.MatchString(d.DeviceID) || !serialPattern.MatchString(d.SerialNumber) || !productKeyPattern.MatchString(d.ProductKey) {
			t.Errorf("device %d is not realistic: %+v", i, d)
		}
		serials[d.SerialNumber] = true
		styles[d.SerialNumber[:2]]++
		switch {
		case d.ErrorCode == "" && d.Status == "finished" && d.ErrorDescription == "":
			perCode["none"]++
		case d.ErrorCode != "" && d.Status == "finished_with_errors" && d.ErrorDescription == partnercentertest.ErrorName(d.ErrorCode):
			perCode[d.ErrorCode]++
		default:
			t.Errorf("device %d has inconsistent status and error: %+v", i, d)
		}
	}
	if want := map[string]int{"none": 956, "806": 30, "808": 12, "999": 2}; fmt.Sprint(perCode) != fmt.Sprint(want) {
		t.Errorf("devices per error code %v, want %v", perCode, want)
	}
	if len(serials) != 1000 {
		t.Errorf("%d distinct serial numbers, want 1000", len(serials))
	}
	if styles["5C"] == 0 || styles["PF"] == 0 {
		t.Errorf("serial number styles %v, want both", styles)
	}
}

func TestGenerateDevicesEdgeCases(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		failures map[string]int
		want     map[string]int
	}{
		{"more failures than devices", 5, map[string]int{"808": 4, "806": 4}, map[string]int{"806": 4, "808": 1}},
		{"negative count", 3, map[string]int{"806": -2}, map[string]int{"": 3}},
		{"no failures", 2, nil, map[string]int{"": 2}},
		{"no devices", 0, map[string]int{"806": 1}, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices := partnercentertest.GenerateDevices(tt.n, 7, tt.failures)
			got := map[string]int{}
			for _, d := range devices {
				got[d.ErrorCode]++
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(devices) != max(tt.n, 0) {
				t.Errorf("%d devices per code %v, want %d %v", len(devices), got, tt.n, tt.want)
			}
		})
	}
}

func TestErrorName(t *testing.T) {
	want := map[string]string{
		"806": "ZtdDeviceAlreadyAssigned",
		"807": "ZtdDeviceIsNotRegistered",
		"808": "ZtdDeviceAssignedToOtherTenant",
	}
	for code, name := range want {
		if got := partnercentertest.ErrorName(code); got != name {
			t.Errorf("ErrorName(%s) = %q, want %q", code, got, name)
		}
	}
}
