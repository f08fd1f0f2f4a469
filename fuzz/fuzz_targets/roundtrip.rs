//! Reader -> planner -> reader: the first byte picks the prune rule and the
//! alignment, the rest is the file. Whatever the reader accepts, the planned
//! output parses and describes the same tensors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_checks::check_roundtrip(data));
