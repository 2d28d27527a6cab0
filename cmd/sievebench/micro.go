package main

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Micro holds the in-process benchmark figures parsed from `go test
// -bench` output: benchmark name → unit → the median over its runs.
type Micro map[string]map[string]float64

var benchLine = regexp.MustCompile(`^(Benchmark[^\s-]+)(?:-\d+)?\s+\d+\s+(.*)$`)

// parseMicro reads go test benchmark output.
func parseMicro(path string) (Micro, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[string]map[string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if runs[m[1]] == nil {
				runs[m[1]] = map[string][]float64{}
			}
			runs[m[1]][f[i+1]] = append(runs[m[1]][f[i+1]], v)
		}
	}
	out := Micro{}
	for name, units := range runs {
		out[name] = map[string]float64{}
		for u, vs := range units {
			slices.Sort(vs)
			out[name][u] = vs[len(vs)/2]
		}
	}
	return out, sc.Err()
}

func (m Micro) get(name, unit string) float64 { return m[name][unit] }
