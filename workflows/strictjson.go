package workflows

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/flowproof/flowproof/internal/errtype"
)

// UnmarshalJSON decodes like encoding/json and also notes the first field
// that PipelineInput does not know, in the input or in its topics. Decoding
// itself does not fail on it: the workflow's Validate turns it into a
// non-retryable InvalidInput that names the field, which the UI, the
// temporal CLI, the starter and schedules all show the same way.
func (in *PipelineInput) UnmarshalJSON(data []byte) error {
	type plain PipelineInput // without this method, so no recursion
	var decoded plain
	if err := json.Unmarshal(data, &decoded); err != nil {
		return err
	}
	unknown, err := firstUnknownField(data, reflect.TypeFor[PipelineInput](), "")
	if err != nil {
		return err
	}
	*in = PipelineInput(decoded)
	in.unknownField = unknown
	return nil
}

// firstUnknownField returns the first key of the JSON object data (in
// sorted order, so the answer is stable) that no field of typ takes,
// descending into fields that are structs themselves. encoding/json matches
// keys to fields without regard to case, and so does this.
func firstUnknownField(data []byte, typ reflect.Type, prefix string) (string, error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal(data, &object); err != nil || object == nil {
		return "", nil // not an object (null): encoding/json has judged it already
	}
	keys := make([]string, 0, len(object))
	for key := range object {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		field, ok := jsonField(typ, key)
		if !ok {
			return prefix + key, nil
		}
		if field.Type.Kind() == reflect.Struct {
			nested, err := firstUnknownField(object[key], field.Type, prefix+key+".")
			if err != nil || nested != "" {
				return nested, err
			}
		}
	}
	return "", nil
}

// jsonField finds the exported field of typ that encoding/json fills from key.
func jsonField(typ reflect.Type, key string) (reflect.StructField, bool) {
	for i := range typ.NumField() {
		field := typ.Field(i)
		if !field.IsExported() {
			continue
		}
		name := jsonFieldName(field)
		if name != "-" && strings.EqualFold(name, key) {
			return field, true
		}
	}
	return reflect.StructField{}, false
}

// jsonFieldName is the key encoding/json writes for field.
func jsonFieldName(field reflect.StructField) string {
	name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
	if name == "" {
		return field.Name
	}
	return name
}

// CheckFields refuses an input decoded from JSON with a field that
// PipelineInput does not have; Validate runs it first.
func (in PipelineInput) CheckFields() error {
	if in.unknownField == "" {
		return nil
	}
	return unknownFieldError(in.unknownField)
}

// unknownFieldError says which field is unknown and, when one is close, which
// was probably meant.
func unknownFieldError(field string) error {
	hint := ""
	if guess := closestInputField(field); guess != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", guess)
	}
	return errtype.InvalidInputf("unknown field %q%s: PipelineInput has no such field (docs/running.md lists them)", field, hint)
}

// closestInputField is the known field, top level, under topics or under
// thresholds, within two edits of field; "" when none is that close.
func closestInputField(field string) string {
	var candidates []string
	collect := func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				candidates = append(candidates, prefix+jsonFieldName(f))
			}
		}
	}
	collect(reflect.TypeFor[PipelineInput](), "")
	collect(reflect.TypeFor[TopicNames](), "topics.")
	collect(reflect.TypeFor[Thresholds](), "thresholds.")
	best, bestDistance := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(field), c); d < bestDistance {
			best, bestDistance = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			substitution := previous[j-1]
			if a[i-1] != b[j-1] {
				substitution++
			}
			current[j] = min(previous[j]+1, current[j-1]+1, substitution)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
