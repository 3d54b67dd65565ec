package edge

// PurgeTag purges the cached responses tagged tag, as the admin API's
// POST /purge?tag= does, and returns how many went. The fleet agent
// applies the control plane's purges with it (edge/fleet's purge.go).
func (n *Node) PurgeTag(tag string) int { return n.cache.PurgeTag([]byte(tag)) }

// PurgeURL purges every variant of the cached responses for the absolute
// URL raw, keyed as the admin API's POST /purge?url= keys it.
func (n *Node) PurgeURL(raw string) (int, error) {
	key, err := urlKey(raw)
	if err != nil {
		return 0, err
	}
	return n.cache.Purge(key), nil
}

// PurgeAll empties the response cache, for a POP that missed purges it
// cannot name.
func (n *Node) PurgeAll() int { return n.cache.PurgeAll() }

// Purged is the position of the last purge the node applied, as SetPurged
// last set it (0: unknown).
func (n *Node) Purged() uint64 { return n.tier.purged.Load() }
