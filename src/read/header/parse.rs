//! The header reader: a pure function from bytes to a validated
//! [`Header`], with no I/O inside. The JSON is read by the fast scan
//! (`fast_scan.rs`) when it has the common shape, by serde_json
//! (`visitors.rs`) otherwise; the format's rules are checked here, on what
//! either read.

use std::collections::HashSet;

use super::{
    fast_scan, visitors, Header, HeaderError, HeaderErrorKind, RawHeader, TensorList,
    MAX_HEADER_SIZE, METADATA_KEY, N_LEN,
};
use crate::read::header::tensor_byte_len;
use crate::read::json_scan::top_level_members;

/// Reads the header length N from the first bytes of a file and checks it
/// against the official reader's limits and the file length.
pub fn header_len_from_prefix(prefix: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    let Some(&n_bytes) = prefix.first_chunk::<{ N_LEN as usize }>() else {
        return Err(too_short(file_len));
    };
    if file_len < N_LEN {
        return Err(too_short(file_len));
    }
    let n = u64::from_le_bytes(n_bytes);
    check_header_len(n)?;
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

fn too_short(file_len: u64) -> HeaderError {
    HeaderError::new(
        HeaderErrorKind::TooShort,
        format!("file too short for a safetensors header: {file_len} bytes, need at least 8"),
    )
    .at(0)
}

fn check_header_len(n: u64) -> Result<(), HeaderError> {
    if n > MAX_HEADER_SIZE {
        return Err(HeaderError::new(
            HeaderErrorKind::TooLarge,
            format!("header length {n} exceeds the limit of {MAX_HEADER_SIZE} bytes"),
        )
        .at(0));
    }
    Ok(())
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
    check_header_len(header_len)?;
    let text = std::str::from_utf8(json).map_err(|e| {
        HeaderError::new(HeaderErrorKind::NotUtf8, "header is not valid UTF-8")
            .at(N_LEN + e.valid_up_to() as u64)
    })?;
    // The common shape of a header (plain names, integers, known fields)
    // takes a fast scan; anything else, valid or not, goes to serde_json,
    // which parses every value in full (unknown keys of a tensor entry
    // included), as the official reader does.
    let scanned = if fast_scan {
        fast_scan::scan(text)
    } else {
        None
    };
    let raw = match scanned {
        Some(raw) => raw,
        None => visitors::read(text).map_err(|e| json_error(text, &e))?,
    };
    let RawHeader {
        metadata,
        mut tensors,
        duplicate_metadata,
    } = raw;
    check_unique(text, &tensors, duplicate_metadata)?;
    check_entries(text, &tensors)?;
    let data_start = N_LEN + header_len;
    let data_len = check_tiling(&tensors, data_start)?;
    check_file_len(data_start, data_len, file_len)?;
    tensors.shrink_to_fit();
    Ok(Header {
        header_len,
        metadata,
        tensors,
        data_len,
    })
}

/// Refuses a name, or `__metadata__`, listed twice.
fn check_unique(
    text: &str,
    tensors: &TensorList,
    duplicate_metadata: bool,
) -> Result<(), HeaderError> {
    let mut err = if duplicate_metadata {
        HeaderError::new(HeaderErrorKind::Duplicate, "duplicate `__metadata__` key")
    } else if let Some(name) = first_duplicate(tensors) {
        HeaderError::new(HeaderErrorKind::Duplicate, "duplicate tensor name").tensor(name)
    } else {
        return Ok(());
    };
    let name = err.tensor.as_deref().unwrap_or(METADATA_KEY);
    err.offset = locate_key(text, name, 1);
    Err(err)
}

/// The first tensor name listed twice, if any.
fn first_duplicate(tensors: &TensorList) -> Option<&str> {
    // std's hasher is keyed with random bits per process: names crafted to
    // collide (which would make the check quadratic on a 100 MB header)
    // cannot be made ahead of a run.
    let mut seen: HashSet<&str> = HashSet::with_capacity(tensors.len());
    tensors
        .iter()
        .find(|t| !seen.insert(t.name()))
        .map(|t| t.name())
}

/// Checks each tensor's offsets against its dtype and shape.
fn check_entries(text: &str, tensors: &TensorList) -> Result<(), HeaderError> {
    for t in tensors.iter() {
        let entry_error = |kind: HeaderErrorKind, problem: String| {
            let mut err = HeaderError::new(kind, problem).tensor(t.name());
            err.offset = locate_key(text, t.name(), 0);
            err
        };
        let (begin, end) = (t.begin(), t.end());
        let byte_len = tensor_byte_len(t.dtype(), t.shape())
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
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that the tensors, sorted by offsets, tile the data buffer exactly,
/// and returns the buffer length.
fn check_tiling(tensors: &TensorList, data_start: u64) -> Result<u64, HeaderError> {
    let slots = &tensors.slots;
    let mut order: Vec<usize> = (0..slots.len()).collect();
    // Writers list tensors in data order, so the sort is usually skipped.
    let key = |i: usize| (slots[i].begin, slots[i].end);
    if !order.windows(2).all(|w| key(w[0]) <= key(w[1])) {
        order.sort_unstable_by_key(|&i| key(i));
    }
    let mut next = 0u64;
    for &i in &order {
        let (begin, end) = key(i);
        if begin != next {
            let problem = if begin > next {
                format!("hole in the data buffer: bytes {next}..{begin} belong to no tensor")
            } else {
                format!(
                    "tensor overlaps the previous one: it begins at {begin} but the previous ends at {next}"
                )
            };
            let name = tensors.iter().nth(i).map_or("", |t| t.name());
            return Err(HeaderError::new(HeaderErrorKind::Tiling, problem)
                .tensor(name)
                .at(data_start.saturating_add(begin)));
        }
        next = end;
    }
    Ok(next)
}

/// Checks that the file is as long as the header describes.
fn check_file_len(data_start: u64, data_len: u64, file_len: u64) -> Result<(), HeaderError> {
    let expected = data_start.checked_add(data_len).ok_or_else(|| {
        HeaderError::new(
            HeaderErrorKind::FileLength,
            format!("data buffer of {data_len} bytes overflows a file offset"),
        )
    })?;
    if expected == file_len {
        return Ok(());
    }
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
    Err(HeaderError::new(HeaderErrorKind::FileLength, problem).at(expected.min(file_len)))
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
