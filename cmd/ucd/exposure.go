package main

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// exposure is how a command serves the state API: where, with which
// token, and the flags that set them, for the messages.
type exposure struct {
	listen, token         string
	insecure              bool
	listenFlag, tokenFlag string
}

// check refuses to serve the state API beyond loopback without a bearer
// token: whoever reaches it can write specs that every node then builds and
// pulls. --insecure serves it anyway, and says so in the log.
func (e exposure) check(log *slog.Logger) error {
	if e.token != "" || isLoopback(e.listen) {
		return nil
	}
	if !e.insecure {
		return fmt.Errorf("%s %s is not a loopback address, and there is no %s: anyone who reaches it could write specs that every node builds and pulls. "+
			"Set %s (and give uc and ucd the same token), listen on 127.0.0.1, or pass --insecure to serve it anyway",
			e.listenFlag, e.listen, e.tokenFlag, e.tokenFlag)
	}
	log.Warn("Serving the state API beyond loopback without a bearer token (--insecure): anyone who reaches it can read and write all of uc's state.",
		"addr", e.listen)
	return nil
}

// isLoopback tells a listen address that only this machine can reach:
// localhost or a loopback IP. An empty host listens on every interface.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
