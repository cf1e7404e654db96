package controllers

import (
	"strings"
	"testing"
)

func TestCheckStableAddress(t *testing.T) {
	for _, tt := range []struct {
		addr, listen, want string
	}{
		{addr: "127.0.0.1:5454"},
		{addr: "127.0.0.2:6000", listen: "127.0.0.1:5000"},
		{addr: "[::1]:5454"},
		{addr: "10.0.0.4:5454", want: "10.0.0.4 is not a loopback IP"},
		{addr: "localhost:5454", want: "localhost is not a loopback IP"},
		{addr: "127.0.0.1", want: "want a loopback host:port"},
		{addr: "127.0.0.1:0", want: "with a fixed port"},
		{addr: "127.0.0.1:5000", listen: "127.0.0.1:5000", want: "needs a port of its own"},
	} {
		err := checkStableAddress(tt.addr, tt.listen)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.addr, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--registry-address")):
			t.Errorf("%s: %v, want an error naming --registry-address and saying %q", tt.addr, err, tt.want)
		}
	}
}
