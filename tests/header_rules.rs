//! One byte-literal test per safetensors rule (REFERENCE.md §4), against
//! the pure reader `trtllm_prune::fixture::parse_file`. Where the official
//! crate decides the same question, the test asserts that it agrees.

use safetensors::SafeTensors;
use trtllm_prune::fixture::parse_file;
use trtllm_prune::{Dtype, Header, HeaderError};

use crate::util::safetensors_bytes as file;

/// Asserts our reader rejects `bytes` and returns the error.
#[track_caller]
fn rejected(bytes: &[u8]) -> HeaderError {
    match parse_file(bytes) {
        Ok(h) => panic!("accepted a bad file: {h:?}"),
        Err(e) => e,
    }
}

/// Asserts our reader accepts `bytes` and returns the header.
#[track_caller]
fn accepted(bytes: &[u8]) -> Header {
    parse_file(bytes).unwrap_or_else(|e| panic!("rejected a valid file: {e}"))
}

#[track_caller]
fn official_rejects(bytes: &[u8]) {
    assert!(
        SafeTensors::deserialize(bytes).is_err(),
        "the official reader accepts it"
    );
}

#[track_caller]
fn official_accepts(bytes: &[u8]) -> usize {
    match SafeTensors::deserialize(bytes) {
        Ok(st) => st.len(),
        Err(e) => panic!("the official reader rejects it: {e}"),
    }
}

/// Asserts the message holds every fragment.
#[track_caller]
fn says(e: &HeaderError, fragments: &[&str]) {
    let text = e.to_string();
    for f in fragments {
        assert!(text.contains(f), "`{f}` missing from: {text}");
    }
}

const U8X4: &str = r#"{"dtype":"U8","shape":[4],"data_offsets":[0,4]}"#;

/// Position of `needle` in `bytes` (the file offset an error should name).
fn position(bytes: &[u8], needle: &str) -> u64 {
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("needle present") as u64
}

// ---- rejections ----

#[test]
fn rejects_file_shorter_than_8_bytes() {
    for bytes in [&b""[..], b"\x02", b"\x02\x00\x00\x00\x00\x00\x00"] {
        let e = rejected(bytes);
        assert_eq!(e.offset, Some(0));
        says(&e, &["too short"]);
        official_rejects(bytes);
    }
}

#[test]
fn rejects_header_length_over_the_limit() {
    for n in [100_000_001u64, u64::MAX] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let e = rejected(&bytes);
        says(&e, &["exceeds the limit of 100000000"]);
        assert_eq!(e.offset, Some(0));
        official_rejects(&bytes);
    }
    // Exactly the limit is allowed by the limit rule; this one then fails
    // only because the file is shorter than the header it announces.
    let mut bytes = 100_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    says(&rejected(&bytes), &["past the end"]);
}

#[test]
fn rejects_header_running_past_the_end_of_the_file() {
    let mut bytes = 3u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let e = rejected(&bytes);
    says(&e, &["header length 3", "past the end", "10 bytes"]);
    official_rejects(&bytes);
}

