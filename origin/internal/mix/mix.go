// Package mix generates the realistic traffic mix the origin benchmarks and
// dictionary tests use: header-heavy browser and API requests, and JSON API
// responses of 1 to 100 KB. It is deterministic for a seed, so a dictionary
// can be trained on one seed and measured on another.
package mix

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Request is one generated client request.
type Request struct {
	Method string
	Path   string // with the query, if any
	Header [][2]string
	Body   []byte
}

// Gen produces requests and the upstream's JSON bodies.
type Gen struct {
	r *rand.Rand
}

// New returns a generator for seed.
func New(seed uint64) *Gen { return &Gen{r: rand.New(rand.NewPCG(seed, 0x5eed))} }

var (
	agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"okhttp/4.12.0",
		"MyShopApp/7.4.1 (Android 15; Pixel 8)",
	}
	langs     = []string{"en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "ja,en-US;q=0.9"}
	resources = []string{"products", "orders", "users", "carts", "reviews", "inventory"}
	words     = []string{"alpha", "bravo", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kelvin", "lumen", "meadow", "nimbus", "onyx", "prairie"}
	countries = []string{"DE", "US", "FR", "JP", "BR", "IN", "GB", "ES"}
)

// Request returns the next request: mostly GETs of API resources with the
// header set a browser or mobile app sends, some POSTs with small JSON.
func (g *Gen) Request() Request {
	res := resources[g.r.IntN(len(resources))]
	id := g.r.IntN(1_000_000)
	req := Request{Method: "GET", Path: "/api/v2/" + res + "/" + strconv.Itoa(id)}
	switch n := g.r.IntN(10); {
	case n < 2:
		req.Path += "?page=" + strconv.Itoa(g.r.IntN(50)) + "&per_page=50&sort=-updated_at"
	case n == 9:
		req.Method = "POST"
		req.Path = "/api/v2/" + res
		req.Body = fmt.Appendf(nil, `{"name":%q,"quantity":%d,"note":%q}`, g.word()+" "+g.word(), g.r.IntN(20), g.hex(12))
	}
	h := [][2]string{
		{"Host", "shop.example.com"},
		{"User-Agent", agents[g.r.IntN(len(agents))]},
		{"Accept", "application/json, text/plain, */*"},
		{"Accept-Language", langs[g.r.IntN(len(langs))]},
		{"Accept-Encoding", "gzip, deflate, br, zstd"},
		{"Referer", "https://shop.example.com/" + res + "?ref=" + g.word()},
		{"Origin", "https://shop.example.com"},
		{"Authorization", "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9." + g.b64(140) + "." + g.b64(86)},
		{"Cookie", "session=" + g.hex(32) + "; _ga=GA1.2." + strconv.Itoa(g.r.IntN(1e9)) + "." + strconv.Itoa(1700000000+g.r.IntN(1e8)) + "; theme=dark; consent=analytics,ads"},
		{"X-Request-Id", g.hex(8) + "-" + g.hex(4) + "-" + g.hex(4) + "-" + g.hex(4) + "-" + g.hex(12)},
		{"Sec-Fetch-Site", "same-origin"},
		{"Sec-Fetch-Mode", "cors"},
		{"Sec-Fetch-Dest", "empty"},
		{"Sec-Ch-Ua", `"Chromium";v="131", "Not_A Brand";v="24"`},
		{"Sec-Ch-Ua-Mobile", "?0"},
		{"Sec-Ch-Ua-Platform", `"Windows"`},
		{"Traceparent", "00-" + g.hex(32) + "-" + g.hex(16) + "-01"},
	}
	if req.Body != nil {
		h = append(h, [2]string{"Content-Type", "application/json"})
	}
	req.Header = h
	return req
}

// BodySize returns the size of the JSON response for a request number:
// log-uniform between 1 and 100 KB, so small responses dominate by count and
// large ones by bytes, as in API traffic.
func BodySize(r *rand.Rand) int {
	return int(1024 * math.Pow(100, r.Float64()))
}

// JSON returns a JSON API response of about size bytes: a page of records
// with repeating keys and varying values.
func (g *Gen) JSON(size int) []byte {
	var b strings.Builder
	b.Grow(size + 512)
	b.WriteString(`{"data":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"sku":"%s-%d","name":"%s %s","price":{"amount":%d.%02d,"currency":"EUR"},"stock":%d,"country":"%s","rating":%.2f,"active":%t,"updated_at":"2026-%02d-%02dT%02d:%02d:%02dZ","tags":["%s","%s"],"seller":{"id":%d,"name":"%s"}}`,
			g.r.IntN(1e7), strings.ToUpper(g.word()[:3]), g.r.IntN(1e5), g.word(), g.word(), g.r.IntN(500), g.r.IntN(100),
			g.r.IntN(1000), countries[g.r.IntN(len(countries))], 1+4*g.r.Float64(), g.r.IntN(4) > 0,
			1+g.r.IntN(12), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60), g.word(), g.word(), g.r.IntN(1e5), g.word())
	}
	fmt.Fprintf(&b, `],"meta":{"page":%d,"per_page":50,"total":%d,"request_id":"%s"}}`, g.r.IntN(50), g.r.IntN(1e6), g.hex(16))
	return []byte(b.String())
}

// Rand exposes the generator's source, for sizes.
func (g *Gen) Rand() *rand.Rand { return g.r }

func (g *Gen) word() string { return words[g.r.IntN(len(words))] }

func (g *Gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(16)]
	}
	return string(b)
}

func (g *Gen) b64(n int) string {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(64)]
	}
	return string(b)
}
