//! The safetensors header reader: a pure function from bytes to a validated
//! [`Header`], with no I/O inside.
//!
//! Layout of a safetensors file: an 8-byte little-endian `u64` N, then N bytes
//! of UTF-8 JSON (the header), then the data buffer. `data_offsets` in the
//! header are relative to the start of the data buffer.
//!
//! Invariants of a [`Header`] returned by [`parse_header`]:
//! - every tensor name is unique (the official reader silently keeps the last
//!   of a duplicated name; we reject it, as the format's docs require);
//! - sorted by `(begin, end)`, the tensors tile `0..data_len` exactly;
//! - every tensor's byte size equals its element count times its dtype's bits
//!   divided by 8, computed without overflow;
//! - `8 + N + data_len` equals the file length.
//!
//! Every arithmetic step on numbers from the file is checked: a crafted header
//! gives a [`HeaderError`], never a panic, in debug and release builds alike.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::base::shown::shown;
use crate::read::json_scan::top_level_members;

/// Bytes taken by the header length prefix.
pub const N_LEN: u64 = 8;

/// Largest header the official reader accepts (its `MAX_HEADER_SIZE`).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// The reserved top-level key holding free-form string metadata.
pub const METADATA_KEY: &str = "__metadata__";

/// Element types of the safetensors format, spelled as in the header.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[non_exhaustive]
pub enum Dtype {
    /// Booleans, one byte each.
    BOOL,
    /// 4-bit floats (E2M1), two per byte.
    F4,
    /// 6-bit floats, 2-bit exponent.
    F6_E2M3,
    /// 6-bit floats, 3-bit exponent.
    F6_E3M2,
    /// Unsigned 8-bit integers.
    U8,
    /// Signed 8-bit integers.
    I8,
    /// 8-bit floats, 5-bit exponent.
    F8_E5M2,
    /// 8-bit floats, 4-bit exponent.
    F8_E4M3,
    /// 8-bit exponent-only scales.
    F8_E8M0,
    /// 8-bit floats, 4-bit exponent, finite, no negative zero.
    F8_E4M3FNUZ,
    /// 8-bit floats, 5-bit exponent, finite, no negative zero.
    F8_E5M2FNUZ,
    /// Signed 16-bit integers.
    I16,
    /// Unsigned 16-bit integers.
    U16,
    /// IEEE half precision.
    F16,
    /// Brain floating point, 16 bits.
    BF16,
    /// Signed 32-bit integers.
    I32,
    /// Unsigned 32-bit integers.
    U32,
    /// IEEE single precision.
    F32,
    /// Complex numbers of two F32.
    C64,
    /// IEEE double precision.
    F64,
    /// Signed 64-bit integers.
    I64,
    /// Unsigned 64-bit integers.
    U64,
}

impl Dtype {
    /// Every dtype, in the order of the enum.
    pub const ALL: [Dtype; 22] = [
        Dtype::BOOL,
        Dtype::F4,
        Dtype::F6_E2M3,
        Dtype::F6_E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// Width of one element in bits.
    pub fn bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6_E2M3 | Dtype::F6_E3M2 => 6,
            Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => 8,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }

    /// The dtype spelled `name` in a header (exact case), if any.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dtype's spelling in a header.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::BOOL => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6_E2M3 => "F6_E2M3",
            Dtype::F6_E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8_E5M2 => "F8_E5M2",
            Dtype::F8_E4M3 => "F8_E4M3",
            Dtype::F8_E8M0 => "F8_E8M0",
            Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor as listed in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name, as the header spells it.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its dimensions (`[]` for a scalar).
    pub shape: Vec<u64>,
    /// Start of the tensor's bytes, relative to the data buffer.
    pub begin: u64,
    /// End (exclusive) of the tensor's bytes, relative to the data buffer.
    pub end: u64,
}

impl TensorEntry {
    /// Byte length of the tensor's data (validated to match its shape).
    pub fn byte_len(&self) -> u64 {
        self.end - self.begin
    }
}

/// A validated safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// N: the length of the JSON header in bytes, as stored in the prefix.
    pub header_len: u64,
    /// The `__metadata__` value exactly as written in the input (its JSON
    /// text), validated to be `null` or an object of strings.
    pub metadata: Option<String>,
    /// Tensors in the order the header lists them.
    pub tensors: Vec<TensorEntry>,
    /// Length of the data buffer: the end of the last tensor.
    pub data_len: u64,
}

