package corrosion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// streamOf is a Stream over raw bytes, as a server would send them.
func streamOf(data []byte) *Stream {
	ctx, cancel := context.WithCancelCause(context.Background())
	resp := &http.Response{Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(data))}
	return newStream(resp, &bound{ctx: ctx, cancel: cancel})
}

// FuzzStreamDecode feeds arbitrary bytes to the NDJSON decoder of query
// and subscription streams. It must never panic; every event it accepts
// must encode again and decode to the same event; and Rows must end with
// an error or at eoq. Seeds: testdata/fuzz/FuzzStreamDecode.
func FuzzStreamDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := streamOf(data)
		defer s.Close()
		for range 1000 {
			ev, err := s.Next()
			var se *StreamError
			if err != nil && !errors.As(err, &se) {
				break
			}
			roundTrip(t, ev)
			if err != nil {
				break
			}
		}
		rows := &Rows{stream: streamOf(data)}
		for rows.Next() {
		}
		rows.Close()
	})
}

// roundTrip checks that an accepted event encodes and decodes to itself.
func roundTrip(t *testing.T, ev Event) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("encode accepted event %+v: %v", ev, err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode re-encoded event %s: %v", b, err)
	}
	if !reflect.DeepEqual(normalizeEvent(ev), normalizeEvent(back)) {
		t.Fatalf("round trip changed the event:\n%+v\n%s\n%+v", ev, b, back)
	}
}

// normalizeEvent drops what the wire form does not carry: an empty blob
// and an empty array are the same JSON, and nil and empty slices too.
func normalizeEvent(ev Event) Event {
	if len(ev.Columns) == 0 {
		ev.Columns = nil
	}
	if len(ev.Values) == 0 {
		ev.Values = nil
	}
	return ev
}
