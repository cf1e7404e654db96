package corrosion

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestStatementUnmarshal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		json string
		want Statement
		err  bool
	}{
		{"object positional", `{"query":"SELECT ?","params":[1,"a",null]}`, Statement{Query: "SELECT ?", Params: []any{int64(1), "a", nil}}, false},
		{"object named", `{"query":"SELECT :a","named_params":{":a":1.5}}`, Statement{Query: "SELECT :a", NamedParams: map[string]any{":a": 1.5}}, false},
		{"object both: params win", `{"query":"q","params":[true],"named_params":{":a":1}}`, Statement{Query: "q", Params: []any{int64(1)}}, false},
		{"object query only", `{"query":"SELECT 1"}`, Statement{Query: "SELECT 1"}, false},
		{"object empty", `{}`, Statement{}, false},
		{"object empty params", `{"query":"q","params":[]}`, Statement{Query: "q", Params: []any{}}, false},
		{"object null params", `{"query":"q","params":null,"named_params":{"@x":"y"}}`, Statement{Query: "q", NamedParams: map[string]any{"@x": "y"}}, false},
		{"bare string", ` "SELECT 1" `, Statement{Query: "SELECT 1"}, false},
		{"tuple positional", `["SELECT ?, ?",[[1,2],false]]`, Statement{Query: "SELECT ?, ?", Params: []any{[]byte{1, 2}, int64(0)}}, false},
		{"tuple empty positional", `["SELECT 1",[]]`, Statement{Query: "SELECT 1", Params: []any{}}, false},
		{"tuple named", `["SELECT $a",{"$a":"x"}]`, Statement{Query: "SELECT $a", NamedParams: map[string]any{"$a": "x"}}, false},
		{"number", `1`, Statement{}, true},
		{"null", `null`, Statement{}, true},
		{"tuple of one", `["SELECT 1"]`, Statement{}, true},
		{"tuple of three", `["SELECT 1",[],1]`, Statement{}, true},
		{"tuple with a string", `["SELECT 1","x"]`, Statement{}, true},
		{"tuple query not a string", `[1,[]]`, Statement{}, true},
		{"object query not a string", `{"query":1}`, Statement{}, true},
	}
	for _, c := range cases {
		var got Statement
		err := json.Unmarshal([]byte(c.json), &got)
		if (err != nil) != c.err {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.err)
			continue
		}
		if !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
}

