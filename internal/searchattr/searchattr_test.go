package searchattr

import (
	"errors"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

func TestCompareNamesMissingAndConflicting(t *testing.T) {
	registered := map[string]enumspb.IndexedValueType{
		StageName:        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		MessageCountName: enumspb.INDEXED_VALUE_TYPE_TEXT,
		"SomeoneElses":   enumspb.INDEXED_VALUE_TYPE_INT,
	}
	missing, conflicts := Compare(registered)
	if len(missing) != 2 || missing[0].Name != StatusName || missing[1].Name != InputHashName {
		t.Errorf("missing = %+v, want %s and %s", missing, StatusName, InputHashName)
	}
	if len(conflicts) != 1 || conflicts[0].Name != MessageCountName || conflicts[0].Registered != enumspb.INDEXED_VALUE_TYPE_TEXT {
		t.Errorf("conflicts = %+v, want %s as Text", conflicts, MessageCountName)
	}
	var err error = &MissingError{Namespace: "flowproof", Missing: missing, Conflicts: conflicts}
	for _, want := range []string{"namespace flowproof lacks", StatusName + " (Keyword)", MessageCountName + " as Text, flowproof needs Int"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var missingErr *MissingError
	if !errors.As(err, &missingErr) {
		t.Error("not a *MissingError")
	}

	all := map[string]enumspb.IndexedValueType{}
	for _, d := range Definitions() {
		all[d.Name] = d.IndexedType
	}
	if missing, conflicts := Compare(all); len(missing) != 0 || len(conflicts) != 0 {
		t.Errorf("all registered: missing %v, conflicts %v", missing, conflicts)
	}
}

// The commands must be what the temporal CLI accepts: one --type per
// command, so one command per type, every name once.
func TestCreateCommandsGroupByType(t *testing.T) {
	got := CreateCommands("flowproof", Definitions())
	want := []string{
		"temporal operator search-attribute create --namespace flowproof --name FlowproofStage --name FlowproofStatus --name FlowproofInputHash --type Keyword",
		"temporal operator search-attribute create --namespace flowproof --name FlowproofMessageCount --type Int",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
