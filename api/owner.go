package api

import (
	"hash/fnv"
	"time"
)

// Ownership without leader election: rendezvous hashing of the work's key
// over the live, eligible nodes. Every node computes the same answer from
// the same view; during a membership change two nodes may briefly both
// work on a key, which is safe because all work is idempotent and
// content-addressed. The CLI uses the same rule to explain who owns what.

// LiveTimeout is how long after its last heartbeat a node counts as live.
const LiveTimeout = 15 * time.Second

// PickOwner returns the owner of key among live nodes that eligible
// accepts; ok is false when no node qualifies.
func PickOwner(key string, nodes []Node, now time.Time, eligible func(Node) bool) (name string, ok bool) {
	var best uint64
	for _, n := range nodes {
		if !n.Live(now, LiveTimeout) || (eligible != nil && !eligible(n)) {
			continue
		}
		if s := score(key, n.Name); !ok || s > best || (s == best && n.Name < name) {
			name, best, ok = n.Name, s, true
		}
	}
	return name, ok
}

func score(key, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}
