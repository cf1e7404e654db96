package corrosion

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	subID  = "11111111-1111-4111-8111-111111111111"
	subID2 = "22222222-2222-4222-8222-222222222222"
	cols   = `{"columns":["id","v"]}`
	eoq0   = `{"eoq":{"time":0.0,"change_id":0}}`
)

var (
	hdr1 = map[string]string{"corro-query-id": subID, "corro-query-hash": "0123456789abcdef"}
	hdr2 = map[string]string{"corro-query-id": subID2, "corro-query-hash": "0123456789abcdef"}
)

func row(id int) string { return fmt.Sprintf(`{"row":[%d,[%d,"r"]]}`, id, id) }

func change(id uint64) string {
	return fmt.Sprintf(`{"change":["insert",%d,[%d,"c"],%d]}`, 100+id, 100+id, id)
}

func eoq(id uint64) string { return fmt.Sprintf(`{"eoq":{"time":0.0,"change_id":%d}}`, id) }

// describe renders a WatchEvent as "snap:<rows>" or "chg:<id>".
func describe(ev WatchEvent) string {
	if ev.Snapshot {
		return fmt.Sprintf("snap:%d", len(ev.Rows))
	}
	return fmt.Sprintf("chg:%d", ev.Change.ChangeID)
}

// watchUntil runs Watch until the handler has seen n events, and returns
// them with Watch's result.
func watchUntil(t *testing.T, c *Client, n int, fail func(WatchEvent) error) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := c.Watch(ctx, Stmt("SELECT id, v FROM t"), WatchOptions{Logger: quiet(), MaxBackoff: 200 * time.Millisecond}, func(ev WatchEvent) error {
		if fail != nil {
			if err := fail(ev); err != nil {
				return err
			}
		}
		if ev.Snapshot && len(ev.Columns) != 2 || !ev.Snapshot && (ev.Change.Kind != EventChange || len(ev.Columns) != 2) {
			t.Errorf("malformed watch event %+v", ev)
		}
		got = append(got, describe(ev))
		if len(got) == n {
			cancel()
		}
		return nil
	})
	return got, err
}