impl Header {
    /// File offset of the first byte of the data buffer.
    pub fn data_start(&self) -> u64 {
        // Cannot overflow: header_len <= MAX_HEADER_SIZE.
        N_LEN + self.header_len
    }

    /// Total file length this header describes.
    pub fn file_len(&self) -> u64 {
        // Validated against the real file length in `parse_header`.
        self.data_start() + self.data_len
    }
}

/// Which format rule a header breaks (see docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderErrorKind {
    /// The file is shorter than the 8-byte length prefix.
    TooShort,
    /// The header length is over 100,000,000 bytes (`MAX_HEADER_SIZE`).
    TooLarge,
    /// The header runs past the end of the file.
    PastEnd,
    /// The header is not UTF-8.
    NotUtf8,
    /// Not JSON, or not the format's JSON (a missing field, an unknown
    /// dtype, a number that is negative, fractional or too large, ...).
    Json,
    /// A tensor name, or `__metadata__`, appears twice.
    Duplicate,
    /// A shape whose size overflows or is not a whole number of bytes.
    Shape,
    /// `data_offsets` that end before they begin, or span the wrong size.
    Offsets,
    /// Sorted by offsets, the tensors leave a hole or overlap.
    Tiling,
    /// The file is shorter or longer than the header describes.
    FileLength,
}

/// What is wrong with a header, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// The rule broken, for callers and tests to match on.
    pub kind: HeaderErrorKind,
    /// The message, without the position.
    pub problem: String,
    /// The tensor the problem is about, when there is one.
    pub tensor: Option<String>,
    /// Byte offset in the file where the problem is, when known.
    pub offset: Option<u64>,
}

impl HeaderError {
    fn new(kind: HeaderErrorKind, problem: impl Into<String>) -> Self {
        HeaderError {
            kind,
            problem: problem.into(),
            tensor: None,
            offset: None,
        }
    }

    fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    fn tensor(mut self, name: &str) -> Self {
        self.tensor = Some(name.to_string());
        self
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        match (&self.tensor, self.offset) {
            (Some(t), Some(o)) => write!(f, " (tensor `{}`, byte {o})", shown(t)),
            (Some(t), None) => write!(f, " (tensor `{}`)", shown(t)),
            (None, Some(o)) => write!(f, " (byte {o})"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Reads the header length N from the first bytes of a file and checks it
/// against the official reader's limits and the file length.
pub fn header_len_from_prefix(prefix: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    let n = match prefix.first_chunk() {
        Some(bytes) if file_len >= N_LEN => u64::from_le_bytes(*bytes),
        _ => {
            return Err(HeaderError::new(
                HeaderErrorKind::TooShort,
                format!(
                    "file too short for a safetensors header: {file_len} bytes, need at least 8"
                ),
            )
            .at(0))
        }
    };
    if n > MAX_HEADER_SIZE {
        return Err(HeaderError::new(
            HeaderErrorKind::TooLarge,
            format!("header length {n} exceeds the limit of {MAX_HEADER_SIZE} bytes"),
        )
        .at(0));
    }
    // n <= MAX_HEADER_SIZE, so the addition cannot overflow.
    if N_LEN + n > file_len {
        return Err(HeaderError::new(
            HeaderErrorKind::PastEnd,
            format!("header length {n} runs past the end of the file ({file_len} bytes)"),
        )
        .at(0));
    }
    Ok(n)
}

/// Parses and validates a whole safetensors file held in memory.
#[cfg(any(test, feature = "fixture"))]
pub fn parse_file(bytes: &[u8]) -> Result<Header, HeaderError> {
    let file_len = bytes.len() as u64;
    let n = header_len_from_prefix(bytes, file_len)?;
    // header_len_from_prefix checked that 8 + n fits in the buffer.
    let json = &bytes[N_LEN as usize..(N_LEN + n) as usize];
    parse_header(json, file_len)
}

/// Parses and validates the N header bytes (the JSON text after the length
/// prefix) of a file that is `file_len` bytes long.
pub fn parse_header(json: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    parse_header_by(json, file_len, true)
}

/// [`parse_file`] with serde_json reading every header, for tests that
/// check the fast scan against it.
#[cfg(feature = "fixture")]
pub fn parse_file_without_fast_scan(bytes: &[u8]) -> Result<Header, HeaderError> {
    let n = header_len_from_prefix(bytes, bytes.len() as u64)?;
    parse_header_by(
        &bytes[N_LEN as usize..(N_LEN + n) as usize],
        bytes.len() as u64,
        false,
    )
}

fn parse_header_by(json: &[u8], file_len: u64, fast_scan: bool) -> Result<Header, HeaderError> {
    let header_len = json.len() as u64;
    if header_len > MAX_HEADER_SIZE {
        return Err(HeaderError::new(
            HeaderErrorKind::TooLarge,
            format!("header length {header_len} exceeds the limit of {MAX_HEADER_SIZE} bytes"),
        )
        .at(0));
    }
    let text = std::str::from_utf8(json).map_err(|e| {
        HeaderError::new(HeaderErrorKind::NotUtf8, "header is not valid UTF-8")
            .at(N_LEN + e.valid_up_to() as u64)
    })?;
    // The common shape of a header (plain names, integers, known fields)
    // takes a fast scan; anything else, valid or not, goes to serde_json,
    // which parses every value in full (unknown keys of a tensor entry
    // included, as `WellFormed`), as the official reader does.
    let scanned = if fast_scan { simple::scan(text) } else { None };
    let raw = match scanned {
        Some(raw) => raw,
        None => serde_json::from_str::<RawHeader>(text).map_err(|e| json_error(text, &e))?,
    };
    let RawHeader {
        metadata,
        tensors,
        duplicate_metadata,
    } = raw;
    let duplicate = if duplicate_metadata {
        Some(METADATA_KEY.to_string())
    } else {
        first_duplicate(&tensors)
    };
    if let Some(name) = duplicate {
        let mut err = if name == METADATA_KEY {
            HeaderError::new(HeaderErrorKind::Duplicate, "duplicate `__metadata__` key")
        } else {
            HeaderError::new(HeaderErrorKind::Duplicate, "duplicate tensor name").tensor(&name)
        };
        err.offset = locate_key(text, &name, 1);
        return Err(err);
    }
    let data_start = N_LEN + header_len;
    for t in &tensors {
        let entry_error = |kind: HeaderErrorKind, problem: String| {
            let mut err = HeaderError::new(kind, problem).tensor(&t.name);
            err.offset = locate_key(text, &t.name, 0);
            err
        };
        let (begin, end) = (t.begin, t.end);
        let byte_len = tensor_byte_len(t.dtype, &t.shape)
            .map_err(|problem| entry_error(HeaderErrorKind::Shape, problem))?;
        if end < begin {
            return Err(entry_error(
                HeaderErrorKind::Offsets,
                format!("data_offsets [{begin}, {end}] end before they begin"),
            ));
        }
        if end - begin != byte_len {
            return Err(entry_error(
                HeaderErrorKind::Offsets,
                format!(
                    "data_offsets [{begin}, {end}] span {} bytes but {} {:?} needs {byte_len}",
                    end - begin,
                    t.dtype,
                    t.shape
                ),
            ));
        }
    }
    let data_len = check_tiling(&tensors, data_start)?;
    let expected = data_start.checked_add(data_len).ok_or_else(|| {
        HeaderError::new(
            HeaderErrorKind::FileLength,
            format!("data buffer of {data_len} bytes overflows a file offset"),
        )
    })?;
    if expected != file_len {
        let problem = if expected > file_len {
            format!(
                "file is truncated: the header describes {expected} bytes but the file has {file_len}"
            )
        } else {
            format!(
                "{} trailing bytes after the last tensor (the header describes {expected} bytes, the file has {file_len})",
                file_len - expected
            )
        };
        return Err(
            HeaderError::new(HeaderErrorKind::FileLength, problem).at(expected.min(file_len))
        );
    }
    Ok(Header {
        header_len,
        metadata,
        tensors,
        data_len,
    })
}

/// Byte size of a tensor of `dtype` and `shape`, or why it has none.
pub fn tensor_byte_len(dtype: Dtype, shape: &[u64]) -> Result<u64, String> {
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows the element count"))?;
    let bits = elements
        .checked_mul(dtype.bits())
        .ok_or_else(|| format!("shape {shape:?} of {dtype} overflows the bit count"))?;
    if bits % 8 != 0 {
        return Err(format!(
            "shape {shape:?} of {dtype} is {bits} bits, not a whole number of bytes"
        ));
    }
    Ok(bits / 8)
}

/// Checks that the tensors, sorted by offsets, tile the data buffer exactly,
/// and returns the buffer length.
fn check_tiling(tensors: &[TensorEntry], data_start: u64) -> Result<u64, HeaderError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    // Writers list tensors in data order, so the sort is usually skipped.
    let key = |i: usize| (tensors[i].begin, tensors[i].end);
    if !order.windows(2).all(|w| key(w[0]) <= key(w[1])) {
        order.sort_unstable_by_key(|&i| key(i));
    }
    let mut next = 0u64;
    for &i in &order {
        let t = &tensors[i];
        if t.begin != next {
            let problem = if t.begin > next {
                format!(
                    "hole in the data buffer: bytes {next}..{} belong to no tensor",
                    t.begin
                )
            } else {
                format!(
                    "tensor overlaps the previous one: it begins at {} but the previous ends at {next}",
                    t.begin
                )
            };
            return Err(HeaderError::new(HeaderErrorKind::Tiling, problem)
                .tensor(&t.name)
                .at(data_start.saturating_add(t.begin)));
        }
        next = t.end;
    }
    Ok(next)
}

/// File offset of the `nth` (0-based) top-level key of the header text that
/// is `name` (however its escapes spell it). Only used to point at an error.
fn locate_key(text: &str, name: &str, nth: usize) -> Option<u64> {
    // A plain search for the quoted name would also find it as a metadata
    // key or a dtype value.
    let member = top_level_members(text)?
        .into_iter()
        .filter(|m| {
            serde_json::from_str::<String>(&text[m.key.0..m.key.1]).is_ok_and(|key| key == name)
        })
        .nth(nth)?;
    Some(N_LEN + member.key.0 as u64)
}

/// Converts a serde_json error into a header error at a file byte offset.
fn json_error(text: &str, e: &serde_json::Error) -> HeaderError {
    let offset = byte_offset_of(text, e.line(), e.column());
    // serde_json appends " at line L column C"; we give a byte offset instead.
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    };
    HeaderError::new(
        HeaderErrorKind::Json,
        format!("invalid header JSON: {message}"),
    )
    .at(N_LEN + offset as u64)
}

/// Byte index in `text` of serde_json's 1-based `line` and `column`.
fn byte_offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    line_start
        .saturating_add(column.saturating_sub(1))
        .min(text.len())
}

/// Any JSON value, parsed in full and thrown away: nesting within serde_json's
/// depth limit, strings valid (no lone surrogates), numbers finite. This is
/// what the official reader demands of every value, since it buffers them
/// all (regression: `unknown_keys_are_fully_parsed` in tests/differential.rs).
struct WellFormed;

impl<'de> Deserialize<'de> for WellFormed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WellFormedVisitor)
    }
}

