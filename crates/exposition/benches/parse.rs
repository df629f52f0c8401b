//! `cargo bench -p exposition --bench parse`: the text-format parser and the delimited protobuf
//! parser on scrape-like bodies of 10k / 100k / 1M series (see `testkit::bench::scrape_body`).

use exposition::delimited::parse_delimited;
use exposition::text_parse::parse_text;
use prost::Message;
use testkit::bench::{scrape_body, size_name, Bench, Per};

testkit::bench_allocator!();

fn main() {
    let b = Bench::from_args();
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
