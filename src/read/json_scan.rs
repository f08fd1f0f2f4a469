//! Where the members of a JSON object are in its text: the byte spans of
//! each top-level key and value of an object that serde_json has already
//! accepted. For pointing at things, not for parsing: the header's tensor
//! that an error is about (`header::locate_key`), every `is_pruned` value
//! to replace in `config.json` without touching any other byte. (The header's
//! fast scan, `header::simple`, is a parser of its own: it builds the
//! header in one pass and declines anything unusual.)

/// One member of an object: the byte spans of its key (quotes included)
/// and of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub key: (usize, usize),
    pub value: (usize, usize),
}

/// The members of the JSON object `text`, in order; `None` if `text` is
/// not an object (it must be valid JSON).
pub(crate) fn top_level_members(text: &str) -> Option<Vec<Member>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    // End (exclusive) of the string starting at the quote at `i`.
    let string_end = |mut i: usize| {
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    };
    // End (exclusive) of the value starting at `i`.
    let value_end = |i: usize| -> Option<usize> {
        match b.get(i)? {
            b'"' => string_end(i),
            b'{' | b'[' => {
                let (mut depth, mut j) = (0usize, i);
                loop {
                    match b.get(j)? {
                        b'"' => {
                            j = string_end(j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => {
                let mut j = i;
                while b.get(j).is_some_and(|c| !b",}] \t\r\n".contains(c)) {
                    j += 1;
                }
                Some(j)
            }
        }
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    let mut members = Vec::new();
    while b.get(i) == Some(&b'"') {
        let key_end = string_end(i)?;
        let key = (i, key_end);
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = ws(i + 1);
        let end = value_end(start)?;
        members.push(Member {
            key,
            value: (start, end),
        });
        i = ws(end);
        if b.get(i) == Some(&b',') {
            i = ws(i + 1);
        }
    }
    Some(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_members_only() {
        let text = r#" {"a": {"b": [1, "}"]}, "c\"d": 2 , "e":null}"#;
        let spans: Vec<(&str, &str)> = top_level_members(text)
            .unwrap()
            .iter()
            .map(|m| (&text[m.key.0..m.key.1], &text[m.value.0..m.value.1]))
            .collect();
        assert_eq!(
            spans,
            [
                (r#""a""#, r#"{"b": [1, "}"]}"#),
                (r#""c\"d""#, "2"),
                (r#""e""#, "null")
            ]
        );
        assert_eq!(top_level_members("[1]"), None);
    }
}
