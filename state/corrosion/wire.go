// Package corrosion speaks Corrosion's HTTP API (transactions, queries and
// subscriptions) as described in shared/design/corrosion-api.md. The same wire
// types are used by the client and by the embedded state server, so that
// ucd cannot tell one from the other.
package corrosion

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// Statement is one SQL statement with either positional or named parameters.
// Named parameter keys carry their sigil (":id", "@id" or "$id").
type Statement struct {
	Query       string
	Params      []any
	NamedParams map[string]any
}

// Stmt builds a statement with positional parameters.
func Stmt(query string, params ...any) Statement {
	return Statement{Query: query, Params: params}
}

// MarshalJSON always uses the object form, which every Corrosion build accepts.
func (s Statement) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"query":`)
	q, err := json.Marshal(s.Query)
	if err != nil {
		return nil, err
	}
	buf.Write(q)
	switch {
	case s.Params != nil:
		buf.WriteString(`,"params":[`)
		for i, p := range s.Params {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeParam(&buf, p); err != nil {
				return nil, fmt.Errorf("param %d: %w", i+1, err)
			}
		}
		buf.WriteByte(']')
	case s.NamedParams != nil:
		buf.WriteString(`,"named_params":{`)
		first := true
		for _, k := range slices.Sorted(maps.Keys(s.NamedParams)) {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeParam(&buf, s.NamedParams[k]); err != nil {
				return nil, fmt.Errorf("param %s: %w", k, err)
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// writeParam encodes a Go value as Corrosion binds it: []byte as an array of
// byte values (not base64), floats always with a '.' or an exponent so that
// they bind as REAL, and json.RawMessage as the raw JSON it holds.
func writeParam(buf *bytes.Buffer, p any) error {
	switch v := p.(type) {
	case nil:
		buf.WriteString("null")
	case []byte:
		writeBlob(buf, v)
	case float64:
		writeReal(buf, v)
	case float32:
		writeReal(buf, float64(v))
	case json.RawMessage:
		buf.Write(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}

func writeBlob(buf *bytes.Buffer, b []byte) {
	buf.WriteByte('[')
	for i, c := range b {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(strconv.Itoa(int(c)))
	}
	buf.WriteByte(']')
}

// writeReal writes a float that always contains '.' or an exponent; NaN and
// infinities become null, as Corrosion writes them.
func writeReal(buf *bytes.Buffer, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		buf.WriteString("null")
		return
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		s += ".0"
	}
	buf.WriteString(s)
}

// UnmarshalJSON accepts the four statement forms Corrosion accepts, in its
// order: object, bare string, [query, [params]] and [query, {named}].
func (s *Statement) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*s = Statement{}
	switch {
	case len(b) > 0 && b[0] == '{':
		var obj struct {
			Query       string                     `json:"query"`
			Params      []json.RawMessage          `json:"params"`
			NamedParams map[string]json.RawMessage `json:"named_params"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		s.Query = obj.Query
		return s.setParams(obj.Params, obj.NamedParams)
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &s.Query)
	case len(b) > 0 && b[0] == '[':
		var tuple []json.RawMessage
		if err := json.Unmarshal(b, &tuple); err != nil {
			return err
		}
		if len(tuple) != 2 {
			return fmt.Errorf("statement tuple must have 2 elements, got %d", len(tuple))
		}
		if err := json.Unmarshal(tuple[0], &s.Query); err != nil {
			return err
		}
		var pos []json.RawMessage
		if err := json.Unmarshal(tuple[1], &pos); err == nil {
			return s.setParams(pos, nil)
		}
		var named map[string]json.RawMessage
		if err := json.Unmarshal(tuple[1], &named); err != nil {
			return fmt.Errorf("statement params must be an array or an object")
		}
		return s.setParams(nil, named)
	}
	return fmt.Errorf("statement must be an object, a string or an array")
}

func (s *Statement) setParams(pos []json.RawMessage, named map[string]json.RawMessage) error {
	if pos != nil {
		s.Params = make([]any, len(pos))
		for i, raw := range pos {
			s.Params[i] = DecodeParam(raw)
		}
		return nil
	}
	if named != nil {
		s.NamedParams = make(map[string]any, len(named))
		for k, raw := range named {
			s.NamedParams[k] = DecodeParam(raw)
		}
	}
	return nil
}

// DecodeParam turns one JSON parameter into the Go value SQLite binds, by
// Corrosion's SqliteParam rules: bool → 0/1, integers within int64 →
// int64, other numbers → float64, arrays of 0–255 → []byte, strings →
// string, and any other JSON → its raw text.
func DecodeParam(raw json.RawMessage) any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case 'n':
		return nil
	case 't':
		return int64(1)
	case 'f':
		return int64(0)
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '[':
		if b, ok := decodeBlob(raw); ok {
			return b
		}
	default:
		if string(raw) == "-0" {
			return math.Copysign(0, -1) // serde_json reads -0 as a float, not as 0
		}
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return f
		}
	}
	return string(raw)
}

func decodeBlob(raw json.RawMessage) ([]byte, bool) {
	var nums []json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&nums); err != nil {
		return nil, false
	}
	out := make([]byte, len(nums))
	for i, n := range nums {
		v, err := strconv.ParseUint(n.String(), 10, 8)
		if err != nil {
			return nil, false
		}
		out[i] = byte(v)
	}
	return out, true
}

// ExecResult is the body of POST /v1/transactions.
type ExecResult struct {
	Results []StatementResult `json:"results"`
	Time    float64           `json:"time"`
	// Version is the node's db_version for the commit; nil when no
	// replicated row changed.
	Version *int64 `json:"version"`
	ActorID string `json:"actor_id"`
}

// StatementResult is one entry of ExecResult.Results.
type StatementResult struct {
	RowsAffected int64   `json:"rows_affected"`
	Time         float64 `json:"time"`
	Error        string  `json:"error,omitempty"`
}

// MarshalJSON writes either the success or the error shape, never both.
func (r StatementResult) MarshalJSON() ([]byte, error) {
	if r.Error != "" {
		return json.Marshal(struct {
			Error string `json:"error"`
		}{r.Error})
	}
	var buf bytes.Buffer
	buf.WriteString(`{"rows_affected":`)
	buf.WriteString(strconv.FormatInt(r.RowsAffected, 10))
	buf.WriteString(`,"time":`)
	writeReal(&buf, r.Time)
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
