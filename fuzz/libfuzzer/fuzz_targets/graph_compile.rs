#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seldon_fuzz::graph_compile(data));
