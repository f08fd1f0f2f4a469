//! Writing a safetensors header's JSON, compact, as the official writer
//! spells it: `{"name":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},...}`.
//! The one writer behind the planner's output headers and the test
//! fixtures' input headers.

use crate::read::header::Dtype;

/// A header being written, member by member.
pub(crate) struct HeaderJson {
    out: Vec<u8>,
    first: bool,
}

impl HeaderJson {
    /// A header on its own (the test fixtures' input headers).
    #[cfg(feature = "fixture")]
    pub fn with_capacity(capacity: usize) -> HeaderJson {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        HeaderJson { out, first: true }
    }

    /// A header written after 8 zero bytes, for the caller to fill with the
    /// length prefix: the file's first bytes in one buffer.
    pub fn after_prefix(capacity: usize) -> HeaderJson {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&[0; 8]);
        out.push(b'{');
        HeaderJson { out, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// The `__metadata__` member, its value given as JSON text (kept
    /// verbatim from an input).
    pub fn metadata_raw(&mut self, value: &str) {
        self.separate();
        self.out.extend_from_slice(b"\"__metadata__\":");
        self.out.extend_from_slice(value.as_bytes());
    }

    /// One tensor entry.
    pub fn tensor(&mut self, name: &str, dtype: Dtype, shape: &[u64], begin: u64, end: u64) {
        self.separate();
        write_json_str(&mut self.out, name);
        self.out.extend_from_slice(b":{\"dtype\":\"");
        self.out.extend_from_slice(dtype.name().as_bytes());
        self.out.extend_from_slice(b"\",\"shape\":");
        write_u64_list(&mut self.out, shape);
        self.out.extend_from_slice(b",\"data_offsets\":");
        write_u64_list(&mut self.out, &[begin, end]);
        self.out.push(b'}');
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

fn write_u64_list(out: &mut Vec<u8>, values: &[u64]) {
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_u64(out, *v);
    }
    out.push(b']');
}

/// `text` as a JSON string. Text that needs no escape (every real tensor
/// name) is copied as it is, which is what serde_json writes for it too.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // A fold without an early exit, so the check runs on whole vectors.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a &str into a Vec cannot fail.
        serde_json::to_writer(out, text).expect("string serializes");
    }
}

/// Decimal digits of `v`, without going through `fmt` (a 20,000-tensor
/// header has over 100,000 numbers).
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
