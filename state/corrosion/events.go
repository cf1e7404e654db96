package corrosion

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// EventKind tells which QueryEvent variant an Event holds.
type EventKind int

const (
	EventColumns EventKind = iota + 1
	EventRow
	EventEOQ
	EventChange
	EventError
)

// ChangeType is the kind of a subscription change.
type ChangeType string

const (
	ChangeInsert ChangeType = "insert"
	ChangeUpdate ChangeType = "update"
	ChangeDelete ChangeType = "delete"
)

// Event is one NDJSON line of a query or subscription stream. Values hold
// nil, int64, float64, string or []byte, as SQLite stored them.
type Event struct {
	Kind    EventKind
	Columns []string
	RowID   int64
	Values  []any
	Change  ChangeType
	// ChangeID is set on change events and on a subscription's eoq
	// (HasChangeID tells the latter apart from a plain query's eoq).
	ChangeID    uint64
	HasChangeID bool
	Time        float64
	Error       string
}

// MarshalJSON writes the externally tagged, snake_case form Corrosion uses.
func (e Event) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	switch e.Kind {
	case EventColumns:
		cols, err := json.Marshal(e.Columns)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`{"columns":`)
		buf.Write(cols)
	case EventRow:
		fmt.Fprintf(&buf, `{"row":[%d,`, e.RowID)
		if err := writeValues(&buf, e.Values); err != nil {
			return nil, err
		}
		buf.WriteByte(']')
	case EventEOQ:
		buf.WriteString(`{"eoq":{"time":`)
		writeReal(&buf, e.Time)
		if e.HasChangeID {
			fmt.Fprintf(&buf, `,"change_id":%d`, e.ChangeID)
		}
		buf.WriteByte('}')
	case EventChange:
		fmt.Fprintf(&buf, `{"change":[%q,%d,`, e.Change, e.RowID)
		if err := writeValues(&buf, e.Values); err != nil {
			return nil, err
		}
		fmt.Fprintf(&buf, `,%d]`, e.ChangeID)
	case EventError:
		msg, _ := json.Marshal(e.Error)
		buf.WriteString(`{"error":`)
		buf.Write(msg)
	default:
		return nil, fmt.Errorf("unknown event kind %d", e.Kind)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeValues(buf *bytes.Buffer, vals []any) error {
	buf.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeValue(buf, v); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

// writeValue encodes one SQLite value as Corrosion's SqliteValue.
func writeValue(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		writeReal(buf, x)
	case string:
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		buf.Write(b)
	case []byte:
		writeBlob(buf, x)
	case bool:
		if x {
			buf.WriteByte('1')
		} else {
			buf.WriteByte('0')
		}
	default:
		return fmt.Errorf("unsupported sqlite value %T", v)
	}
	return nil
}

// UnmarshalJSON decodes one stream line. Integers keep their full int64
// range and blobs arrive as byte arrays.
func (e *Event) UnmarshalJSON(b []byte) error {
	var tagged map[string]json.RawMessage
	if err := json.Unmarshal(b, &tagged); err != nil {
		return err
	}
	if len(tagged) != 1 {
		return fmt.Errorf("event must have exactly one key: %s", b)
	}
	*e = Event{}
	for tag, raw := range tagged {
		return e.decode(tag, raw)
	}
	return nil
}

func (e *Event) decode(tag string, raw json.RawMessage) error {
	switch tag {
	case "columns":
		e.Kind = EventColumns
		return json.Unmarshal(raw, &e.Columns)
	case "row":
		e.Kind = EventRow
		var parts []json.RawMessage
		if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 2 {
			return fmt.Errorf("malformed row event: %s", raw)
		}
		if err := json.Unmarshal(parts[0], &e.RowID); err != nil {
			return fmt.Errorf("row id: %w", err)
		}
		return decodeValues(parts[1], &e.Values)
	case "eoq":
		e.Kind = EventEOQ
		var eoq struct {
			Time     float64 `json:"time"`
			ChangeID *uint64 `json:"change_id"`
		}
		if err := json.Unmarshal(raw, &eoq); err != nil {
			return err
		}
		e.Time = eoq.Time
		if eoq.ChangeID != nil {
			e.ChangeID, e.HasChangeID = *eoq.ChangeID, true
		}
		return nil
	case "change":
		return e.decodeChange(raw)
	case "error":
		e.Kind = EventError
		return json.Unmarshal(raw, &e.Error)
	}
	return fmt.Errorf("unknown event %q", tag)
}

func (e *Event) decodeChange(raw json.RawMessage) error {
	e.Kind = EventChange
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 4 {
		return fmt.Errorf("malformed change event: %s", raw)
	}
	if err := json.Unmarshal(parts[0], &e.Change); err != nil {
		return fmt.Errorf("change type: %w", err)
	}
	switch e.Change {
	case ChangeInsert, ChangeUpdate, ChangeDelete:
	default:
		return fmt.Errorf("unknown change type %q", e.Change)
	}
	if err := json.Unmarshal(parts[1], &e.RowID); err != nil {
		return fmt.Errorf("change row id: %w", err)
	}
	if err := decodeValues(parts[2], &e.Values); err != nil {
		return err
	}
	e.HasChangeID = true
	return json.Unmarshal(parts[3], &e.ChangeID)
}

func decodeValues(raw json.RawMessage, out *[]any) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	vals := make([]any, len(items))
	for i, item := range items {
		v, err := DecodeValue(item)
		if err != nil {
			return fmt.Errorf("value %d: %w", i, err)
		}
		vals[i] = v
	}
	*out = vals
	return nil
}

// DecodeValue decodes one SqliteValue: a number with '.' or an exponent is
// REAL (float64), any other number INTEGER (int64), an array a BLOB.
func DecodeValue(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch raw[0] {
	case 'n':
		return nil, nil
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '[':
		b, ok := decodeBlob(raw)
		if !ok {
			return nil, fmt.Errorf("blob is not an array of bytes: %s", raw)
		}
		return b, nil
	case 't':
		return int64(1), nil
	case 'f':
		return int64(0), nil
	}
	if bytes.ContainsAny(raw, ".eE") {
		return strconv.ParseFloat(string(raw), 64)
	}
	return strconv.ParseInt(string(raw), 10, 64)
}

// AsString reads a TEXT (or BLOB) value; NULL reads as "".
func AsString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// AsInt reads an INTEGER value; NULL and text read as 0.
func AsInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}
