package deliver

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// Strings that encoding/json escapes, or that a hand-written encoder could
// get wrong: quotes, backslashes, every control character, DEL, the HTML
// characters, the JavaScript line separators, non-ASCII and invalid UTF-8.
func trickyStrings() []string {
	out := []string{"", "plain", `a"b`, `a\b`, `\"`, "<tag>&amp;", "a<b", "a>b", "a&b", "\u2028\u2029", "é", "日本語", "🚀",
		"\xff", "\x80", "a\xc3", "\xed\xa0\x80", "\x7f", "\u00a0", "\ufeff", "q-0041\x00"}
	for c := range 0x20 {
		out = append(out, fmt.Sprintf("x%cy", c))
	}
	return out
}

func trickyBatch(s string) *deliveryBatch {
	b := buildAll("r", 3, []record{{1, 5}, {1, 6}, {1, 7}})[0]
	b.id = s
	b.messages[0].CorrelationID = s
	b.messages[1].LogicalQueue = s
	b.messages[2].ProducedAt = s
	b.messages[2].Seq = -9_223_372_036_854_775_808
	return b
}

func TestBatchRequestBodyIsWhatEncodingJSONWrote(t *testing.T) {
	for _, s := range trickyStrings() {
		for _, runID := range []string{"run-1", "", s} {
			b := trickyBatch(s)
			want, err := batchRequestBodyReflect(runID, b)
			if err != nil {
				t.Fatal(err)
			}
			if got := batchRequestBody(runID, b); string(got) != string(want) {
				t.Errorf("string %q, run %q:\n got %s\nwant %s", s, runID, got, want)
			}
		}
	}
	empty := &deliveryBatch{id: "r-p0-o0-0", messages: []deliveryMessage{}}
	want, _ := batchRequestBodyReflect("r", empty)
	if got := batchRequestBody("r", empty); string(got) != string(want) {
		t.Errorf("empty batch:\n got %s\nwant %s", got, want)
	}
}

