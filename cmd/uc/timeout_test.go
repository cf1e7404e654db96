package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// runUC runs uc with args in-process and returns its error.
func runUC(ctx context.Context, args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestRequestTimeout: against a state API that accepts connections but
// never answers (a server stopped with SIGSTOP), every command gives up
// after --request-timeout and names the address, where `uc get` used to
// hang. uc wait's own --timeout is far longer: the request bound ends it.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	api := "http://" + ln.Addr().String()
	want := "state API " + api + " did not answer within 200ms (--request-timeout)"
	for _, args := range [][]string{
		{"get", "images"},
		{"get", "nodes", "node1"},
		{"describe", "image", "web"},
		{"wait", "images", "web", "--timeout", "1m"},
		{"logs", "build", "web"},
		{"registry", "status"},
		{"delete", "image", "web"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			// The deadline only stops a hang; --request-timeout must end
			// the command long before it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := runUC(ctx, append(args, "--corrosion-api", api, "--request-timeout", "200ms")...)
			if err == nil || !strings.HasSuffix(err.Error(), want) {
				t.Errorf("uc %s: got %v, want an error ending in %q", strings.Join(args, " "), err, want)
			}
		})
	}
}

// TestCAFileNamed: a CA file that cannot be used is named with its flag.
func TestCAFileNamed(t *testing.T) {
	t.Parallel()
	_, err := runUC(context.Background(), "get", "images", "--corrosion-api", "https://127.0.0.1:1", "--corrosion-ca", "/nonexistent/ca.pem")
	if err == nil || !strings.HasPrefix(err.Error(), "--corrosion-ca: ") || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("got %v, want an error naming --corrosion-ca and the file", err)
	}
}
