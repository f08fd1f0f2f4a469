//! A fast scan for the shape nearly every real header has: names and
//! metadata strings without escapes or control characters, non-negative
//! integers written plainly, tensor entries with exactly `dtype`, `shape`
//! and `data_offsets`, `__metadata__` null or an object of such strings.
//! Everything it accepts is valid JSON that serde_json reads to the same
//! `RawHeader`; on anything else it returns `None` and serde_json decides
//! (regression: `fast_scan_agrees_with_serde` in tests/differential.rs).

use super::{Dtype, RawHeader, TensorList, MAX_DIMS, METADATA_KEY};

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

    /// A list of integers: a shape, its dimensions added to `tensors`.
    fn dims(&mut self, tensors: &mut TensorList) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        let mut count = 0;
        loop {
            // Past the bound, serde_json reads it again and says so.
            count += 1;
            if count > MAX_DIMS {
                return None;
            }
            tensors.push_dim(self.integer()?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
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
            tensors: TensorList::with_capacity(self.b.len() / 96),
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
                self.entry(key, &mut header.tensors)?;
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

    /// A tensor entry, added to `tensors`.
    fn entry(&mut self, name: &str, tensors: &mut TensorList) -> Option<()> {
        self.eat(b'{')?;
        let (mut dtype, mut shape, mut offsets) = (None, false, None);
        loop {
            match self.string()? {
                "dtype" if dtype.is_none() => {
                    let word = self.after_colon(Self::string)?;
                    dtype = Some(Dtype::from_name(word)?);
                }
                "shape" if !shape => {
                    self.eat(b':')?;
                    self.dims(tensors)?;
                    shape = true;
                }
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
        if !shape {
            return None;
        }
        tensors.push(name, dtype?, begin, end)
    }

    fn after_colon<T>(&mut self, value: fn(&mut Self) -> Option<T>) -> Option<T> {
        self.eat(b':')?;
        value(self)
    }
}