func TestResponseAndAcceptedValuesAreWhatEncodingJSONWrote(t *testing.T) {
	for _, s := range trickyStrings() {
		rec := responseRecord{RunID: s, BatchID: s + "-b", BatchNumber: -3, Messages: []responseMessage{
			{Seq: 0, LogicalQueue: s, CorrelationID: "c", SendingID: s, ProducedAt: "p"},
			{Seq: 1 << 62, LogicalQueue: "q", CorrelationID: s, SendingID: "s", ProducedAt: s},
		}}
		for _, messages := range [][]responseMessage{rec.Messages, {}, nil} {
			rec.Messages = messages
			want, err := responseRecordValueReflect(rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := responseRecordValue(rec); string(got) != string(want) {
				t.Errorf("response record with %q:\n got %s\nwant %s", s, got, want)
			}
		}
		for _, seqs := range [][]int64{{0, -1, 1 << 62, 7}, {}, nil} {
			for _, replayed := range []bool{false, true} {
				acc := activities.AcceptedBatch{BatchID: s, Segment: -2, Attempt: 1 << 30, Replayed: replayed, Seqs: seqs, AcceptedAtUnixMillis: 1_796_000_000_123}
				want, err := acceptedBatchValueReflect(acc)
				if err != nil {
					t.Fatal(err)
				}
				if got := acceptedBatchValue(acc); string(got) != string(want) {
					t.Errorf("accepted record with %q:\n got %s\nwant %s", s, got, want)
				}
			}
		}
	}
}

// The writers know each field by name: a field added to one of these types
// must be added to its writer (and to the tests above) too.
func TestWireTypesHaveTheFieldsTheWritersKnow(t *testing.T) {
	for _, c := range []struct {
		value  any
		fields int
	}{
		{endpointapi.BatchRequest{}, 3}, {endpointapi.Message{}, 4},
		{endpointapi.BatchResponse{}, 3}, {endpointapi.BatchResult{}, 3},
		{responseRecord{}, 4}, {responseMessage{}, 5},
		{activities.AcceptedBatch{}, 6}, {enrichedValue{}, 5},
	} {
		if n := reflect.TypeOf(c.value).NumField(); n != c.fields {
			t.Errorf("%T has %d fields; wirejson.go writes or reads %d", c.value, n, c.fields)
		}
	}
}

const goodEnriched = `{"run_id":"r1","seq":41,"logical_queue":"q-0041","produced_at":"2026-11-27T02:00:01.123456Z","payload":"xx","correlation_id":"abc"}`

// enrichedVariants are values the hand-written reader must read as
// encoding/json does, or leave to it.
func enrichedVariants() []string {
	out := []string{
		goodEnriched,
		" \n\t{ \"run_id\" : \"r1\" ,\r\n \"seq\":41 , \"logical_queue\":\"q-0041\",\"produced_at\":\"p\",\"correlation_id\":\"abc\" } \n",
		`{"correlation_id":"abc","produced_at":"p","logical_queue":"q","seq":41,"run_id":"r1"}`,
		`{}`, `null`, `[]`, `""`, `41`, ``, ` `, `{`, `}`, `{"run_id":"r1"`, goodEnriched + `x`, goodEnriched + `{}`, goodEnriched + ` `,
		`{"run_id":"r1",}`, `{,"run_id":"r1"}`, `{"run_id" "r1"}`, `{"run_id":"r1""seq":1}`, `{"run_id":r1}`, `{'run_id':'r1'}`,
	}
	for _, seq := range []string{"0", "-0", "-1", "01", "-01", "1.0", "1e3", "1E3", "-", "--1", "+1", "0x10", `"41"`, "null", "true", "41x",
		"999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"123456789012345678901234567890", "1.5", "{}", "[]"} {
		out = append(out, strings.Replace(goodEnriched, `"seq":41`, `"seq":`+seq, 1))
	}
	for _, field := range []string{"run_id", "logical_queue", "produced_at", "correlation_id"} {
		for _, v := range []string{`null`, `41`, `""`, `"a\"b"`, `"\u0061bc"`, `"\/"`, `"é"`, "\"\xff\"", "\"a\x01\"", `"\x"`, `"abc`, `true`, `[]`, `{"a":1}`} {
			out = append(out, strings.Replace(goodEnriched, `"`+field+`":`, `"`+field+`":`+v+`,"_`+field+`":`, 1))
		}
		// Repeated, and in other cases, which encoding/json also matches.
		out = append(out, strings.Replace(goodEnriched, `}`, `,"`+field+`":"other"}`, 1))
		out = append(out, strings.Replace(goodEnriched, `}`, `,"`+strings.ToUpper(field)+`":"other"}`, 1))
		out = append(out, strings.Replace(goodEnriched, `"`+field+`"`, `"`+strings.ToUpper(field[:1])+field[1:]+`"`, 1))
	}
	for _, v := range []string{`null`, `1.5e-3`, `-0.0`, `true`, `false`, `[1,2]`, `{"x":[{}]}`, `"\ud800"`, `"\n"`, `"é"`, "\"\xff\"", `tru`, `nul`, `01`} {
		out = append(out, strings.Replace(goodEnriched, `"payload":"xx"`, `"payload":`+v, 1))
		out = append(out, strings.Replace(goodEnriched, `"payload":"xx"`, `"é":`+v, 1))
	}
	// Keys that encoding/json folds onto a field: "ſ" is "s", "K" is "k".
	out = append(out, strings.Replace(goodEnriched, `"seq":41`, `"ſeq":42,"seq":41`, 1),
		strings.Replace(goodEnriched, `"seq":41`, `"seq":41,"ſeq":42`, 1),
		strings.Replace(goodEnriched, `"seq":41`, `"s\u0065q":41`, 1),
		strings.Replace(goodEnriched, `"seq":41`, `"seq":41,"seq":-1`, 1),
		strings.Replace(goodEnriched, `"payload"`, `"pay\"load"`, 1))
	return out
}

func checkEnrichedAsEncodingJSON(t *testing.T, value []byte, header *string) {
	t.Helper()
	r := enrichedRecord(string(value), header)
	want, wantErr := decodeEnrichedReflect(r, "r1")
	got, gotErr := newEnrichedDecoder("r1").decode(r)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || got != want {
		t.Errorf("value %q:\n got %+v, %v\nwant %+v, %v", value, got, gotErr, want, wantErr)
	}
}

func TestEnrichedDecoderReadsAndRefusesAsEncodingJSON(t *testing.T) {
	cid, other, empty := "abc", "abd", ""
	for _, value := range enrichedVariants() {
		for _, header := range []*string{&cid, &other, &empty, nil} {
			checkEnrichedAsEncodingJSON(t, []byte(value), header)
		}
	}
}

func TestEnrichedDecoderKeepsEachMessagesStrings(t *testing.T) {
	d := newEnrichedDecoder(benchRunID)
	records := benchEnrichedRecords(3 * stringArenaBlock / 60) // several arena blocks
	messages := make([]deliveryMessage, len(records))
	for i, r := range records {
		m, err := d.decode(r)
		if err != nil {
			t.Fatal(err)
		}
		messages[i] = m
		r.Value = []byte(strings.Repeat("!", len(r.Value))) // the fetch buffer is not kept
	}
	for i, r := range benchEnrichedRecords(len(records)) {
		if want, _ := decodeEnrichedReflect(r, benchRunID); messages[i] != want {
			t.Fatalf("message %d is %+v, want %+v", i, messages[i], want)
		}
	}
}

func answerVariants() []string {
	good := `{"batch_id":"r-p0-o0-1","batch_number":17,"results":[{"correlation_id":"c0","seq":0,"sending_id":"s-0"},{"correlation_id":"c1","seq":1,"sending_id":"s-1"}]}`
	out := []string{good, ` { "batch_id" : "b" , "results" : [ ] , "batch_number" : 1 } `, `{"results":[]}`, `{"results":null}`, `{}`, `null`, `[]`, ``,
		`{"batch_id":"b","results":[{}]}`, `{"results":[null]}`, `{"results":[{"seq":1},]}`, `{"results":[,]}`, `{"results":[{"seq":1}{"seq":2}]}`,
		`{"results":[{"seq":1,"sending_id":"a"}],"results":[{"seq":2}]}`, `{"results":{}}`, `{"batch_number":1.5}`, `{"batch_number":"1"}`,
		`{"BATCH_ID":"x","batch_id":"b"}`, `{"batch_id":"b","Batch_Id":"x"}`, `{"results":[{"Seq":3,"SEQ":4}]}`, `{"results":[{"ſeq":3}]}`,
		`{"results":[{"seq":1,"extra":[1],"sending_id":"s"}]}`, `{"results":[{"seq":1,"extra":true,"sending_id":"s"}]}`,
		`{"batch_id":"a\"b","results":[{"sending_id":"\u00e9"}]}`, `{"batch_id":"é","results":[{"sending_id":"日本"}]}`, "{\"batch_id\":\"\xff\"}",
		good + `,`, good[:len(good)-1], `{"error":"x","error_description":"y"}`}
	return out
}

func checkAnswerAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := decodeBatchAnswerReflect(body)
	got, gotErr := decodeBatchAnswer(body, &deliveryBatch{messages: make([]deliveryMessage, 2)})
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Errorf("answer %q:\n got %#v, %v\nwant %#v, %v", body, got, gotErr, want, wantErr)
	}
}

