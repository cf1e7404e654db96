package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// RequestGC asks the registry at addr (host:port, or a URL) to collect
// with keep; with dryRun it only reports what would go.
func RequestGC(ctx context.Context, c *http.Client, addr string, keep KeepSet, dryRun bool) (GCReport, error) {
	var rep GCReport
	body, err := json.Marshal(keep)
	if err != nil {
		return rep, err
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/uc/v1/gc?dry_run=%t", base, dryRun), bytes.NewReader(body))
	if err != nil {
		return rep, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return rep, fmt.Errorf("registry %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return rep, fmt.Errorf("registry %s: gc: %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
