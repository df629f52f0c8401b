//! `cargo bench -p exposition --bench parse`: the text-format parser and the delimited protobuf
//! parser on scrape-like bodies of 10k / 100k / 1M series (see `testkit::bench::scrape_body`),
//! and the text parser on the bodies pgwbench pushes: `parse/push-large` (`mode=large`, 5,000
//! series: 384 histograms of 11 buckets) and `parse/push-small` (`mode=small`, 10 series), as
//! the server parses them (`parse_text_limited` with the default limits). Their lines give the
//! time per body; divide by the series for ns/series.

use exposition::delimited::parse_delimited;
use exposition::limits::ParseLimits;
use exposition::text_parse::{parse_text, parse_text_limited};
use prost::Message;
use testkit::bench::{large_push_body, scrape_body, size_name, small_push_body, Bench, Per};

testkit::bench_allocator!();

fn main() {
    let b = Bench::from_args();
    for (name, body, series, reps) in [
        ("parse/push-large", large_push_body(3, 3), 5_000, 1),
        ("parse/push-small", small_push_body(3, 3), 10, 1_000),
    ] {
        b.run(name, || {
            for _ in 0..reps {
                let f = parse_text_limited(body.as_bytes(), ParseLimits::default(), false)
                    .expect("parses");
                std::hint::black_box(f);
            }
            vec![Per::Ops(reps, "body"), Per::Series(series * reps)]
        });
    }
    for n in b.sizes() {
        let sz = size_name(n);
        let text_name = format!("parse/text/{sz}");
        let pb_name = format!("parse/protobuf/{sz}");
        if !b.wants_any(&[&text_name, &pb_name]) {
            continue;
        }
        let body = scrape_body(n);
        let families = parse_text(body.as_bytes()).expect("generated body parses");
        let series = n as u64;

        b.run(&text_name, || {
            let f = parse_text(body.as_bytes()).expect("parses");
            std::hint::black_box(f);
            vec![Per::Bytes(body.len() as u64), Per::Series(series)]
        });

        let mut pb = Vec::new();
        for mf in &families {
            mf.encode_length_delimited(&mut pb)
                .expect("Vec grows as needed");
        }
        drop(families);
        b.run(&pb_name, || {
            let f = parse_delimited(&pb).expect("parses");
            std::hint::black_box(f);
            vec![Per::Bytes(pb.len() as u64), Per::Series(series)]
        });
    }
}