struct WellFormedVisitor;

impl<'de> Visitor<'de> for WellFormedVisitor {
    type Value = WellFormed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_i64<E>(self, _: i64) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_u64<E>(self, _: u64) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_f64<E>(self, _: f64) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_str<E>(self, _: &str) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_unit<E>(self) -> Result<WellFormed, E> {
        Ok(WellFormed)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<WellFormed, A::Error> {
        while seq.next_element::<WellFormed>()?.is_some() {}
        Ok(WellFormed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WellFormed, A::Error> {
        while map.next_entry::<WellFormed, WellFormed>()?.is_some() {}
        Ok(WellFormed)
    }
}

/// A tensor entry as deserialized. Unknown extra keys are allowed, like the
/// official reader allows them, but their values are parsed in full
/// ([`WellFormed`]): the official reader buffers and so checks every value.
/// Like a derived struct, the entry may also be written as an array of the
/// three fields in order.
struct RawTensor {
    dtype: Dtype,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

const TENSOR_FIELDS: &[&str] = &["dtype", "shape", "data_offsets"];

/// A key of a tensor entry.
enum TensorField {
    Dtype,
    Shape,
    DataOffsets,
    Other,
}

impl<'de> Deserialize<'de> for TensorField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = TensorField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<TensorField, E> {
                Ok(match v {
                    "dtype" => TensorField::Dtype,
                    "shape" => TensorField::Shape,
                    "data_offsets" => TensorField::DataOffsets,
                    _ => TensorField::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for RawTensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("TensorInfo", TENSOR_FIELDS, RawTensorVisitor)
    }
}

struct RawTensorVisitor;

impl<'de> Visitor<'de> for RawTensorVisitor {
    type Value = RawTensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor entry with dtype, shape and data_offsets")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTensor, A::Error> {
        let (mut dtype, mut shape, mut data_offsets) = (None, None, None);
        while let Some(field) = map.next_key::<TensorField>()? {
            match field {
                TensorField::Dtype if dtype.is_some() => {
                    return Err(de::Error::duplicate_field("dtype"))
                }
                TensorField::Shape if shape.is_some() => {
                    return Err(de::Error::duplicate_field("shape"))
                }
                TensorField::DataOffsets if data_offsets.is_some() => {
                    return Err(de::Error::duplicate_field("data_offsets"))
                }
                TensorField::Dtype => dtype = Some(map.next_value()?),
                TensorField::Shape => shape = Some(map.next_value()?),
                TensorField::DataOffsets => data_offsets = Some(map.next_value()?),
                TensorField::Other => {
                    map.next_value::<WellFormed>()?;
                }
            }
        }
        Ok(RawTensor {
            dtype: dtype.ok_or_else(|| de::Error::missing_field("dtype"))?,
            shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
            data_offsets: data_offsets.ok_or_else(|| de::Error::missing_field("data_offsets"))?,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawTensor, A::Error> {
        let expected = &"a tensor entry with dtype, shape and data_offsets";
        let dtype = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, expected))?;
        let shape = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, expected))?;
        let data_offsets = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(2, expected))?;
        Ok(RawTensor {
            dtype,
            shape,
            data_offsets,
        })
    }
}

/// The top-level object, read key by key so that duplicate names and the
/// position of each entry are seen (a map type would silently merge them).
struct RawHeader {
    metadata: Option<String>,
    /// In listing order; offsets not validated yet.
    tensors: Vec<TensorEntry>,
    /// `__metadata__` appears more than once.
    duplicate_metadata: bool,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawHeaderVisitor)
    }
}

