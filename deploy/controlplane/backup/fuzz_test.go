package backup

import (
	"bytes"
	"testing"
)

// FuzzParseManifest feeds parseManifest what a spoilt or hostile
// backup.json may hold: it must refuse or accept, never panic, and accept
// only paths inside the backup.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"wedge-backup/1","streams":[{"name":"WEDGE_AUDIT","kind":"stream","config":{"name":"WEDGE_AUDIT"},` +
		`"file":"streams/WEDGE_AUDIT.jsonl","count":1,"first_seq":1,"last_seq":1}],` +
		`"files":[{"path":"streams/WEDGE_AUDIT.jsonl","size":10,"sha256":"` + string(bytes.Repeat([]byte("ab"), 32)) + `"}]}`))
	f.Add([]byte(`{"format":"wedge-backup/1","files":[{"path":"../x"}]}`))
	f.Add([]byte(`{"format":"wedge-backup/0"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			return
		}
		for _, fl := range m.Files {
			if checkPath(fl.Path) != nil {
				t.Fatalf("accepted path %q", fl.Path)
			}
		}
	})
}

// FuzzReadMessages feeds readMessages and readObjects any file: each line
// is decoded and checked or refused, never a panic.
func FuzzReadMessages(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","subject":"wedge.audit.x","header":{"Nats-Msg-Id":["a"]},"data":{"who":"x"}}` + "\n" +
		`{"seq":2,"time":"2026-01-01T00:00:00Z","subject":"$KV.b.k","data_b64":"AAE="}` + "\n"))
	f.Add([]byte(`{"name":"abc","file":"objects/b/abc","size":3,"digest":"SHA-256=x"}` + "\n"))
	f.Add([]byte(`{"seq":0}` + "\n" + `not json`))
	f.Add([]byte(`{"name":"x","file":"/etc/passwd"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		readMessages(bytes.NewReader(b), func(m *Message) error {
			if m.Subject == "" || m.Seq == 0 {
				t.Fatalf("accepted %+v", m)
			}
			return nil
		})
		readObjects(bytes.NewReader(b), func(o *Object) error {
			if checkPath(o.File) != nil {
				t.Fatalf("accepted object file %q", o.File)
			}
			return nil
		})
	})
}
