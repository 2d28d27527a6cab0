package httpapi

import (
	"strings"
	"testing"
)

// TestJSONShape checks the pre-decode scan: depth and member counts, with
// brackets, colons and commas inside strings ignored.
func TestJSONShape(t *testing.T) {
	for _, c := range []struct {
		body             string
		deep, many       bool
		maxDepth, maxMem int
	}{
		{body: `{"status":"accepted","eta":"5 pm"}`, maxDepth: 2, maxMem: 2},
		{body: `{"status":"accepted","eta":"5 pm","x":1}`, maxDepth: 2, maxMem: 2, many: true},
		{body: `{"fields":["a","b","c"]}`, maxDepth: 2, maxMem: 4},
		{body: `{"fields":["a","b","c","d"]}`, maxDepth: 2, maxMem: 4, many: true},
		{body: `{"fields":[ ]}`, maxDepth: 2, maxMem: 1},
		{body: `{"a":"[[[[,,,:::{{{","b":"\"[,:"}`, maxDepth: 1, maxMem: 2},
		{body: `[[[]]]`, maxDepth: 3, maxMem: 10},
		{body: `[[[[]]]]`, maxDepth: 3, maxMem: 10, deep: true},
		{body: strings.Repeat("[", 200000), maxDepth: 32, maxMem: 256, deep: true},
		{body: `{"status":"accepted"` + strings.Repeat(`,"k":1`, 68000) + `}`, maxDepth: 32, maxMem: 256, many: true},
	} {
		deep, many := jsonShape([]byte(c.body), c.maxDepth, c.maxMem)
		if deep != c.deep || many != c.many {
			t.Errorf("%.60s: deep %v many %v, want %v %v", c.body, deep, many, c.deep, c.many)
		}
	}
}
