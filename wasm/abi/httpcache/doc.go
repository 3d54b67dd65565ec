// Package httpcache is the policy of Wedge's RFC 9111 shared cache as pure
// functions over header values (with RFC 9213 targeted fields, RFC 9211
// Cache-Status and RFC 5861 stale-* extensions), and the formats the cache
// keeps: the key (Key), the metadata stored beside each response (Meta) and
// the state the request phase leaves for the response phase (State).
//
// Both sides of the ABI use it: the cache plugin (plugins/cache, a Go
// guest) decides storability and freshness in its response phase and
// stores with it; the host runs the request phase with it (cache_request,
// wasm/host) and settles the response phase of a response that will not be
// stored (cache_response, Settle), and the edge's purge-by-URL builds keys
// with it. One
// implementation means an entry the plugin stores is found and judged by
// the host exactly as the plugin would.
//
// It imports nothing of Wedge's but wasm/abi, so a guest can import it.
//
// # Why
//
// A Go guest runs byte-level work 12-15x slower than native code, and the
// request phase of a cache is nearly all byte-level work: key building,
// metadata decoding, directive parsing, freshness arithmetic, header
// rendering. Moving it into the host, with the code the plugin would have
// run, keeps the decisions with the plugin (whether to look up, its name,
// what is stored and for how long) and the cost near native.
//
// The formats are versioned by prefix ("wc1"): a change of any of them
// takes a new prefix, so entries a previous version stored read as misses.
package httpcache
