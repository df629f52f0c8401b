#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushgateway_fuzz::store_persist(data));