func TestBatchAnswerIsReadAsEncodingJSONReadsIt(t *testing.T) {
	for _, body := range answerVariants() {
		checkAnswerAsEncodingJSON(t, []byte(body))
	}
}

func FuzzEnrichedDecoderAsEncodingJSON(f *testing.F) {
	for _, v := range enrichedVariants() {
		f.Add([]byte(v), "abc")
	}
	f.Fuzz(func(t *testing.T, value []byte, header string) {
		checkEnrichedAsEncodingJSON(t, value, &header)
	})
}

func FuzzBatchAnswerAsEncodingJSON(f *testing.F) {
	for _, v := range answerVariants() {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAnswerAsEncodingJSON(t, body)
	})
}

func FuzzWireStringsAsEncodingJSON(f *testing.F) {
	for _, s := range trickyStrings() {
		f.Add(s, int64(7))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		b := trickyBatch(s)
		b.messages[1].Seq = n
		want, _ := batchRequestBodyReflect(s, b)
		if got := batchRequestBody(s, b); string(got) != string(want) {
			t.Errorf("batch body with %q:\n got %s\nwant %s", s, got, want)
		}
		rec := responseRecord{RunID: s, BatchID: s, BatchNumber: n, Messages: []responseMessage{{Seq: n, LogicalQueue: s, CorrelationID: s, SendingID: s, ProducedAt: s}}}
		want, _ = responseRecordValueReflect(rec)
		if got := responseRecordValue(rec); string(got) != string(want) {
			t.Errorf("response with %q:\n got %s\nwant %s", s, got, want)
		}
		acc := activities.AcceptedBatch{BatchID: s, Segment: int(n), Attempt: int32(n), Replayed: n%2 == 0, Seqs: []int64{n, -n}, AcceptedAtUnixMillis: n}
		want, _ = acceptedBatchValueReflect(acc)
		if got := acceptedBatchValue(acc); string(got) != string(want) {
			t.Errorf("accepted with %q:\n got %s\nwant %s", s, got, want)
		}
	})
}

// The hand-written readers are only worth having if they take what the
// enrich job and the endpoint write; everything else costs what it did.
func TestReadersTakeWhatThePipelineWrites(t *testing.T) {
	records := benchEnrichedRecords(benchBatchSize)
	for _, r := range records {
		if _, ok := readEnrichedFields(r.Value); !ok {
			t.Fatalf("enriched value %s is left to encoding/json", r.Value)
		}
	}
	batch := benchBatch(records)
	if _, ok := readBatchAnswer(benchAnswer(batch, 17), len(batch.messages)); !ok {
		t.Fatalf("endpoint answer %s is left to encoding/json", benchAnswer(batch, 17))
	}
}
