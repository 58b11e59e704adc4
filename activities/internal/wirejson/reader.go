// Package wirejson reads JSON values of the shapes the pipeline itself
// writes, without reflection and without allocating. encoding/json's
// reflection and allocations were a fifth of the worker's delivery CPU and
// most of verification's (docs/performance.md).
//
// A Reader takes compact or spaced JSON, members in any order and unknown
// members of plain values, and gives up on anything else: escapes, null,
// nested values in unknown members, a key that matches a field only in
// another case, numbers that are not plain integers. Its callers hand
// whatever it gives up on to encoding/json, so every value is read, or
// refused with the same error, as encoding/json would.
package wirejson

import (
	"strings"
	"unicode/utf8"
)

// Reader reads one JSON value. Any method that returns false leaves the
// reader failed: the caller hands the value to encoding/json.
type Reader struct {
	data []byte
	pos  int
}

// NewReader reads data.
func NewReader(data []byte) *Reader { return &Reader{data: data} }

func (r *Reader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// Consume reads the byte c, after any whitespace.
func (r *Reader) Consume(c byte) bool {
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == c {
		r.pos++
		return true
	}
	return false
}

// AtEnd reports whether only whitespace is left.
func (r *Reader) AtEnd() bool {
	r.skipSpace()
	return r.pos == len(r.data)
}

// PlainString reads a string without escapes and of valid UTF-8, whose
// bytes are then its value, and returns its span in the data.
func (r *Reader) PlainString() (start, end int, ok bool) {
	if !r.Consume('"') {
		return 0, 0, false
	}
	start = r.pos
	ascii := true
	for i := start; i < len(r.data); i++ {
		switch c := r.data[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(r.data[start:i]) {
				return 0, 0, false
			}
			r.pos = i + 1
			return start, i, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

// PlainBytes is PlainString's value, a slice of the data.
func (r *Reader) PlainBytes() ([]byte, bool) {
	start, end, ok := r.PlainString()
	return r.data[start:end], ok
}

// Integer reads an integer literal of at most 18 digits (so it cannot
// overflow an int64), not followed by a fraction or an exponent.
func (r *Reader) Integer() (int64, bool) {
	r.skipSpace()
	i, negative := r.pos, false
	if i < len(r.data) && r.data[i] == '-' {
		negative = true
		i++
	}
	digits := i
	var n int64
	for ; i < len(r.data) && r.data[i] >= '0' && r.data[i] <= '9'; i++ {
		n = n*10 + int64(r.data[i]-'0')
	}
	count := i - digits
	if count == 0 || count > 18 || (count > 1 && r.data[digits] == '0') {
		return 0, false
	}
	if i < len(r.data) && (r.data[i] == '.' || r.data[i] == 'e' || r.data[i] == 'E') {
		return 0, false
	}
	r.pos = i
	if negative {
		n = -n
	}
	return n, true
}

// skipValue reads a plain string, an integer, true or false.
func (r *Reader) skipValue() bool {
	r.skipSpace()
	if r.pos == len(r.data) {
		return false
	}
	switch c := r.data[r.pos]; {
	case c == '"':
		_, _, ok := r.PlainString()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := r.Integer()
		return ok
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	}
	return false
}

func (r *Reader) literal(word string) bool {
	if len(r.data)-r.pos < len(word) || string(r.data[r.pos:r.pos+len(word)]) != word {
		return false
	}
	r.pos += len(word)
	return true
}

// Object reads an object, calling member with each key and the reader at
// the member's value, which member must read. Keys are plain strings.
func (r *Reader) Object(member func(key []byte) bool) bool {
	if !r.Consume('{') {
		return false
	}
	if r.Consume('}') {
		return true
	}
	for {
		key, ok := r.PlainBytes()
		if !ok || !r.Consume(':') || !member(key) {
			return false
		}
		if r.Consume('}') {
			return true
		}
		if !r.Consume(',') {
			return false
		}
	}
}

// UnknownKey reads the value of a member whose key is none of fields. A key
// that equals a field but for case would be that field to encoding/json,
// which matches keys case-insensitively; so would some non-ASCII keys
// under Unicode folding, so those are left to it as well.
func (r *Reader) UnknownKey(key []byte, fields ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, f := range fields {
		if len(f) == len(key) && strings.EqualFold(string(key), f) {
			return false
		}
	}
	return r.skipValue()
}
