package abi_test

import (
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

func readSpec(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSpecCoversEveryFunction checks that README.md documents each host
// function under a heading with its exact signature, and no function that
// does not exist.
func TestSpecCoversEveryFunction(t *testing.T) {
	spec := readSpec(t)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^### `([a-z_]+)\\((.*)\\) -> ([a-z0-9]+)`$").FindAllStringSubmatch(spec, -1) {
		documented[m[1]] = true
		f, ok := abi.FuncByName(m[1])
		if !ok {
			t.Errorf("the spec documents %s, which ABI v1 does not have", m[1])
			continue
		}
		if got := m[1] + "(" + m[2] + ") -> " + m[3]; got != f.Signature() {
			t.Errorf("spec says %s, abi says %s", got, f.Signature())
		}
	}
	for _, f := range abi.Funcs {
		if !documented[f.Name] {
			t.Errorf("the spec has no section for %s", f.Signature())
		}
	}
}

// TestSpecConstants checks the tables of codes and enums against package abi.
func TestSpecConstants(t *testing.T) {
	spec := readSpec(t)
	row := func(name string, value int64) {
		t.Helper()
		want := "`" + name + "` | " + strconv.FormatInt(value, 10) + " |"
		if !strings.Contains(spec, want) {
			t.Errorf("spec lacks the table row %q", want)
		}
	}
	for _, e := range []abi.Errno{abi.ErrNotFound, abi.ErrInvalid, abi.ErrPhase, abi.ErrTooLarge, abi.ErrUnavailable} {
		row(abi.ErrnoName(e), int64(e))
	}
	for name, v := range map[string]int32{
		"FieldMethod": abi.FieldMethod, "FieldScheme": abi.FieldScheme, "FieldHost": abi.FieldHost,
		"FieldPath": abi.FieldPath, "FieldRawQuery": abi.FieldRawQuery, "FieldProto": abi.FieldProto,
		"FieldClientAddr": abi.FieldClientAddr, "FieldRequestID": abi.FieldRequestID,
		"ActionContinue": abi.ActionContinue, "ActionAnswer": abi.ActionAnswer, "ActionFail": abi.ActionFail,
		"FeatureRequest": abi.FeatureRequest, "FeatureResponse": abi.FeatureResponse,
		"MsgRequest": abi.MsgRequest, "MsgResponse": abi.MsgResponse,
		"KeyRaw": abi.KeyRaw, "KeyPKIX": abi.KeyPKIX, "KeyJWK": abi.KeyJWK,
	} {
		row(name, int64(v))
	}
	for a := abi.AlgHS256; a <= abi.AlgEdDSA; a++ {
		row("Alg"+abi.AlgName(a), int64(a))
	}
	for _, export := range []string{abi.ExportVersionMarker, abi.ExportConfigure, abi.ExportOnRequest, abi.ExportOnResponse} {
		if !strings.Contains(spec, "| `"+export+"` |") {
			t.Errorf("spec lacks the export %s", export)
		}
	}
}

// TestWorkedValues recomputes the spec's worked byte layouts.
func TestWorkedValues(t *testing.T) {
	var info [abi.CacheInfoSize]byte
	abi.CacheInfo{AgeMs: 1500, TTLMs: 60000 - 1500}.Put(info[:])
	if got := binary.LittleEndian.Uint64(info[8:]); got != 58500 || info[0] != 0xdc || info[1] != 0x05 || info[8] != 0x84 || info[9] != 0xe4 {
		t.Fatalf("CacheInfo bytes % x", info)
	}
	if got := abi.AppendList(abi.AppendList(nil, []byte("one")), []byte("two")); string(got) != "one\x00two\x00" {
		t.Fatalf("list %q", got)
	}
	r := abi.RateResult{Remaining: 1, ResetMs: 100, RetryAfterMs: 0}
	var buf [abi.RateResultSize]byte
	r.Put(buf[:])
	if abi.ReadRateResult(buf[:]) != r {
		t.Fatal("RateResult round trip")
	}
}