struct RawHeaderVisitor;

impl<'de> Visitor<'de> for RawHeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping tensor names to tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut metadata: Option<Option<String>> = None;
        let mut tensors: Vec<TensorEntry> = Vec::new();
        let mut duplicate_metadata = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == METADATA_KEY {
                let raw: Option<Box<RawValue>> = map.next_value()?;
                let text = raw.map(|r| r.get().to_string());
                if let Some(t) = &text {
                    validate_metadata(t).map_err(de::Error::custom)?;
                }
                duplicate_metadata |= metadata.is_some();
                metadata = Some(text);
            } else {
                let raw: RawTensor = map.next_value()?;
                let [begin, end] = raw.data_offsets;
                tensors.push(TensorEntry {
                    name: key,
                    dtype: raw.dtype,
                    shape: raw.shape,
                    begin,
                    end,
                });
            }
        }
        Ok(RawHeader {
            metadata: metadata.flatten(),
            tensors,
            duplicate_metadata,
        })
    }
}

/// The first tensor name listed twice, if any.
fn first_duplicate(tensors: &[TensorEntry]) -> Option<String> {
    // std's hasher is keyed with random bits per process: names crafted to
    // collide (which would make the check quadratic on a 100 MB header)
    // cannot be made ahead of a run.
    let mut seen: HashSet<&str> = HashSet::with_capacity(tensors.len());
    tensors
        .iter()
        .find(|t| !seen.insert(t.name.as_str()))
        .map(|t| t.name.clone())
}

fn validate_metadata(text: &str) -> Result<(), String> {
    serde_json::from_str::<std::collections::HashMap<String, String>>(text)
        .map(|_| ())
        .map_err(|e| format!("`__metadata__` must be an object of strings: {e}"))
}

/// A fast scan for the shape nearly every real header has: names and
/// metadata strings without escapes or control characters, non-negative
/// integers written plainly, tensor entries with exactly `dtype`, `shape`
/// and `data_offsets`, `__metadata__` null or an object of such strings.
/// Everything it accepts is valid JSON that serde_json reads to the same
/// [`RawHeader`]; on anything else it returns `None` and serde_json decides
/// (regression: `fast_scan_agrees_with_serde` in tests/differential.rs).
mod simple {
    use super::{Dtype, RawHeader, TensorEntry, METADATA_KEY};

    pub(super) fn scan(text: &str) -> Option<RawHeader> {
        let mut s = Scanner {
            text,
            b: text.as_bytes(),
            i: 0,
        };
        let header = s.header()?;
        s.ws();
        (s.i == s.b.len()).then_some(header)
    }

