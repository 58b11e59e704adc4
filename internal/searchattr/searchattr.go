// Package searchattr declares flowproof's custom Temporal search attributes
// once: the workflow upserts them through the typed keys, and the local dev
// server registers them from Definitions at start-up, so a rename cannot
// leave the two out of step.
package searchattr

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Names of the custom search attributes.
const (
	StageName        = "FlowproofStage"
	StatusName       = "FlowproofStatus"
	MessageCountName = "FlowproofMessageCount"
)

// Typed keys for workflow.UpsertTypedSearchAttributes and for visibility
// queries. Their values are the workflows package's constants, which this
// package cannot name without an import cycle.
var (
	// Stage is the stage a run is in: one of the workflows.Stage* constants,
	// "done" once it has ended.
	Stage = temporal.NewSearchAttributeKeyKeyword(StageName)
	// Status is "Running" until the run ends, then its workflows.Status
	// (Succeeded or Failed).
	Status = temporal.NewSearchAttributeKeyKeyword(StatusName)
	// MessageCount is the run's message count when it starts, replaced by
	// the number of messages verified end to end once verification is done.
	MessageCount = temporal.NewSearchAttributeKeyInt64(MessageCountName)
)

// Definition is one custom search attribute as a server registers it.
type Definition struct {
	Name string
	// Type is the spelling the temporal CLI's --search-attribute flag takes
	// ("Keyword", "Int", ...).
	Type string
	// IndexedType is the same type as the operator API reports it.
	IndexedType enumspb.IndexedValueType
}

// Definitions lists every custom search attribute of flowproof.
func Definitions() []Definition {
	return []Definition{
		{Name: StageName, Type: "Keyword", IndexedType: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: StatusName, Type: "Keyword", IndexedType: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: MessageCountName, Type: "Int", IndexedType: enumspb.INDEXED_VALUE_TYPE_INT},
	}
}

// DevServerFlags renders Definitions as the temporal dev server's
// --search-attribute flags.
func DevServerFlags() []string {
	var flags []string
	for _, d := range Definitions() {
		flags = append(flags, "--search-attribute", d.Name+"="+d.Type)
	}
	return flags
}
