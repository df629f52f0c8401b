// Command go_accumulate runs N "invocations" of a short-lived job with the real Go client
// (github.com/prometheus/client_golang, Debian's sources in GOPATH mode): each invocation
// builds a fresh registry with a counter, a histogram and a gauge, and pushes it with
// push.New(gateway, job).Add() (POST). With -key, every push carries an Idempotency-Key and
// is retried with the same key. It prints what it pushed in total, as JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

type keyed struct {
	key string
	rt  http.RoundTripper
}

func (k keyed) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("Idempotency-Key", k.key)
	return k.rt.RoundTrip(r)
}

type totals struct {
	Counter  float64           `json:"counter"`
	Count    uint64            `json:"count"`
	Sum      float64           `json:"sum"`
	Buckets  map[string]uint64 `json:"buckets"`
	GaugeMax float64           `json:"gauge_max"`
	Failures int               `json:"failures"`
}

var bounds = []float64{0.1, 0.5, 1, 5}

func main() {
	n := flag.Int("n", 100, "invocations")
	workers := flag.Int("workers", 16, "concurrent workers")
	job := flag.String("job", "lambda", "job name")
	useKey := flag.Bool("key", false, "send an Idempotency-Key and retry with it")
	seed := flag.Int64("seed", 1, "random seed")
	flag.Parse()
	urls := flag.Args() // invocation i pushes to urls[i % len(urls)]
	if len(urls) == 0 {
		fmt.Fprintln(os.Stderr, "usage: go_accumulate [-n N] [-workers W] URL...")
		os.Exit(2)
	}
	var mu sync.Mutex
	t := totals{Buckets: map[string]uint64{}}
	for _, b := range bounds {
		t.Buckets[fmt.Sprint(b)] = 0
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(*seed*1000 + int64(w)))
			for i := range jobs {
				reg := prometheus.NewRegistry()
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "acc_requests_total", Help: "Requests handled."})
				h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "acc_duration_seconds", Help: "Handling time.", Buckets: bounds})
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "acc_batch_size", Help: "Batch size."})
				reg.MustRegister(c, h, g)
				inc := float64(rnd.Intn(40)+1) / 4 // exact in binary: sums are exact
				c.Add(inc)
				obs := []float64{}
				for k := 0; k < rnd.Intn(3)+1; k++ {
					v := float64(rnd.Intn(32)) / 4
					h.Observe(v)
					obs = append(obs, v)
				}
				size := float64(rnd.Intn(1000))
				g.Set(size)
				url := urls[i%len(urls)]
				p := push.New(url, *job).Gatherer(reg)
				var err error
				if *useKey {
					key := fmt.Sprintf("go-%d-%d-%d", *seed, w, i)
					p = p.Client(&http.Client{Timeout: 10 * time.Second, Transport: keyed{key, http.DefaultTransport}})
					for attempt := 0; attempt < 5; attempt++ {
						if err = p.Add(); err == nil {
							break
						}
						time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
					}
				} else {
					err = p.Add()
				}
				mu.Lock()
				if err != nil {
					fmt.Fprintln(os.Stderr, "push:", err)
					t.Failures++
				} else {
					t.Counter += inc
					for _, v := range obs {
						t.Count++
						t.Sum += v
						for _, b := range bounds {
							if v <= b {
								t.Buckets[fmt.Sprint(b)]++
							}
						}
					}
					if size > t.GaugeMax {
						t.GaugeMax = size
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(t)
}
