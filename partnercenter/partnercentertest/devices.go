package partnercentertest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// ErrorName returns the name the service reports in errorDescription for
// a Windows Autopilot device registration error code (the REST reference's
// example pairs "808" with "ZtdDeviceAssignedToOtherTenant"), or "" for a
// code it does not know.
func ErrorName(code string) string {
	return errorNames[code]
}

// errorNames is read-only: ErrorName is its only reader.
var errorNames = map[string]string{
	"801": "InvalidZtdRequestBody",
	"802": "InvalidZtdHardwareHash",
	"803": "MissingZtdSerialNumberAndProductKey",
	"806": "ZtdDeviceAlreadyAssigned",
	"807": "ZtdDeviceIsNotRegistered",
	"808": "ZtdDeviceAssignedToOtherTenant",
	"809": "ZtdProfileIsNotRegistered",
	"810": "ZtdProfileAssignedToOtherTenant",
	"811": "ZtdDeviceRegisteredByOtherTenant",
	"812": "ZtdDeviceNotFound",
	"813": "ZtdDeviceIsNotUnique",
	"814": "ZtdDeviceAlreadyAadRegistered",
}

// Device statuses GenerateDevices uses.
const (
	statusFinished           = "finished"
	statusFinishedWithErrors = "finished_with_errors"
)

// pcgStream is the fixed second half of the PCG seed: GenerateDevices is
// seeded by its seed argument alone.
const pcgStream = 0x5043_4465_7669_6365 // "PCDevice"

const (
	digits        = "0123456789"
	upperLetters  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	upperAlphaNum = digits + upperLetters
)

// GenerateDevices returns n realistic devices, the same for the same
// seed: GUID device IDs, distinct serial numbers in two vendors' styles
// ("5CG1234ABC", "PF3XK2Q7") and 13-digit product keys. failures maps an
// error code to how many devices fail with it (status
// "finished_with_errors", description from ErrorName, "" for codes it
// does not know), spread over the list; the rest are "finished". When the
// failures add up to more than n, the codes in ascending order take the n
// places. n <= 0 gives nil.
func GenerateDevices(n int, seed int64, failures map[string]int) []Device {
	if n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), pcgStream))
	devices := make([]Device, n)
	seenSerials := make(map[string]struct{}, n)
	for i := range devices {
		devices[i] = Device{
			DeviceID:     randomGUID(rng),
			SerialNumber: uniqueSerial(rng, seenSerials),
			ProductKey:   randomProductKey(rng),
			Status:       statusFinished,
		}
	}
	codes := failureCodes(failures, n)
	for i, position := range rng.Perm(n)[:len(codes)] {
		d := &devices[position]
		d.Status = statusFinishedWithErrors
		d.ErrorCode = codes[i]
		d.ErrorDescription = ErrorName(codes[i])
	}
	return devices
}

// failureCodes lists one error code per failing device, codes in ascending
// order, at most limit in all.
func failureCodes(failures map[string]int, limit int) []string {
	var codes []string
	for _, code := range slices.Sorted(maps.Keys(failures)) {
		count := min(failures[code], limit-len(codes))
		for range count {
			codes = append(codes, code)
		}
	}
	return codes
}

// randomGUID returns a version 4 GUID in lower-case 8-4-4-4-12 form.
func randomGUID(rng *rand.Rand) string {
	hi, lo := rng.Uint64(), rng.Uint64()
	hi = hi&^0xF000 | 0x4000           // version 4
	lo = lo&^(0xC000<<48) | 0x8000<<48 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		hi>>32, hi>>16&0xFFFF, hi&0xFFFF, lo>>48, lo&0xFFFF_FFFF_FFFF)
}

// uniqueSerial draws serial numbers until one is new.
func uniqueSerial(rng *rand.Rand, seen map[string]struct{}) string {
	for {
		serial := randomSerial(rng)
		if _, dup := seen[serial]; !dup {
			seen[serial] = struct{}{}
			return serial
		}
	}
}

// randomSerial returns an HP-style ("5CG" + 4 digits + 3 letters) or a
// Lenovo-style ("PF" + 6 letters or digits) serial number.
func randomSerial(rng *rand.Rand) string {
	if rng.IntN(2) == 0 {
		return "5CG" + randomString(rng, digits, 4) + randomString(rng, upperLetters, 3)
	}
	return "PF" + randomString(rng, upperAlphaNum, 6)
}

// randomProductKey returns a 13-digit OEM product key ID without a
// leading zero.
func randomProductKey(rng *rand.Rand) string {
	return randomString(rng, digits[1:], 1) + randomString(rng, digits, 12)
}

func randomString(rng *rand.Rand, alphabet string, length int) string {
	var b strings.Builder
	b.Grow(length)
	for range length {
		b.WriteByte(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}
