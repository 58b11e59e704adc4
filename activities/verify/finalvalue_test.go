package verify

import (
	"encoding/json"
	"strings"
	"testing"
)

// flinkFinal is a final value as the split job's JSON format writes it:
// the sink table's columns in order, compact.
const flinkFinal = `{"run_id":"r1","seq":41,"logical_queue":"q-0041","produced_at":"2026-11-27T02:00:01.123456Z","correlation_id":"abc","sending_id":"s-41","batch_number":4}`

// finalVariants are values readFinalValue must read as encoding/json does,
// or leave to it.
func finalVariants() []string {
	out := []string{
		flinkFinal,
		" \n\t{ \"run_id\" : \"r1\" ,\r\n \"seq\":41 , \"batch_number\" : 4 ,\"sending_id\":\"s\",\"logical_queue\":\"q\",\"produced_at\":\"p\",\"correlation_id\":\"abc\" } \n",
		`{}`, `null`, `[]`, `""`, `41`, ``, ` `, `{`, `}`, `{"run_id":"r1"`, flinkFinal + `x`, flinkFinal + `{}`, flinkFinal + ` `,
		`{"run_id":"r1",}`, `{,"run_id":"r1"}`, `{"run_id" "r1"}`, `{"run_id":"r1""seq":1}`, `{"run_id":r1}`, `{'run_id':'r1'}`,
		`{"extra":"x"}`, `{"extra":{"seq":1}}`,
	}
	for _, field := range []string{"seq", "batch_number"} {
		for _, n := range []string{"0", "-0", "-1", "01", "-01", "1.0", "1e3", "1E3", "-", "--1", "+1", "0x10", `"41"`, "null", "true", "41x",
			"999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
			"123456789012345678901234567890", "1.5", "{}", "[]"} {
			out = append(out, strings.Replace(flinkFinal, `"`+field+`":`, `"`+field+`":`+n+`,"_`+field+`":`, 1))
		}
	}
	for _, field := range []string{"run_id", "logical_queue", "produced_at", "correlation_id", "sending_id"} {
		for _, v := range []string{`null`, `41`, `""`, `"a\"b"`, `"\u0061bc"`, `"\/"`, `"é"`, "\"\xff\"", "\"a\x01\"", `"\x"`, `"abc`, `true`, `[]`, `{"a":1}`} {
			out = append(out, strings.Replace(flinkFinal, `"`+field+`":`, `"`+field+`":`+v+`,"_`+field+`":`, 1))
		}
		// Repeated, and in other cases, which encoding/json also matches.
		out = append(out, strings.Replace(flinkFinal, `}`, `,"`+field+`":"other"}`, 1))
		out = append(out, strings.Replace(flinkFinal, `}`, `,"`+strings.ToUpper(field)+`":"other"}`, 1))
		out = append(out, strings.Replace(flinkFinal, `"`+field+`"`, `"`+strings.ToUpper(field[:1])+field[1:]+`"`, 1))
	}
	// Keys that encoding/json folds onto a field: "ſ" is "s", "K" is "k".
	out = append(out, strings.Replace(flinkFinal, `"seq":41`, `"ſeq":42,"seq":41`, 1),
		strings.Replace(flinkFinal, `"seq":41`, `"seq":41,"ſeq":42`, 1),
		strings.Replace(flinkFinal, `"seq":41`, `"s\u0065q":41`, 1),
		strings.Replace(flinkFinal, `"seq":41`, `"seq":41,"seq":-1`, 1))
	return out
}

// checkFinalAsEncodingJSON fails when readFinalValue takes value but reads
// it otherwise than encoding/json; what it refuses goes to encoding/json.
func checkFinalAsEncodingJSON(t *testing.T, value []byte) {
	t.Helper()
	want := finalValue{Seq: absentNumber, BatchNumber: absentNumber}
	wantErr := json.Unmarshal(value, &want)
	var got finalValue
	if !readFinalValue(value, &got) {
		return
	}
	if wantErr != nil || got != want {
		t.Errorf("value %q:\n got %+v\nwant %+v, %v", value, got, want, wantErr)
	}
}

func TestFinalValueIsReadAsEncodingJSONReadsIt(t *testing.T) {
	for _, value := range finalVariants() {
		checkFinalAsEncodingJSON(t, []byte(value))
	}
}

// The hand-written reader is only worth having if it takes what the split
// job writes; everything else costs what it did.
func TestFinalValueReaderTakesWhatTheSplitJobWrites(t *testing.T) {
	var v finalValue
	if !readFinalValue([]byte(flinkFinal), &v) {
		t.Fatalf("final value %s is left to encoding/json", flinkFinal)
	}
	if v.Seq != 41 || v.BatchNumber != 4 || v.SendingID != "s-41" {
		t.Fatalf("read %+v", v)
	}
	if rec := finalRecord("r", 7, 5); !readFinalValue(rec.Value, &v) {
		t.Fatalf("final value %s is left to encoding/json", rec.Value)
	}
}

func FuzzFinalValueAsEncodingJSON(f *testing.F) {
	for _, v := range finalVariants() {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		checkFinalAsEncodingJSON(t, value)
	})
}
