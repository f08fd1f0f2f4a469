//! What a safetensors header says, as validated types: [`Header`] and its
//! [`TensorEntry`]s, [`Dtype`], and [`HeaderError`] for a header that breaks
//! a rule. The reader that builds them is [`parse_header`] (in
//! `header/parse.rs`, with its two front ends: the fast scan of common
//! headers, `header/fast_scan.rs`, and serde_json for everything else,
//! `header/visitors.rs`).
//!
//! Layout of a safetensors file: an 8-byte little-endian `u64` N, then N bytes
//! of UTF-8 JSON (the header), then the data buffer. `data_offsets` in the
//! header are relative to the start of the data buffer.
//!
//! Invariants of a [`Header`], which only the parser builds (its fields are
//! private, so no other code can break them):
//! - every tensor name is unique (the official reader silently keeps the last
//!   of a duplicated name; we reject it, as the format's docs require);
//! - sorted by `(begin, end)`, the tensors tile `0..data_len` exactly;
//! - every tensor's byte size equals its element count times its dtype's bits
//!   divided by 8, computed without overflow;
//! - `8 + N + data_len` equals the file length.
//!
//! Memory: a header of a million tensors is held in a few flat arrays (all
//! names in one string, all shapes in one `Vec<u64>`, 32 bytes per tensor
//! besides), not in a `String` and a `Vec` per tensor: the bound of
//! docs/BENCHMARKS.md (peak memory at most 4 x the header bytes + 64 MiB)
//! leaves no room for per-tensor allocations (regression:
//! `a_header_holds_no_allocation_per_tensor` in tests/header_memory.rs).
//!
//! Every arithmetic step on numbers from the file is checked: a crafted header
//! gives a [`HeaderError`], never a panic, in debug and release builds alike.

mod fast_scan;
mod parse;
mod visitors;

use std::fmt;

use serde::Deserialize;

use crate::base::shown::shown;

#[cfg(any(test, feature = "fixture"))]
pub use parse::parse_file;
#[cfg(feature = "fixture")]
pub use parse::parse_file_without_fast_scan;
pub use parse::{header_len_from_prefix, parse_header};

/// Bytes taken by the header length prefix.
pub const N_LEN: u64 = 8;

/// Largest header the official reader accepts (its `MAX_HEADER_SIZE`).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// Most dimensions a tensor's shape may have (numpy's classic limit;
/// TensorRT's is 8). The official reader sets none; this bound keeps a
/// parsed header within 4 x its bytes (a dimension is 2 bytes of JSON at
/// the least and 8 in memory: only a bounded count per tensor, beside the
/// entry's fixed fields, keeps the ratio).
pub const MAX_DIMS: usize = 32;

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

/// One tensor as listed in a header: a view into its [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorEntry<'a> {
    name: &'a str,
    dtype: Dtype,
    shape: &'a [u64],
    begin: u64,
    end: u64,
}

impl<'a> TensorEntry<'a> {
    /// The tensor's name, unescaped.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Dimensions, outermost first (empty for a scalar).
    pub fn shape(&self) -> &'a [u64] {
        self.shape
    }

    /// Start of the tensor's bytes, relative to the data buffer.
    pub fn begin(&self) -> u64 {
        self.begin
    }

    /// End (exclusive) of the tensor's bytes, relative to the data buffer.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Byte length of the tensor's data (validated to match its shape).
    pub fn byte_len(&self) -> u64 {
        self.end - self.begin
    }

    /// An entry that no header holds, for unit tests of code that takes
    /// entries.
    #[cfg(test)]
    pub(crate) fn for_test(name: &'a str, dtype: Dtype, shape: &'a [u64], begin: u64) -> Self {
        let len = tensor_byte_len(dtype, shape).expect("test shape is valid");
        TensorEntry {
            name,
            dtype,
            shape,
            begin,
            end: begin + len,
        }
    }
}

/// The tensors of a header in listing order, in one flat form: every name
/// in one string, every shape in one list, and for each tensor where its
/// name and shape end.
#[derive(Clone, Default, PartialEq, Eq)]
struct TensorList {
    names: String,
    dims: Vec<u64>,
    slots: Vec<Slot>,
}

/// One tensor of a [`TensorList`]: 32 bytes. Its name and shape start
/// where the previous tensor's end. The ends fit 32 bits because a header
/// is at most [`MAX_HEADER_SIZE`] bytes and every name byte and every
/// dimension takes at least one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    begin: u64,
    end: u64,
    name_end: u32,
    shape_end: u32,
    dtype: Dtype,
}

impl TensorList {
    fn with_capacity(tensors: usize) -> TensorList {
        TensorList {
            names: String::new(),
            dims: Vec::new(),
            slots: Vec::with_capacity(tensors),
        }
    }

    /// Adds one dimension to the shape of the tensor [`TensorList::push`]
    /// adds next.
    fn push_dim(&mut self, dim: u64) {
        self.dims.push(dim);
    }