func TestStatementMarshal(t *testing.T) {
	t.Parallel()
	type custom struct {
		A int `json:"a"`
	}
	cases := []struct {
		name string
		stmt Statement
		want string
	}{
		{"no params", Stmt("SELECT 1"), `{"query":"SELECT 1"}`},
		{"empty params", Statement{Query: "q", Params: []any{}}, `{"query":"q","params":[]}`},
		{"scalars", Stmt("q", nil, true, false, 7, int64(math.MaxInt64), int64(math.MinInt64), "s\"x", uint64(math.MaxUint64)),
			`{"query":"q","params":[null,true,false,7,9223372036854775807,-9223372036854775808,"s\"x",18446744073709551615]}`},
		{"floats always real", Stmt("q", 1.0, 0.5, float32(2), 1e21, -0.0, 1e-7), `{"query":"q","params":[1.0,0.5,2.0,1e+21,0.0,1e-07]}`},
		{"non-finite floats are null", Stmt("q", math.NaN(), math.Inf(1), math.Inf(-1)), `{"query":"q","params":[null,null,null]}`},
		{"blobs are byte arrays", Stmt("q", []byte{0, 1, 255}, []byte{}), `{"query":"q","params":[[0,1,255],[]]}`},
		{"raw json", Stmt("q", json.RawMessage(`{"k":[1]}`)), `{"query":"q","params":[{"k":[1]}]}`},
		{"other json", Stmt("q", custom{A: 1}, []string{"x"}), `{"query":"q","params":[{"a":1},["x"]]}`},
		{"named sorted", Statement{Query: "q", NamedParams: map[string]any{":b": 2, ":a": []byte{3}, "@c": 1.0}}, `{"query":"q","named_params":{":a":[3],":b":2,"@c":1.0}}`},
		{"params win over named", Statement{Query: "q", Params: []any{1}, NamedParams: map[string]any{":a": 1}}, `{"query":"q","params":[1]}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.stmt)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: got %s, %v\nwant %s", c.name, b, err, c.want)
		}
	}
	if _, err := json.Marshal(Stmt("q", make(chan int))); err == nil {
		t.Errorf("an unencodable parameter was accepted")
	}
}

// TestStatementRoundTrip sends statements through JSON and back: what the
// server decodes is what SQLite should bind.
func TestStatementRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   Statement
		want Statement
	}{
		{Stmt("q", nil, true, 3, "s", 1.0, []byte{9}, []byte{}, uint64(math.MaxUint64)),
			Stmt("q", nil, int64(1), int64(3), "s", 1.0, []byte{9}, []byte{}, float64(math.MaxUint64))},
		{Statement{Query: "q", NamedParams: map[string]any{":a": int64(math.MaxInt64), "$b": map[string]int{"x": 1}}},
			Statement{Query: "q", NamedParams: map[string]any{":a": int64(math.MaxInt64), "$b": `{"x":1}`}}},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		var got Statement
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s decoded as %#v, want %#v", b, got, c.want)
		}
	}
}

func TestDecodeParam(t *testing.T) {
	t.Parallel()
	cases := []struct {
		json string
		want any
	}{
		{`null`, nil},
		{`true`, int64(1)},
		{`false`, int64(0)},
		{`0`, int64(0)},
		{`-0`, math.Copysign(0, -1)},
		{`42`, int64(42)},
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`9223372036854775808`, float64(9223372036854775808)},
		{`18446744073709551615`, float64(math.MaxUint64)},
		{`-9223372036854775809`, float64(-9223372036854775808)},
		{`1.0`, 1.0},
		{`1e3`, 1000.0},
		{`-2.5E-3`, -0.0025},
		{`"text"`, "text"},
		{`"with \"escapes\" \u00fc"`, `with "escapes" ü`},
		{`[1,2,255]`, []byte{1, 2, 255}},
		{`[]`, []byte{}},
		{` [ 0 , 7 ] `, []byte{0, 7}},
		{`[256]`, `[256]`},
		{`[-1]`, `[-1]`},
		{`[1.0]`, `[1.0]`},
		{`[1,"a"]`, `[1,"a"]`},
		{`[[1]]`, `[[1]]`},
		{`{"a": [1, 2]}`, `{"a": [1, 2]}`},
	}
	for _, c := range cases {
		got := DecodeParam(json.RawMessage(c.json))
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("DecodeParam(%s) = %#v, want %#v", c.json, got, c.want)
		}
		if f, ok := c.want.(float64); ok && f == 0 && math.Signbit(f) != math.Signbit(got.(float64)) {
			t.Errorf("DecodeParam(%s) lost the sign of zero", c.json)
		}
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		value any
		json  string
		back  any // decoded value, when it differs from value
	}{
		{"null", nil, `null`, nil},
		{"zero", int64(0), `0`, nil},
		{"max int", int64(math.MaxInt64), `9223372036854775807`, nil},
		{"min int", int64(math.MinInt64), `-9223372036854775808`, nil},
		{"integral real", 1.0, `1.0`, nil},
		{"negative zero", math.Copysign(0, -1), `-0.0`, nil},
		{"fraction", 0.1, `0.1`, nil},
		{"large real", 1e300, `1e+300`, nil},
		{"small real", 1e-7, `1e-07`, nil},
		{"2^53+", 9007199254740994.0, `9.007199254740994e+15`, nil},
		{"NaN", math.NaN(), `null`, "null"},
		{"+Inf", math.Inf(1), `null`, "null"},
		{"-Inf", math.Inf(-1), `null`, "null"},
		{"text", "a\"\n<ü>", `"a\"\n\u003cü\u003e"`, nil},
		{"empty text", "", `""`, nil},
		{"blob", []byte{1, 2}, `[1,2]`, nil},
		{"empty blob", []byte{}, `[]`, nil},
		{"nil blob", []byte(nil), `[]`, []byte{}},
		{"bool", true, `1`, int64(1)},
	}
	for _, c := range cases {
		ev := Event{Kind: EventRow, RowID: 1, Values: []any{c.value}}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := `{"row":[1,[` + c.json + `]]}`; string(b) != want {
			t.Errorf("%s: encoded %s, want %s", c.name, b, want)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%s: decode: %v", c.name, err)
			continue
		}
		want := c.value
		switch {
		case c.back == "null":
			want = nil
		case c.back != nil:
			want = c.back
		}
		if !reflect.DeepEqual(back.Values[0], want) {
			t.Errorf("%s: decoded %#v, want %#v", c.name, back.Values[0], want)
		}
	}
	if _, err := json.Marshal(Event{Kind: EventRow, Values: []any{struct{}{}}}); err == nil {
		t.Errorf("an unsupported value type was encoded")
	}
}

func TestDecodeValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		json string
		want any
		err  bool
	}{
		{`1`, int64(1), false},
		{`-1`, int64(-1), false},
		{`1.0`, 1.0, false},
		{`1e2`, 100.0, false},
		{`1E-2`, 0.01, false},
		{`"1"`, "1", false},
		{`[]`, []byte{}, false},
		{`[255]`, []byte{255}, false},
		{`9223372036854775808`, nil, true}, // not an INTEGER Corrosion can send
		{`[256]`, nil, true},
		{`[1.5]`, nil, true},
		{`{}`, nil, true},
		{``, nil, true},
	}
	for _, c := range cases {
		got, err := DecodeValue(json.RawMessage(c.json))
		if (err != nil) != c.err || !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("DecodeValue(%s) = %#v, %v; want %#v (error %v)", c.json, got, err, c.want, c.err)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ev   Event
		json string
	}{
		{"columns", Event{Kind: EventColumns, Columns: []string{"id", "na\"me"}}, `{"columns":["id","na\"me"]}`},
		{"no columns", Event{Kind: EventColumns, Columns: []string{}}, `{"columns":[]}`},
		{"row", Event{Kind: EventRow, RowID: 3, Values: []any{int64(1), "a", nil, 2.5, []byte{7}}}, `{"row":[3,[1,"a",null,2.5,[7]]]}`},
		{"eoq of a query", Event{Kind: EventEOQ, Time: 1e-7}, `{"eoq":{"time":1e-07}}`},
		{"eoq with change id 0", Event{Kind: EventEOQ, Time: 0.5, ChangeID: 0, HasChangeID: true}, `{"eoq":{"time":0.5,"change_id":0}}`},
		{"eoq with change id", Event{Kind: EventEOQ, Time: 0, ChangeID: 18446744073709551615, HasChangeID: true}, `{"eoq":{"time":0.0,"change_id":18446744073709551615}}`},
		{"insert", Event{Kind: EventChange, Change: ChangeInsert, RowID: 7, Values: []any{int64(1)}, ChangeID: 42, HasChangeID: true}, `{"change":["insert",7,[1],42]}`},
		{"update", Event{Kind: EventChange, Change: ChangeUpdate, RowID: 1, Values: []any{"x", 1.0}, ChangeID: 1, HasChangeID: true}, `{"change":["update",1,["x",1.0],1]}`},
		{"delete", Event{Kind: EventChange, Change: ChangeDelete, RowID: 2, Values: []any{}, ChangeID: 3, HasChangeID: true}, `{"change":["delete",2,[],3]}`},
		{"error", Event{Kind: EventError, Error: "boom \"x\""}, `{"error":"boom \"x\""}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.ev)
		if err != nil || string(b) != c.json {
			t.Errorf("%s: encoded %s, %v; want %s", c.name, b, err, c.json)
		}
		var back Event
		if err := json.Unmarshal([]byte(c.json), &back); err != nil {
			t.Errorf("%s: decode: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(back, c.ev) {
			t.Errorf("%s: decoded %#v, want %#v", c.name, back, c.ev)
		}
	}
	if _, err := json.Marshal(Event{}); err == nil {
		t.Errorf("an event without a kind was encoded")
	}
}

func TestEventDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{}`,
		`{"row":[1,[1]],"eoq":{}}`,
		`{"nope":1}`,
		`{"row":[1]}`,
		`{"row":["1",[1]]}`,
		// doc/api/subscriptions.md's order, which the code does not send.
		`{"change":["update",42,7,[1]]}`,
		`{"change":["upsert",1,[1],2]}`,
		`{"change":["insert",1,[1]]}`,
		`{"change":["insert",1,[1],-1]}`,
		`{"columns":"id"}`,
		`[]`,
	} {
		var ev Event
		if err := json.Unmarshal([]byte(in), &ev); err == nil {
			t.Errorf("%s decoded as %+v", in, ev)
		}
	}
}

// TestChangeTupleOrder checks the order the code (not the docs) uses:
// [type, rowid, values, change_id].
func TestChangeTupleOrder(t *testing.T) {
	t.Parallel()
	var ev Event
	if err := json.Unmarshal([]byte(`{"change":["update",7,[1,"a"],42]}`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Change != ChangeUpdate || ev.RowID != 7 || ev.ChangeID != 42 || !reflect.DeepEqual(ev.Values, []any{int64(1), "a"}) {
		t.Errorf("decoded %+v", ev)
	}
}

func TestStatementResultJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		r    StatementResult
		want string
	}{
		{StatementResult{RowsAffected: 2, Time: 0}, `{"rows_affected":2,"time":0.0}`},
		{StatementResult{RowsAffected: 0, Time: 2.7e-5}, `{"rows_affected":0,"time":2.7e-05}`},
		{StatementResult{Error: "x", RowsAffected: 5}, `{"error":"x"}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.r)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v: %s, %v; want %s", c.r, b, err, c.want)
		}
	}
	var res ExecResult
	body := `{"results":[{"rows_affected":1,"time":2.7e-5}],"time":0.0003,"version":12,"actor_id":"d5f143e7ba65421c938c850ce78fc9f2"}`
	if err := json.Unmarshal([]byte(body), &res); err != nil || res.Version == nil || *res.Version != 12 || res.Results[0].RowsAffected != 1 {
		t.Errorf("ExecResult %+v, %v", res, err)
	}
	if err := json.Unmarshal([]byte(strings.Replace(body, "12", "null", 1)), &res); err != nil || res.Version != nil {
		t.Errorf("null version: %+v, %v", res, err)
	}
}
