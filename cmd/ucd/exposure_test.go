package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestExposureCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		listen   string
		token    string
		insecure bool
		refused  bool
		warned   bool
	}{
		{listen: "127.0.0.1:51002"},
		{listen: "127.0.0.53:51002"},
		{listen: "[::1]:51002"},
		{listen: "localhost:51002"},
		{listen: "0.0.0.0:51002", refused: true},
		{listen: ":51002", refused: true},
		{listen: "[::]:51002", refused: true},
		{listen: "192.0.2.10:51002", refused: true},
		{listen: "node1.example:51002", refused: true},
		{listen: "0.0.0.0:51002", token: "s3cret"},
		{listen: "192.0.2.10:51002", token: "s3cret"},
		{listen: "0.0.0.0:51002", insecure: true, warned: true},
		{listen: "192.0.2.10:51002", insecure: true, warned: true},
		{listen: "127.0.0.1:51002", insecure: true},
	}
	for _, c := range cases {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		e := exposure{listen: c.listen, token: c.token, insecure: c.insecure, listenFlag: "--state-listen", tokenFlag: "--corrosion-token"}
		err := e.check(log)
		if got := err != nil; got != c.refused {
			t.Errorf("%s token=%q insecure=%v: refused=%v (%v), want %v", c.listen, c.token, c.insecure, got, err, c.refused)
		}
		if got := strings.Contains(logs.String(), "level=WARN"); got != c.warned {
			t.Errorf("%s token=%q insecure=%v: warned=%v (%q), want %v", c.listen, c.token, c.insecure, got, logs.String(), c.warned)
		}
	}
}

// TestServeRefusesExposure runs both commands that serve the state API on
// a non-loopback address without a token: each refuses before it binds
// (none of these addresses is ever listened on) and names its flags.
func TestServeRefusesExposure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"state", "serve", "--listen", "0.0.0.0:0"},
			"--listen 0.0.0.0:0 is not a loopback address, and there is no --token"},
		{[]string{"run", "--node", "n1", "--state-listen", "192.0.2.10:0"},
			"--state-listen 192.0.2.10:0 is not a loopback address, and there is no --corrosion-token"},
	}
	for _, c := range cases {
		root := newRootCmd(slog.New(slog.NewTextHandler(io.Discard, nil)))
		root.SetArgs(append(c.args, "--data-dir", t.TempDir()))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ucd %s: got %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
