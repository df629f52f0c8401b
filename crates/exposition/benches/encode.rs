//! `cargo bench -p exposition --bench encode`: the text-format writer
//! (`text_encode::write_header` + `write_metric`, what the store runs once per pushed metric)
//! and, for comparison, prost's delimited protobuf encoding of the same families, at
//! 10k / 100k / 1M series.

use exposition::text_encode::{write_header, write_metric};
use exposition::text_parse::parse_text;
use prost::Message;
use testkit::bench::{scrape_body, size_name, Bench, Per};

testkit::bench_allocator!();

fn main() {
    let b = Bench::from_args();
    for n in b.sizes() {
        let sz = size_name(n);
        let text_name = format!("encode/text/{sz}");
        let pb_name = format!("encode/protobuf/{sz}");
        if !b.wants_any(&[&text_name, &pb_name]) {
            continue;
        }
        let body = scrape_body(n);
        let families = parse_text(body.as_bytes()).expect("generated body parses");
        let series = n as u64;

        let mut out = String::with_capacity(body.len() + 4096);
        b.run(&text_name, || {
            out.clear();
            for mf in &families {
                let t = mf.metric_type();
                write_header(&mut out, mf.name(), mf.help.as_deref(), t);
                for m in &mf.metric {
                    write_metric(&mut out, mf.name(), t, m).expect("type matches");
                }
            }
            vec![Per::Bytes(out.len() as u64), Per::Series(series)]
        });
        if b.wants(&text_name) {
            // The generated body is in canonical form: the writer must reproduce it.
            if let Some((a, e)) = body.lines().zip(out.lines()).find(|(a, e)| a != e) {
                println!("  note: re-encoded text differs: {a:?} became {e:?}");
            }
        }

        let mut pb: Vec<u8> = Vec::new();
        b.run(&pb_name, || {
            pb.clear();
            for mf in &families {
                mf.encode_length_delimited(&mut pb)
                    .expect("Vec grows as needed");
            }
            vec![Per::Bytes(pb.len() as u64), Per::Series(series)]
        });
    }
}
