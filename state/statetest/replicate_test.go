package statetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

func client(t *testing.T, s *Server) *corrosion.Client {
	t.Helper()
	c, err := corrosion.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func exec(t *testing.T, c *corrosion.Client, q string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), corrosion.Stmt(q, args...)); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// nodes lists the nodes table as "name=state" lines.
func nodes(t *testing.T, c *corrosion.Client) []string {
	t.Helper()
	_, rows, err := c.QueryAll(context.Background(), corrosion.Stmt("SELECT name, state FROM nodes ORDER BY name"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%s", r[0], r[1]))
	}
	return out
}

func TestPairReplicates(t *testing.T) {
	t.Parallel()
	a, b := StartPair(t, 300*time.Millisecond)
	ca, cb := client(t, a), client(t, b)
	same := func(want ...string) func() bool {
		return func() bool { return slices.Equal(nodes(t, ca), want) && slices.Equal(nodes(t, cb), want) }
	}
	exec(t, ca, "INSERT INTO nodes (name, state) VALUES ('n1', 'Ready')")
	Eventually(t, "an insert on a to reach b", same("n1=Ready"))
	exec(t, cb, "UPDATE nodes SET state = 'NotReady' WHERE name = 'n1'")
	exec(t, cb, "INSERT INTO nodes (name, state) VALUES ('n2', 'Ready')")
	Eventually(t, "an update and an insert on b to reach a", same("n1=NotReady", "n2=Ready"))
	exec(t, ca, "DELETE FROM nodes WHERE name = 'n1'")
	Eventually(t, "a delete on a to reach b", same("n2=Ready"))
}

// TestPairLag: a change is not on the other side before the lag.
func TestPairLag(t *testing.T) {
	t.Parallel()
	a, b := StartPair(t, 2*time.Second)
	ca, cb := client(t, a), client(t, b)
	exec(t, ca, "INSERT INTO nodes (name, state) VALUES ('n1', 'Ready')")
	if got := nodes(t, cb); len(got) != 0 {
		t.Errorf("b holds %v right after the write on a, before the 2 s lag", got)
	}
	Eventually(t, "the insert to reach b", func() bool { return slices.Equal(nodes(t, cb), []string{"n1=Ready"}) })
}

// TestPairConverges: both sides write the same rows at once, many times;
// they end up equal, and stay so (replicated rows are not sent back and
// forth).
func TestPairConverges(t *testing.T) {
	t.Parallel()
	a, b := StartPair(t, 100*time.Millisecond)
	ca, cb := client(t, a), client(t, b)
	for i := range 20 {
		q := "INSERT INTO nodes (name, state) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state"
		exec(t, ca, q, fmt.Sprintf("n%d", i%3), fmt.Sprintf("a%d", i))
		exec(t, cb, q, fmt.Sprintf("n%d", i%3), fmt.Sprintf("b%d", i))
	}
	Eventually(t, "both sides to agree", func() bool {
		na := nodes(t, ca)
		return len(na) == 3 && slices.Equal(na, nodes(t, cb))
	})
	settled := nodes(t, ca)
	time.Sleep(time.Second) // a loop would keep rewriting the rows
	if na, nb := nodes(t, ca), nodes(t, cb); !slices.Equal(na, settled) || !slices.Equal(nb, settled) {
		t.Errorf("rows moved after agreeing on %v: a %v, b %v", settled, na, nb)
	}
}