    /// Adds a tensor whose shape is the dimensions pushed since the last
    /// one; `None` if the list outgrows 32-bit ends (which no header within
    /// [`MAX_HEADER_SIZE`] can make it do).
    fn push(&mut self, name: &str, dtype: Dtype, begin: u64, end: u64) -> Option<()> {
        self.names.push_str(name);
        self.slots.push(Slot {
            begin,
            end,
            name_end: u32::try_from(self.names.len()).ok()?,
            shape_end: u32::try_from(self.dims.len()).ok()?,
            dtype,
        });
        Some(())
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Gives back the capacity the parser's estimate left over.
    fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.dims.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    fn iter(&self) -> Tensors<'_> {
        Tensors {
            list: self,
            next: 0,
            name_start: 0,
            shape_start: 0,
        }
    }
}

/// The tensors of a [`Header`], in listing order ([`Header::tensors`]).
#[derive(Clone)]
pub struct Tensors<'a> {
    list: &'a TensorList,
    next: usize,
    name_start: usize,
    shape_start: usize,
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorEntry<'a>;

    fn next(&mut self) -> Option<TensorEntry<'a>> {
        let slot = *self.list.slots.get(self.next)?;
        let (name_end, shape_end) = (slot.name_end as usize, slot.shape_end as usize);
        // Ends only grow and fall on the names pushed (char boundaries).
        let entry = TensorEntry {
            name: &self.list.names[self.name_start..name_end],
            dtype: slot.dtype,
            shape: &self.list.dims[self.shape_start..shape_end],
            begin: slot.begin,
            end: slot.end,
        };
        self.next += 1;
        (self.name_start, self.shape_start) = (name_end, shape_end);
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.list.slots.len() - self.next;
        (left, Some(left))
    }

    /// In constant time: where the tensor before ends is all it needs.
    fn nth(&mut self, n: usize) -> Option<TensorEntry<'a>> {
        let i = self.next.saturating_add(n);
        if let Some(before) = i.checked_sub(1).and_then(|b| self.list.slots.get(b)) {
            self.name_start = before.name_end as usize;
            self.shape_start = before.shape_end as usize;
        }
        self.next = i.min(self.list.slots.len());
        self.next()
    }
}

impl ExactSizeIterator for Tensors<'_> {}

impl fmt::Debug for Tensors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// A validated safetensors header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    header_len: u64,
    metadata: Option<String>,
    tensors: TensorList,
    data_len: u64,
}

impl Header {
    /// N: the length of the JSON header in bytes, as stored in the prefix.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// The `__metadata__` value exactly as written in the input (its JSON
    /// text), validated to be `null` or an object of strings; `None` when
    /// absent or `null`.
    pub fn metadata(&self) -> Option<&str> {
        self.metadata.as_deref()
    }

    /// Tensors in the order the header lists them.
    pub fn tensors(&self) -> Tensors<'_> {
        self.tensors.iter()
    }

    /// The number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The `i`th tensor in listing order, if there are that many.
    pub fn tensor(&self, i: usize) -> Option<TensorEntry<'_>> {
        self.tensors().nth(i)
    }

    /// Length of the data buffer: the end of the last tensor.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

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

    /// A header as given, without the parser's checks: for tests of the
    /// planner on headers no file of a test's size could carry. `tensors`
    /// are (name, dtype, shape, begin, end) in listing order.
    #[cfg(feature = "fixture")]
    pub(crate) fn unchecked<'a>(
        header_len: u64,
        metadata: Option<String>,
        tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [u64], u64, u64)>,
        data_len: u64,
    ) -> Header {
        let mut list = TensorList::default();
        for (name, dtype, shape, begin, end) in tensors {
            shape.iter().for_each(|&d| list.push_dim(d));
            list.push(name, dtype, begin, end)
                .expect("a test header fits 32-bit ends");
        }
        Header {
            header_len,
            metadata,
            tensors: list,
            data_len,
        }
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("header_len", &self.header_len)
            .field("metadata", &self.metadata)
            .field("tensors", &self.tensors().collect::<Vec<_>>())
            .field("data_len", &self.data_len)
            .finish()
    }
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

/// The top-level object as read, before the format's rules are checked.
struct RawHeader {
    pub metadata: Option<String>,
    /// In listing order; offsets not validated yet.
    pub tensors: TensorList,
    /// `__metadata__` appears more than once.
    pub duplicate_metadata: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_by_index_is_the_listing_order() {
        let json = r#"{"b":{"dtype":"U8","shape":[2,1],"data_offsets":[0,2]},"a":{"dtype":"F32","shape":[],"data_offsets":[2,6]},"c":{"dtype":"U8","shape":[0],"data_offsets":[6,6]}}"#;
        let header = parse_header(json.as_bytes(), 8 + json.len() as u64 + 6).unwrap();
        let listed: Vec<TensorEntry> = header.tensors().collect();
        assert_eq!(listed.len(), 3);
        for (i, entry) in listed.iter().enumerate() {
            assert_eq!(header.tensor(i), Some(*entry));
            assert_eq!(header.tensors().nth(i), Some(*entry));
        }
        assert_eq!(header.tensor(3), None);
        assert_eq!(header.tensors().nth(usize::MAX), None);
        assert_eq!(
            (listed[0].name(), listed[0].shape(), listed[1].shape()),
            ("b", &[2, 1][..], &[][..])
        );
        let mut rest = header.tensors();
        assert_eq!(rest.nth(1).map(|t| t.name()), Some("a"));
        assert_eq!(rest.next().map(|t| t.name()), Some("c"));
    }
}
