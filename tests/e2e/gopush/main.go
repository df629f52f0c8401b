// Command gopush pushes native, float, mixed, empty native and gauge histograms to a
// Pushgateway with Debian's client_golang (built in GOPATH mode by test_go_client_e2e.py).
//
// Usage: gopush <gateway URL> <job>
package main

import (
	"fmt"
	"os"

	"github.com/golang/protobuf/proto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
)

func span(offset int32, length uint32) *dto.BucketSpan {
	return &dto.BucketSpan{Offset: proto.Int32(offset), Length: proto.Uint32(length)}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gopush <gateway URL> <job>")
		os.Exit(2)
	}
	reg := prometheus.NewRegistry()
	// Integer native histogram (no classic buckets): 4 observations, sum 10.
	native := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "e2e_native_seconds",
		Help:                        "Native histogram.",
		NativeHistogramBucketFactor: 1.1,
	})
	// Mixed: classic buckets and native ones: 3 observations, sum 6.
	mixed := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "e2e_mixed_seconds",
		Help:                        "Classic and native histogram.",
		Buckets:                     []float64{1, 2, 5},
		NativeHistogramBucketFactor: 1.1,
	})
	reg.MustRegister(native, mixed)
	for _, v := range []float64{1, 2, 3, 4} {
		native.Observe(v)
	}
	for _, v := range []float64{1, 2, 3} {
		mixed.Observe(v)
	}
	// What client_golang cannot build in this version: a float native histogram, an empty
	// native histogram (marked by one empty span, as newer client_golang does) and a gauge
	// histogram, as protobuf families gathered alongside.
	extra := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		floatH := &dto.Histogram{
			SampleCountFloat: proto.Float64(2.5),
			SampleSum:        proto.Float64(7.5),
			Schema:           proto.Int32(0),
			ZeroThreshold:    proto.Float64(0.001),
			ZeroCountFloat:   proto.Float64(0.5),
			PositiveSpan:     []*dto.BucketSpan{span(1, 2)},
			PositiveCount:    []float64{1.5, 0.5},
		}
		emptyH := &dto.Histogram{
			SampleCount:   proto.Uint64(0),
			SampleSum:     proto.Float64(0),
			Schema:        proto.Int32(3),
			ZeroThreshold: proto.Float64(2.938735877055719e-39),
			ZeroCount:     proto.Uint64(0),
			PositiveSpan:  []*dto.BucketSpan{span(0, 0)},
		}
		gaugeH := &dto.Histogram{
			SampleCount: proto.Uint64(5),
			SampleSum:   proto.Float64(12),
			Bucket: []*dto.Bucket{
				{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(2)},
				{UpperBound: proto.Float64(10), CumulativeCount: proto.Uint64(5)},
			},
		}
		hist := dto.MetricType_HISTOGRAM
		gauge := dto.MetricType_GAUGE_HISTOGRAM
		return []*dto.MetricFamily{
			{Name: proto.String("e2e_float_seconds"), Help: proto.String("Float native histogram."), Type: &hist,
				Metric: []*dto.Metric{{Histogram: floatH}}},
			{Name: proto.String("e2e_empty_seconds"), Help: proto.String("Empty native histogram."), Type: &hist,
				Metric: []*dto.Metric{{Histogram: emptyH}}},
			{Name: proto.String("e2e_queue_length"), Help: proto.String("Gauge histogram."), Type: &gauge,
				Metric: []*dto.Metric{{Histogram: gaugeH}}},
		}, nil
	})
	err := push.New(os.Args[1], os.Args[2]).
		Gatherer(prometheus.Gatherers{reg, extra}).
		Push()
	if err != nil {
		fmt.Fprintln(os.Stderr, "push:", err)
		os.Exit(1)
	}
}