    /// Index of the first `"`, `\\` or control byte, eight bytes at a time.
    fn special_byte(b: &[u8]) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        let mut i = 0;
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            // Bytes below 0x20, equal to '"', or equal to '\\'.
            let below = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
            if (below | has_zero(w ^ (ONES * 0x22)) | has_zero(w ^ (ONES * 0x5c))) != 0 {
                break;
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|p| i + p)
    }

    struct Scanner<'a> {
        text: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Scanner<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        /// A string without escapes or control characters.
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            let len = special_byte(&self.b[start..])?;
            if self.b[start + len] != b'"' {
                return None;
            }
            self.i = start + len + 1;
            // Quotes are ASCII, so these are char boundaries.
            self.text.get(start..start + len)
        }

        /// A non-negative integer written plainly (no sign, fraction,
        /// exponent or leading zero) that fits in a u64.
        fn integer(&mut self) -> Option<u64> {
            self.ws();
            let start = self.i;
            let mut value: u64 = 0;
            while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
                value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                self.i += 1;
            }
            let digits = self.i - start;
            let leading_zero = digits > 1 && self.b[start] == b'0';
            let more = matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
            (digits > 0 && !leading_zero && !more).then_some(value)
        }

        fn integers(&mut self) -> Option<Vec<u64>> {
            self.eat(b'[')?;
            let mut values = Vec::new();
            if self.peek()? == b']' {
                self.i += 1;
                return Some(values);
            }
            loop {
                values.push(self.integer()?);
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        return Some(values);
                    }
                    _ => return None,
                }
            }
        }

        /// `[begin, end]`: two integers, without building a list.
        fn pair(&mut self) -> Option<(u64, u64)> {
            self.eat(b'[')?;
            let begin = self.integer()?;
            self.eat(b',')?;
            let end = self.integer()?;
            self.eat(b']')?;
            Some((begin, end))
        }

        /// Ends a member: `,` then another, or the closing `}`.
        fn next_member(&mut self) -> Option<bool> {
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    Some(true)
                }
                b'}' => {
                    self.i += 1;
                    Some(false)
                }
                _ => None,
            }
        }

        fn header(&mut self) -> Option<RawHeader> {
            self.eat(b'{')?;
            let mut header = RawHeader {
                metadata: None,
                tensors: Vec::with_capacity(self.b.len() / 96),
                duplicate_metadata: false,
            };
            let mut seen_metadata = false;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(header);
            }
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                if key == METADATA_KEY {
                    if seen_metadata {
                        return None;
                    }
                    seen_metadata = true;
                    header.metadata = self.metadata()?;
                } else {
                    header.tensors.push(self.entry(key)?);
                }
                if !self.next_member()? {
                    return Some(header);
                }
            }
        }

        /// `null`, or an object of plain strings, kept as its exact text.
        fn metadata(&mut self) -> Option<Option<String>> {
            if self.peek()? == b'n' {
                let rest = self.b.get(self.i..self.i + 4)?;
                let after = self.b.get(self.i + 4).copied();
                if rest == b"null" && !after.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.i += 4;
                    return Some(None);
                }
                return None;
            }
            self.eat(b'{')?;
            let start = self.i - 1;
            if self.peek()? != b'}' {
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.string()?;
                    if !self.next_member()? {
                        break;
                    }
                }
            } else {
                self.i += 1;
            }
            Some(Some(self.text.get(start..self.i)?.to_string()))
        }

        fn entry(&mut self, name: &str) -> Option<TensorEntry> {
            self.eat(b'{')?;
            let (mut dtype, mut shape, mut offsets) = (None, None, None);
            loop {
                match self.string()? {
                    "dtype" if dtype.is_none() => {
                        let word = self.after_colon(Self::string)?;
                        dtype = Some(Dtype::from_name(word)?);
                    }
                    "shape" if shape.is_none() => shape = Some(self.after_colon(Self::integers)?),
                    "data_offsets" if offsets.is_none() => {
                        offsets = Some(self.after_colon(Self::pair)?);
                    }
                    _ => return None,
                }
                if !self.next_member()? {
                    break;
                }
            }
            let (begin, end) = offsets?;
            Some(TensorEntry {
                name: name.to_string(),
                dtype: dtype?,
                shape: shape?,
                begin,
                end,
            })
        }

        fn after_colon<T>(&mut self, value: fn(&mut Self) -> Option<T>) -> Option<T> {
            self.eat(b':')?;
            value(self)
        }
    }
}