#[test]
fn rejects_a_header_that_is_not_utf8() {
    let mut bytes = file(r#"{"__metadata__":{"k":"v?"}}"#, &[]);
    let at = position(&bytes, "v?") as usize + 1;
    bytes[at] = 0xff;
    let e = rejected(&bytes);
    says(&e, &["UTF-8"]);
    assert_eq!(e.offset, Some(at as u64));
    official_rejects(&bytes);
}

#[test]
fn rejects_invalid_json() {
    for (json, at) in [
        (r#"{"a":"#, 5u64),
        (r#"{"a" {}}"#, 5),
        (
            r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},}"#,
            54,
        ),
        ("", 0),
    ] {
        let bytes = file(json, &[]);
        let e = rejected(&bytes);
        says(&e, &["invalid header JSON"]);
        let offset = e.offset.expect("JSON errors carry an offset");
        // Within a byte of the spot (serde_json reports the column it was at).
        assert!(
            (8 + at).abs_diff(offset) <= 1,
            "{json}: offset {offset}, expected about {}",
            8 + at
        );
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_a_top_level_that_is_not_an_object() {
    for json in ["[]", r#""x""#, "null", "1", "true"] {
        let bytes = file(json, &[]);
        let e = rejected(&bytes);
        says(&e, &["invalid header JSON"]);
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_an_entry_missing_a_field() {
    for (json, field) in [
        (r#"{"w":{"shape":[4],"data_offsets":[0,4]}}"#, "dtype"),
        (r#"{"w":{"dtype":"U8","data_offsets":[0,4]}}"#, "shape"),
        (r#"{"w":{"dtype":"U8","shape":[4]}}"#, "data_offsets"),
        (r#"{"w":{}}"#, "dtype"),
    ] {
        let bytes = file(json, &[0; 4]);
        let e = rejected(&bytes);
        says(&e, &["missing field", field]);
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_unknown_or_wrong_case_dtypes() {
    for dtype in ["f32", "F128", "Float32", "bf16", "F8_E4M3fn", "", " F32"] {
        let json = format!(r#"{{"w":{{"dtype":"{dtype}","shape":[1],"data_offsets":[0,4]}}}}"#);
        let bytes = file(&json, &[0; 4]);
        let e = rejected(&bytes);
        says(&e, &["invalid header JSON", "unknown variant"]);
        assert!(e.offset.is_some());
        official_rejects(&bytes);
    }
}

#[test]
fn accepts_every_known_dtype_spelled_exactly() {
    for dtype in Dtype::ALL {
        // Shape [8]: 8 elements of `bits` bits is `bits` whole bytes.
        let bytes_per = dtype.bits() as usize;
        let json = format!(
            r#"{{"w":{{"dtype":"{}","shape":[8],"data_offsets":[0,{bytes_per}]}}}}"#,
            dtype.name()
        );
        let h = accepted(&file(&json, &vec![0; bytes_per]));
        assert_eq!(h.tensor(0).unwrap().dtype(), dtype);
    }
}

#[test]
fn rejects_negative_fractional_and_too_large_numbers() {
    for (shape, offsets) in [
        ("[-1]", "[0,4]"),
        ("[1.5]", "[0,4]"),
        ("[4.0]", "[0,4]"),
        ("[1e0]", "[0,4]"),
        ("[18446744073709551616]", "[0,4]"),
        ("[4]", "[0,4.0]"),
        ("[4]", "[-0.0,4]"),
        ("[4]", "[0,18446744073709551620]"),
        ("[4]", r#"[0,"4"]"#),
        ("[4]", "[null,4]"),
    ] {
        let json = format!(r#"{{"w":{{"dtype":"U8","shape":{shape},"data_offsets":{offsets}}}}}"#);
        let bytes = file(&json, &[0; 4]);
        let e = rejected(&bytes);
        says(&e, &["invalid header JSON"]);
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_data_offsets_not_of_length_2() {
    for offsets in ["[]", "[0]", "[0,4,4]", "[0,2,4]"] {
        let json = format!(r#"{{"w":{{"dtype":"U8","shape":[4],"data_offsets":{offsets}}}}}"#);
        let bytes = file(&json, &[0; 4]);
        says(&rejected(&bytes), &["invalid header JSON"]);
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_metadata_values_that_are_not_strings() {
    for metadata in [
        r#"{"a":1}"#,
        r#"{"a":null}"#,
        r#"{"a":{"b":"c"}}"#,
        r#"{"a":["x"]}"#,
        "[]",
        r#""text""#,
        "7",
    ] {
        let json = format!(r#"{{"__metadata__":{metadata},"w":{U8X4}}}"#);
        let bytes = file(&json, &[0; 4]);
        says(&rejected(&bytes), &["__metadata__"]);
        official_rejects(&bytes);
    }
}

#[test]
fn rejects_a_first_tensor_that_does_not_begin_at_0() {
    let bytes = file(
        r#"{"w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
        &[0; 8],
    );
    let e = rejected(&bytes);
    says(&e, &["hole", "bytes 0..4"]);
    assert_eq!(e.tensor.as_deref(), Some("w"));
    // The file offset where the tensor's bytes begin.
    let data_start = bytes.len() as u64 - 8;
    assert_eq!(e.offset, Some(data_start + 4));
    official_rejects(&bytes);
}

#[test]
fn rejects_a_hole_between_tensors() {
    let bytes = file(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[5,9]}}"#,
        &[0; 9],
    );
    let e = rejected(&bytes);
    says(&e, &["hole", "bytes 4..5"]);
    assert_eq!(e.tensor.as_deref(), Some("b"));
    assert_eq!(e.offset, Some(bytes.len() as u64 - 9 + 5));
    official_rejects(&bytes);
}

#[test]
fn rejects_overlapping_tensors() {
    let bytes = file(
        r#"{"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        &[0; 6],
    );
    let e = rejected(&bytes);
    says(&e, &["overlaps", "tensor `b`"]);
    assert_eq!(e.tensor.as_deref(), Some("b"));
    assert_eq!(e.offset, Some(bytes.len() as u64 - 6 + 2));
    official_rejects(&bytes);
}

#[test]
fn rejects_two_tensors_on_the_same_bytes() {
    let bytes = file(&format!(r#"{{"a":{U8X4},"b":{U8X4}}}"#), &[0; 4]);
    says(&rejected(&bytes), &["overlaps"]);
    official_rejects(&bytes);
}

#[test]
fn rejects_data_offsets_that_end_before_they_begin() {
    let bytes = file(
        r#"{"w":{"dtype":"U8","shape":[4],"data_offsets":[4,0]}}"#,
        &[0; 4],
    );
    let e = rejected(&bytes);
    says(&e, &["[4, 0]", "end before they begin"]);
    assert_eq!(e.tensor.as_deref(), Some("w"));
    assert_eq!(e.offset, Some(position(&bytes, "\"w\"")));
    official_rejects(&bytes);
}

#[test]
fn rejects_element_counts_that_overflow() {
    for (dtype, shape) in [
        ("U8", "[4294967296,4294967296]"),
        ("U8", "[18446744073709551615,2]"),
        // Elements fit in a u64, bits do not.
        ("F64", "[2305843009213693952]"),
        ("F4", "[18446744073709551615]"),
    ] {
        let json = format!(r#"{{"w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,0]}}}}"#);
        let bytes = file(&json, &[]);
        let e = rejected(&bytes);
        says(&e, &["overflows"]);
        assert_eq!(e.tensor.as_deref(), Some("w"));
        official_rejects(&bytes);
    }
    // A zero anywhere makes the count 0, whatever the other dimensions.
    let bytes = file(
        r#"{"w":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}}"#,
        &[],
    );
    assert_eq!(accepted(&bytes).tensor(0).unwrap().byte_len(), 0);
}

#[test]
fn rejects_sub_byte_tensors_that_are_not_whole_bytes() {
    for (dtype, count) in [("F4", 3), ("F4", 1), ("F6_E2M3", 2), ("F6_E3M2", 6)] {
        let json =
            format!(r#"{{"w":{{"dtype":"{dtype}","shape":[{count}],"data_offsets":[0,1]}}}}"#);
        let bytes = file(&json, &[0; 1]);
        let e = rejected(&bytes);
        says(&e, &["not a whole number of bytes"]);
        assert_eq!(e.tensor.as_deref(), Some("w"));
        official_rejects(&bytes);
    }
    // The smallest whole-byte counts are fine: F4 even, F6 multiples of 4.
    for (dtype, count, len) in [("F4", 2, 1), ("F6_E2M3", 4, 3), ("F6_E3M2", 8, 6)] {
        let json =
            format!(r#"{{"w":{{"dtype":"{dtype}","shape":[{count}],"data_offsets":[0,{len}]}}}}"#);
        let bytes = file(&json, &vec![0; len]);
        accepted(&bytes);
        official_accepts(&bytes);
    }
}

#[test]
fn rejects_a_size_that_does_not_match_the_shape() {
    let bytes = file(
        r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    let e = rejected(&bytes);
    says(&e, &["span 4 bytes", "needs 8", "tensor `w`"]);
    assert_eq!(e.offset, Some(position(&bytes, "\"w\"")));
    official_rejects(&bytes);
}

#[test]
fn points_at_the_tensor_entry_not_at_an_equal_string_elsewhere() {
    // The tensor's name also appears earlier as a metadata key and as a
    // dtype value: the offset must be the entry's own key.
    for (json, needle) in [
        (
            r#"{"__metadata__":{"w":"x"},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"w":{"dtype":"U8","shape":[5],"data_offsets":[4,8]}}"#,
            r#""w":{"#,
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"U8":{"dtype":"U8","shape":[5],"data_offsets":[4,8]}}"#,
            r#""U8":{"#,
        ),
        // Spelled with an escape in the header.
        (
            r#"{"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"\u0061":{"dtype":"U8","shape":[5],"data_offsets":[4,8]}}"#,
            r#""\u0061""#,
        ),
    ] {
        let bytes = file(json, &[0; 8]);
        let e = rejected(&bytes);
        assert_eq!(e.offset, Some(position(&bytes, needle)), "{e}");
    }
    // A duplicate: the second key, not a value equal to it.
    let json = r#"{"U8":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"U8":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#;
    let bytes = file(json, &[]);
    let e = rejected(&bytes);
    says(&e, &["duplicate"]);
    assert_eq!(e.offset, Some(position(&bytes, r#"},"U8""#) + 2), "{e}");
}

#[test]
fn rejects_trailing_bytes_after_the_last_tensor() {
    let bytes = file(&format!(r#"{{"w":{U8X4}}}"#), &[0; 5]);
    let e = rejected(&bytes);
    says(&e, &["1 trailing bytes"]);
    assert_eq!(e.offset, Some(bytes.len() as u64 - 1));
    official_rejects(&bytes);
    // Even after an empty header.
    let bytes = file("{}", &[0]);
    says(&rejected(&bytes), &["trailing"]);
    official_rejects(&bytes);
}

#[test]
fn rejects_a_truncated_data_buffer() {
    let bytes = file(&format!(r#"{{"w":{U8X4}}}"#), &[0; 3]);
    let e = rejected(&bytes);
    says(&e, &["truncated"]);
    assert_eq!(e.offset, Some(bytes.len() as u64));
    official_rejects(&bytes);
}

#[test]
fn rejects_duplicate_tensor_names() {
    // Same name twice on disjoint bytes: the official reader keeps the last
    // and its tiling check then fails too, but with a different layout it
    // silently loses a tensor; the format's docs forbid duplicates.
    let json = r#"{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#;
    let bytes = file(json, &[0; 8]);
    let e = rejected(&bytes);
    says(&e, &["duplicate tensor name", "tensor `w`"]);
    // The offset points at the second occurrence.
    let second = position(&bytes, "},\"w\"") + 2;
    assert_eq!(e.offset, Some(second));

    // A duplicate the official reader resolves silently: the first `w` is
    // an empty tensor, so the last one alone tiles the buffer.
    let json = r#"{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
    let bytes = file(json, &[0; 4]);
    says(&rejected(&bytes), &["duplicate tensor name"]);
    assert_eq!(official_accepts(&bytes), 1, "official keeps the last");
}

#[test]
fn rejects_a_duplicate_metadata_key() {
    let json = format!(r#"{{"__metadata__":{{}},"w":{U8X4},"__metadata__":{{"a":"b"}}}}"#);
    let bytes = file(&json, &[0; 4]);
    says(&rejected(&bytes), &["duplicate", "__metadata__"]);
    official_rejects(&bytes);
}

#[test]
fn rejects_a_duplicate_field_in_an_entry() {
    for json in [
        r#"{"w":{"dtype":"U8","dtype":"I8","shape":[4],"data_offsets":[0,4]}}"#,
        r#"{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"data_offsets":[0,4]}}"#,
    ] {
        let bytes = file(json, &[0; 4]);
        says(&rejected(&bytes), &["duplicate field"]);
        official_rejects(&bytes);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "[".repeat(100_000);
    for json in [
        // Inside an unknown key of an entry, which a reader skips.
        format!(r#"{{"w":{{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":{deep}}}}}"#),
        // Inside the metadata.
        format!(r#"{{"__metadata__":{{"a":{deep}}}}}"#),
        // As a tensor entry, and as the whole header.
        format!(r#"{{"w":{deep}}}"#),
        deep.clone(),
        "{\"w\":".repeat(100_000),
    ] {
        let bytes = file(&json, &[0; 4]);
        let e = rejected(&bytes);
        says(&e, &["invalid header JSON"]);
    }
}

// ---- acceptances ----

#[test]
fn accepts_whitespace_around_the_header() {
    let json = format!(" \n\t{{\"w\":{U8X4}}}   \r\n  ");
    let bytes = file(&json, &[1, 2, 3, 4]);
    let h = accepted(&bytes);
    assert_eq!(h.header_len(), json.len() as u64);
    assert_eq!(h.data_start(), 8 + json.len() as u64);
    assert_eq!(official_accepts(&bytes), 1);
}

#[test]
fn accepts_a_header_length_that_is_not_a_multiple_of_8() {
    let json = format!(r#"{{"w":{U8X4}}}"#);
    assert_ne!(json.len() % 8, 0);
    let bytes = file(&json, &[0; 4]);
    assert_eq!(accepted(&bytes).header_len(), json.len() as u64);
    official_accepts(&bytes);
}

#[test]
fn accepts_null_metadata() {
    let bytes = file(&format!(r#"{{"__metadata__":null,"w":{U8X4}}}"#), &[0; 4]);
    let h = accepted(&bytes);
    assert_eq!(h.metadata(), None);
    assert_eq!(h.tensor_count(), 1);
    official_accepts(&bytes);
}

#[test]
fn keeps_metadata_text_as_written() {
    let metadata = r#"{ "b" : "2","a":"caf\u00e9" }"#;
    let bytes = file(
        &format!(r#"{{"w":{U8X4},"__metadata__":{metadata}}}"#),
        &[0; 4],
    );
    assert_eq!(accepted(&bytes).metadata(), Some(metadata));
    official_accepts(&bytes);
}

#[test]
fn accepts_unknown_extra_keys_in_an_entry() {
    let bytes = file(
        r#"{"w":{"dtype":"U8","note":{"deep":[1,{"x":null}]},"shape":[4],"data_offsets":[0,4],"z":"y"}}"#,
        &[0; 4],
    );
    let h = accepted(&bytes);
    assert_eq!(h.tensor(0).unwrap().shape(), [4]);
    official_accepts(&bytes);
}

#[test]
fn accepts_zero_size_tensors_at_any_boundary() {
    let bytes = file(
        r#"{"first":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"mid":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"last":{"dtype":"F4","shape":[0],"data_offsets":[6,6]}}"#,
        &[0; 6],
    );
    let h = accepted(&bytes);
    assert_eq!(h.data_len(), 6);
    assert_eq!(h.tensor_count(), 5);
    assert_eq!(official_accepts(&bytes), 5);
}

#[test]
fn rejects_a_zero_size_tensor_past_the_end_of_the_buffer() {
    // An empty tensor sitting beyond the data buffer leaves a hole.
    let bytes = file(
        &format!(r#"{{"w":{U8X4},"z":{{"dtype":"U8","shape":[0],"data_offsets":[9,9]}}}}"#),
        &[0; 4],
    );
    says(&rejected(&bytes), &["hole"]);
    official_rejects(&bytes);
}

#[test]
fn accepts_scalars() {
    let bytes = file(
        r#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[8,9]}}"#,
        &[0; 9],
    );
    let h = accepted(&bytes);
    assert!(h.tensors().all(|t| t.shape().is_empty()));
    assert_eq!(h.tensor(0).unwrap().byte_len(), 8);
    assert_eq!(official_accepts(&bytes), 2);
}

#[test]
fn accepts_tensors_listed_in_any_order() {
    let bytes = file(
        r#"{"c":{"dtype":"U8","shape":[1],"data_offsets":[5,6]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}"#,
        &[0; 6],
    );
    let h = accepted(&bytes);
    let names: Vec<&str> = h.tensors().map(|t| t.name()).collect();
    assert_eq!(names, ["c", "a", "b"], "listing order is kept");
    assert_eq!(
        (h.tensor(0).unwrap().begin(), h.tensor(0).unwrap().end()),
        (5, 6)
    );
    assert_eq!(official_accepts(&bytes), 3);
}

#[test]
fn accepts_an_empty_header() {
    let bytes = file("{}", &[]);
    let h = accepted(&bytes);
    assert!((h.tensor_count() == 0));
    assert_eq!((h.data_len(), h.file_len()), (0, 10));
    official_accepts(&bytes);
}

#[test]
fn accepts_names_with_escapes_and_unicode() {
    let bytes = file(
        r#"{"a\"b\\c\u00e9\n":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        &[0; 4],
    );
    assert_eq!(accepted(&bytes).tensor(0).unwrap().name(), "a\"b\\cé\n");
    official_accepts(&bytes);
}

#[test]
fn every_rule_has_its_own_error_kind() {
    use trtllm_prune::HeaderErrorKind as Kind;
    let f32_entry = |name: &str, begin: u64, end: u64| {
        format!(r#""{name}":{{"dtype":"F32","shape":[1],"data_offsets":[{begin},{end}]}}"#)
    };
    let cases: Vec<(Vec<u8>, Kind)> = vec![
        (b"\x01\x00".to_vec(), Kind::TooShort),
        ((100_000_001u64).to_le_bytes().to_vec(), Kind::TooLarge),
        (
            {
                let mut b = 64u64.to_le_bytes().to_vec();
                b.extend_from_slice(b"{}");
                b
            },
            Kind::PastEnd,
        ),
        (
            {
                let json = b"{\"a\xff\":1}";
                let mut b = (json.len() as u64).to_le_bytes().to_vec();
                b.extend_from_slice(json);
                b
            },
            Kind::NotUtf8,
        ),
        (file("[]", &[]), Kind::Json),
        (
            file(
                &format!("{{{},{}}}", f32_entry("a", 0, 4), f32_entry("a", 4, 8)),
                &[0; 8],
            ),
            Kind::Duplicate,
        ),
        (
            file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#,
                &[0],
            ),
            Kind::Shape,
        ),
        (
            file(&format!("{{{}}}", f32_entry("a", 0, 8)), &[0; 8]),
            Kind::Offsets,
        ),
        (
            file(
                &format!("{{{},{}}}", f32_entry("a", 0, 4), f32_entry("b", 8, 12)),
                &[0; 12],
            ),
            Kind::Tiling,
        ),
        (
            file(&format!("{{{}}}", f32_entry("a", 0, 4)), &[0; 5]),
            Kind::FileLength,
        ),
    ];
    for (bytes, kind) in cases {
        let e = rejected(&bytes);
        assert_eq!(e.kind, kind, "{e}");
    }
}

#[test]
fn rejects_a_shape_of_more_than_32_dimensions() {
    // 32 dimensions of 1 are read (one byte of data); 33 are not, though
    // the official reader takes them: a bound on what a header costs to hold.
    let dims = |n: usize| vec!["1"; n].join(",");
    let ok = format!(
        r#"{{"t":{{"dtype":"U8","shape":[{}],"data_offsets":[0,1]}}}}"#,
        dims(32)
    );
    let bytes = file(&ok, &[7]);
    official_accepts(&bytes);
    assert_eq!(accepted(&bytes).tensor(0).unwrap().shape().len(), 32);
    let json = format!(
        r#"{{"many":{{"dtype":"U8","shape":[{}],"data_offsets":[0,1]}}}}"#,
        dims(33)
    );
    let bytes = file(&json, &[7]);
    official_accepts(&bytes);
    let e = rejected(&bytes);
    says(&e, &["`many`", "33 dimensions", "at most 32"]);
}
