package main

import (
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/sdk/sdktest"
)

// FuzzRequest sends arbitrary credentials and paths: the plugin must answer
// 200, 400 or 401 without failing, challenge every refusal, and admit
// nothing it did not verify.
func FuzzRequest(f *testing.F) {
	k := mustKeys(f)
	tok := sign(f, "ES256", k.p256, "es256", claims(nil))
	for _, s := range [][3]string{
		{"/orders", "Bearer " + tok, ""},
		{"/orders", "Bearer " + tok[:len(tok)-2], ""},
		{"/orders", "bearer a.b.c", ""},
		{"/orders", "Basic dTpw", ciKey},
		{"/public/../x", "", ""},
		{"/health/%2e%2e", "Bearer", "x"},
		{"/", "Bearer eyJhbGciOiJub25lIn0.e30.", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	h := sdktest.New(f, &auth{}, baseConfig(f, nil))
	h.Env.Now = func() time.Time { return now }
	f.Fuzz(func(t *testing.T, path, authz, key string) {
		req := get(path)
		if authz != "" {
			req.Header.Add("Authorization", authz)
		}
		if key != "" {
			req.Header.Add("X-Api-Key", key)
		}
		res := h.Do(req)
		if res.RequestErr != nil {
			t.Fatalf("request phase failed: %v", res.RequestErr)
		}
		ch, _ := res.Resp.Header.Get("WWW-Authenticate")
		switch res.Resp.Status {
		case 200:
			got, isBearer := bearer([]byte(authz))
			admitted := publicPath(path) || (isBearer && string(got) == tok) || key == ciKey || key == deployKey
			if !admitted {
				t.Fatalf("admitted %q %q %q: %v", path, authz, key, forwarded(res))
			}
		case 400, 401:
			if !strings.HasPrefix(ch, realm) {
				t.Fatalf("%d with WWW-Authenticate %q", res.Resp.Status, ch)
			}
		default:
			t.Fatalf("status %d", res.Resp.Status)
		}
	})
}

// publicPath is the public-path rule of baseConfig, restated.
func publicPath(p string) bool {
	return cleanPath(p) && (p == "/health" || strings.HasPrefix(p, "/health/") || strings.HasPrefix(p, "/public/"))
}
