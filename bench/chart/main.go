// Command chart renders the load benchmark's ratios (bench/results/latest.json) as a
// PNG bar chart. It is its own module so that gonum/plot never enters idbridge's build.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type target struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Bound    float64 `json:"bound"`
	AtLeast  bool    `json:"at_least"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
}

func main() {
	in := flag.String("in", "bench/results/latest.json", "benchmark results")
	out := flag.String("out", "bench/results/latest.png", "PNG to write")
	flag.Parse()
	b, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var r struct {
		Date    string   `json:"date"`
		Targets []target `json:"targets"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		log.Fatal(err)
	}
	// Each bar is measured/bound, so 1.0 is the target line whatever the unit: a bar
	// of an "at least" target must reach it, the others must stay under it.
	var met, missed plotter.Values
	var names []string
	for i, t := range r.Targets {
		v := t.Measured / t.Bound
		names = append(names, fmt.Sprintf("%d", i+1))
		if t.Met {
			met, missed = append(met, v), append(missed, 0)
		} else {
			met, missed = append(met, 0), append(missed, v)
		}
		op := "<="
		if t.AtLeast {
			op = ">="
		}
		fmt.Printf("%d  %s: %.2f %s (target %s %.2f)\n", i+1, t.Name, t.Measured, t.Unit, op, t.Bound)
	}
	p := plot.New()
	p.Title.Text = "idbridge vs targets (measured / bound), " + r.Date
	p.Y.Label.Text = "measured / target bound"
	w := vg.Points(18)
	good, err := plotter.NewBarChart(met, w)
	if err != nil {
		log.Fatal(err)
	}
	good.Color = colorRGBA(60, 150, 80)
	bad, err := plotter.NewBarChart(missed, w)
	if err != nil {
		log.Fatal(err)
	}
	bad.Color = colorRGBA(200, 60, 50)
	p.Add(good, bad)
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add("met", good)
	p.Legend.Add("missed", bad)
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Label.Text = "target (numbered as in latest.md)"
	if err := p.Save(8*vg.Inch, 4*vg.Inch, *out); err != nil {
		log.Fatal(err)
	}
}
