//! The header reader on arbitrary bytes: it never panics, and what it
//! accepts satisfies the invariants `trtllm_prune::header` documents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_checks::check_header(data));
