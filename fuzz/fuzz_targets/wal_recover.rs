#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushgateway_fuzz::wal_recover(data));
