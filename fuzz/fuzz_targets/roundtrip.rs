//! Reader -> planner -> reader: the first byte picks the prune rule and the
//! alignment, the rest is the file. Whatever the reader accepts, the planned
//! output parses and describes the same tensors, and kept tensors aligned
//! for their dtypes in the input stay aligned (`check_roundtrip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_checks::check_roundtrip(data));
