// Package searchattr declares flowproof's custom Temporal search attributes
// once: the workflow upserts them through the typed keys, the local dev
// server registers them from Definitions at start-up, `starter setup`
// registers them on any other cluster and the worker checks them at
// start-up, so a rename cannot leave these out of step.
package searchattr

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/temporal"
)

// Names of the custom search attributes.
const (
	StageName        = "FlowproofStage"
	StatusName       = "FlowproofStatus"
	MessageCountName = "FlowproofMessageCount"
	InputHashName    = "FlowproofInputHash"
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
	// InputHash names the run's input (workflows.InputHash): runs with the
	// same one measure the same thing, and compare takes its baseline
	// from them.
	InputHash = temporal.NewSearchAttributeKeyKeyword(InputHashName)
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
		{Name: InputHashName, Type: "Keyword", IndexedType: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
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

// Conflict is a flowproof attribute that a namespace has under another
// type; registering cannot change a type, so an operator must resolve it.
type Conflict struct {
	Definition
	Registered enumspb.IndexedValueType
}

// Compare judges a namespace's custom search attributes (name to type, as
// ListSearchAttributes reports them) against Definitions: which are
// missing, and which exist with another type.
func Compare(registered map[string]enumspb.IndexedValueType) (missing []Definition, conflicts []Conflict) {
	for _, d := range Definitions() {
		got, ok := registered[d.Name]
		switch {
		case !ok:
			missing = append(missing, d)
		case got != d.IndexedType:
			conflicts = append(conflicts, Conflict{Definition: d, Registered: got})
		}
	}
	return missing, conflicts
}

// MissingError is a namespace that lacks some of flowproof's search
// attributes, or has one under another type.
type MissingError struct {
	Namespace string
	Missing   []Definition
	Conflicts []Conflict
}

func (e *MissingError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("namespace %s lacks flowproof's search attributes %s", e.Namespace, describe(e.Missing)))
	}
	for _, c := range e.Conflicts {
		parts = append(parts, fmt.Sprintf("namespace %s has search attribute %s as %s, flowproof needs %s (a type cannot be changed: remove the attribute or use another namespace)",
			e.Namespace, c.Name, typeName(c.Registered), c.Type))
	}
	return strings.Join(parts, "; ")
}

func describe(defs []Definition) string {
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.Name+" ("+d.Type+")")
	}
	return strings.Join(names, ", ")
}

// typeName spells an indexed type as the temporal CLI does ("Keyword").
func typeName(t enumspb.IndexedValueType) string {
	for _, d := range Definitions() {
		if d.IndexedType == t {
			return d.Type
		}
	}
	return strings.TrimPrefix(t.String(), "INDEXED_VALUE_TYPE_")
}

// Check returns a *MissingError when namespace lacks any of flowproof's
// search attributes or has one under another type.
func Check(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string) error {
	registered, err := list(ctx, ops, namespace)
	if err != nil {
		return err
	}
	missing, conflicts := Compare(registered)
	if len(missing) > 0 || len(conflicts) > 0 {
		return &MissingError{Namespace: namespace, Missing: missing, Conflicts: conflicts}
	}
	return nil
}

// Register adds the attributes namespace lacks and returns them; present
// ones are left alone, so it can run any number of times. An attribute
// under another type is a *MissingError, which registering cannot fix.
func Register(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string) ([]Definition, error) {
	registered, err := list(ctx, ops, namespace)
	if err != nil {
		return nil, err
	}
	missing, conflicts := Compare(registered)
	if len(conflicts) > 0 {
		return nil, &MissingError{Namespace: namespace, Conflicts: conflicts}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	add := make(map[string]enumspb.IndexedValueType, len(missing))
	for _, d := range missing {
		add[d.Name] = d.IndexedType
	}
	if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: add}); err != nil {
		// Someone else may have added them meanwhile; only what is still
		// missing afterwards is a failure.
		if checkErr := Check(ctx, ops, namespace); checkErr == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("add search attributes %s to namespace %s: %w", describe(missing), namespace, err)
	}
	return missing, nil
}

func list(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string) (map[string]enumspb.IndexedValueType, error) {
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	return resp.GetCustomAttributes(), nil
}

// CreateCommands are the temporal CLI commands that register defs on
// namespace, for whoever holds the permission setup lacked. The CLI takes
// one type per command.
func CreateCommands(namespace string, defs []Definition) []string {
	var types []string
	names := map[string][]string{}
	for _, d := range defs {
		if _, ok := names[d.Type]; !ok {
			types = append(types, d.Type)
		}
		names[d.Type] = append(names[d.Type], "--name "+d.Name)
	}
	commands := make([]string, 0, len(types))
	for _, typ := range types {
		commands = append(commands, fmt.Sprintf("temporal operator search-attribute create --namespace %s %s --type %s", namespace, strings.Join(names[typ], " "), typ))
	}
	return commands
}