func TestWatchResume(t *testing.T) {
	t.Parallel()
	type route struct {
		route string
		steps []func(http.ResponseWriter, *http.Request)
	}
	post := func(steps ...func(http.ResponseWriter, *http.Request)) route {
		return route{"POST /v1/subscriptions", steps}
	}
	get := func(steps ...func(http.ResponseWriter, *http.Request)) route {
		return route{"GET /v1/subscriptions/", steps}
	}
	cases := []struct {
		name     string
		routes   []route
		events   []string
		requests []string
	}{
		{
			"gap in change ids resumes from the last one",
			[]route{
				post(lines(hdr1, cols, row(1), eoq0, change(1), change(3), "WAIT")),
				get(lines(hdr1, change(2), change(3), "WAIT")),
			},
			[]string{"snap:1", "chg:1", "chg:2", "chg:3"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1"},
		},
		{
			"repeated change id resumes too",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1), change(1), "WAIT")),
				get(lines(hdr1, change(2), "WAIT")),
			},
			[]string{"snap:0", "chg:1", "chg:2"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1"},
		},
		{
			"silent EOF resumes with from=last",
			[]route{
				post(lines(hdr1, cols, row(1), row(2), eoq0, change(1), change(2))),
				get(lines(hdr1, change(3), "WAIT")),
			},
			[]string{"snap:2", "chg:1", "chg:2", "chg:3"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=2"},
		},
		{
			"EOF twice",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1))),
				get(lines(hdr1, change(2)), lines(hdr1, change(3), "WAIT")),
			},
			[]string{"snap:0", "chg:1", "chg:2", "chg:3"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1", "GET /v1/subscriptions/" + subID + "?from=2"},
		},
		{
			"error line resumes",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1), `{"error":"catching up too slowly"}`)),
				get(lines(hdr1, change(2), "WAIT")),
			},
			[]string{"snap:0", "chg:1", "chg:2"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1"},
		},
		{
			"garbage resumes",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1), `{"change":[`)),
				get(lines(hdr1, change(2), "WAIT")),
			},
			[]string{"snap:0", "chg:1", "chg:2"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1"},
		},
		{
			"snapshot cut short is read again",
			[]route{
				post(lines(hdr1, cols, row(1))),
				get(lines(hdr1, cols, row(1), row(2), eoq(4), change(5), "WAIT")),
			},
			[]string{"snap:2", "chg:5"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?"},
		},
		{
			"end before any change re-lists",
			[]route{
				post(lines(hdr1, cols, row(1), eoq0)),
				get(lines(hdr1, cols, row(1), eoq0, change(1), "WAIT")),
			},
			[]string{"snap:1", "snap:1", "chg:1"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?"},
		},
		{
			"existing subscription starts after eoq.change_id",
			[]route{
				post(lines(hdr1, cols, row(1), eoq(41), change(42), change(43), "WAIT")),
			},
			[]string{"snap:1", "chg:42", "chg:43"},
			[]string{"POST /v1/subscriptions?"},
		},
		{
			"404 subscribes again and re-lists",
			[]route{
				post(lines(hdr1, cols, row(1), eoq0, change(1)), lines(hdr2, cols, row(1), row(2), eoq0, change(1), "WAIT")),
				get(status(404, `{"error":"could not find subscription with id `+subID+`"}`)),
			},
			[]string{"snap:1", "chg:1", "snap:2", "chg:1"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1", "POST /v1/subscriptions?"},
		},
		{
			"purged from re-lists the same subscription",
			[]route{
				post(lines(hdr1, cols, row(1), eoq0, change(1), change(2))),
				get(lines(hdr1, `{"error":"subscription already deleted older changes, min change id: 5"}`),
					lines(hdr1, cols, row(1), row(2), row(3), eoq(9), change(10), "WAIT")),
			},
			[]string{"snap:1", "chg:1", "chg:2", "snap:3", "chg:10"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=2", "GET /v1/subscriptions/" + subID + "?"},
		},
		{
			"purged, then gone",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1)), lines(hdr2, cols, eoq0, "WAIT")),
				get(lines(hdr1, `{"error":"subscription already deleted older changes, min change id: 5"}`),
					status(404, `{"error":"gone"}`)),
			},
			[]string{"snap:0", "chg:1", "snap:0"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1", "GET /v1/subscriptions/" + subID + "?", "POST /v1/subscriptions?"},
		},
		{
			"transient errors are retried",
			[]route{
				post(status(503, "max concurrency limit reached"), status(500, `{"error":"pool"}`), lines(hdr1, cols, eoq0, change(1), "WAIT")),
			},
			[]string{"snap:0", "chg:1"},
			[]string{"POST /v1/subscriptions?", "POST /v1/subscriptions?", "POST /v1/subscriptions?"},
		},
		{
			"transient errors on resume keep the position",
			[]route{
				post(lines(hdr1, cols, eoq0, change(1))),
				get(status(503, "max concurrency limit reached"), lines(hdr1, change(2), "WAIT")),
			},
			[]string{"snap:0", "chg:1", "chg:2"},
			[]string{"POST /v1/subscriptions?", "GET /v1/subscriptions/" + subID + "?from=1", "GET /v1/subscriptions/" + subID + "?from=1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			for _, r := range c.routes {
				f.on(r.route, r.steps...)
			}
			cl, _ := New(f.srv.URL)
			got, err := watchUntil(t, cl, len(c.events), nil)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v", err)
			}
			if strings.Join(got, " ") != strings.Join(c.events, " ") {
				t.Errorf("events %v, want %v", got, c.events)
			}
			if reqs := f.requests(); strings.Join(reqs, "\n") != strings.Join(c.requests, "\n") {
				t.Errorf("requests\n%s\nwant\n%s", strings.Join(reqs, "\n"), strings.Join(c.requests, "\n"))
			}
		})
	}
}

func TestWatchPermanentErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		step   func(http.ResponseWriter, *http.Request)
		status int
	}{
		{"bad query", status(400, `{"error":"table not found in schema: t"}`), 400},
		{"unauthorized", status(401, ""), 401},
		{"wrong shape", status(422, "Failed to deserialize the JSON body"), 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.on("POST /v1/subscriptions", c.step)
			cl, _ := New(f.srv.URL)
			_, err := watchUntil(t, cl, 1, nil)
			var api *APIError
			if !errors.As(err, &api) || api.Status != c.status {
				t.Errorf("Watch = %v, want a %d", err, c.status)
			}
		})
	}
}

func TestWatchHandlerError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, failOn := range []string{"snap:0", "chg:1"} {
		f := newFake(t)
		f.on("POST /v1/subscriptions", lines(hdr1, cols, eoq0, change(1), "WAIT"))
		cl, _ := New(f.srv.URL)
		_, err := watchUntil(t, cl, 10, func(ev WatchEvent) error {
			if describe(ev) == failOn {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Errorf("failing on %s: Watch = %v", failOn, err)
		}
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/subscriptions", status(503, "busy"), status(503, "busy"), status(503, "busy"))
	cl, _ := New(f.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := cl.Watch(ctx, Stmt("SELECT 1"), WatchOptions{Logger: quiet()}, func(WatchEvent) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch = %v", err)
	}
}
