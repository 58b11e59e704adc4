package endpointapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMessageKeepsUnknownFieldsAndEncodesDeterministically(t *testing.T) {
	in := `{"zeta":[1,2],"correlation_id":"c-1","seq":42,"payload":{"amount":10},"logical_queue":"orders"}`
	var m Message
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if m.CorrelationID != "c-1" || m.Seq != 42 || m.LogicalQueue != "orders" || len(m.Extra) != 2 {
		t.Fatalf("decoded %+v", m)
	}
	want := `{"correlation_id":"c-1","seq":42,"logical_queue":"orders","payload":{"amount":10},"zeta":[1,2]}`
	for i := 0; i < 20; i++ { // map order must not leak into the bytes
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Fatalf("encoded %s, want %s", out, want)
		}
	}
}

func TestMessageRejectsBadFields(t *testing.T) {
	for _, in := range []string{`{"seq":"7"}`, `{"correlation_id":5}`, `null`, `[1]`} {
		var m Message
		if err := json.Unmarshal([]byte(in), &m); err == nil {
			t.Errorf("Unmarshal(%s) accepted it as %+v", in, m)
		}
	}
	_, err := json.Marshal(Message{CorrelationID: "c", Extra: map[string]json.RawMessage{"seq": json.RawMessage(`1`)}})
	if err == nil || !strings.Contains(err.Error(), "shadows") {
		t.Fatalf("Marshal with a shadowing extra field: %v", err)
	}
}
