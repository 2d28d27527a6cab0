package whatsapp

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"x","type":"order","order":{"product_items":[{"item_price":1e400}]}}]}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := Decode(body)
		if err != nil {
			return
		}
		evs := n.Events()
		for _, e := range evs {
			_ = e.DedupKey()
			_ = e.SubjectID()
			_ = e.Time()
			if e.Kind == EventMessage && e.Message.Order != nil {
				_, _ = e.Message.Order.Lines()
			}
		}
		// What decodes re-encodes, and decodes again to the same events.
		b, err := n.Marshal()
		if err != nil {
			t.Fatalf("Marshal after Decode: %v", err)
		}
		n2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-Decode: %v\n%s", err, b)
		}
		evs2 := n2.Events()
		if len(evs2) != len(evs) {
			t.Fatalf("%d events, %d after round trip", len(evs), len(evs2))
		}
		for i := range evs {
			if summary(evs[i]) != summary(evs2[i]) {
				t.Fatalf("event %d: %s != %s", i, summary(evs[i]), summary(evs2[i]))
			}
		}
	})
}
