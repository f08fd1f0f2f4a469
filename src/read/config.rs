//! A TensorRT-LLM checkpoint's `config.json`: read, validated (the
//! `world_size` it declares), and written back with `"is_pruned": true`
//! changing no other byte.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::base::error::{Error, ErrorKind, Result};
use crate::base::file::FileStamp;
use crate::read::input::read_stamped;
use crate::read::json_scan::top_level_members;

pub use crate::base::file::CONFIG_FILE;
/// The key the original tool adds to `config.json`.
pub const IS_PRUNED_KEY: &str = "is_pruned";

/// A checkpoint's `config.json`, as text and as parsed JSON.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
    pub object: Map<String, Value>,
    pub world_size: u64,
    /// The file as it was when read (`None` for a remote one): an in-place
    /// commit replaces it only if it is still that file.
    pub stamp: Option<FileStamp>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let (bytes, stamp) = read_stamped(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::no_config(path),
            _ => e,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::invalid(
                path,
                format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        let mut config = ConfigFile::parse(path, text)?;
        config.stamp = Some(stamp);
        Ok(config)
    }

    /// Validates the text of a config file: a JSON object whose
    /// `mapping.world_size`, when present, is a positive integer.
    pub fn parse(path: &Path, text: String) -> Result<ConfigFile> {
        let object = json_object(path, &text)?;
        let world_size = match object.get("mapping") {
            None | Some(Value::Null) => 1,
            Some(Value::Object(mapping)) => match mapping.get("world_size") {
                None | Some(Value::Null) => 1,
                Some(v) => match v.as_u64() {
                    Some(n) if n > 0 => n,
                    _ => {
                        return Err(Error::invalid(
                            path,
                            format!("mapping.world_size must be a positive integer, found {v}"),
                        ))
                    }
                },
            },
            Some(other) => {
                return Err(Error::invalid(
                    path,
                    format!("`mapping` must be an object, found {other}"),
                ))
            }
        };
        Ok(ConfigFile {
            stamp: None,
            path: path.to_path_buf(),
            text,
            object,
            world_size,
        })
    }

    /// The config as the original tool writes it back: the same JSON with
    /// `"is_pruned": true`. When the key is new, it is inserted as text after
    /// the last member (on a line of its own, indented as that member, when
    /// the file is pretty-printed), so every other byte of the file stays as
    /// it was.
    ///
    /// A key given more than once means different things to different
    /// readers (Python's `json` keeps the last, others the first), so every
    /// top-level member whose key decodes to `is_pruned`, however its
    /// escapes spell it, is set to `true`: each reader reads true. Nested
    /// keys of that name are left alone, as the original tool leaves them.
    pub fn pruned_text(&self) -> String {
        if self.object.contains_key(IS_PRUNED_KEY) {
            // Replace the values' text in place, so every other byte (floats
            // spelled `1e-05`, huge integers) stays as written.
            if let Some(spans) = top_level_value_spans(&self.text, IS_PRUNED_KEY) {
                let mut text = String::with_capacity(self.text.len());
                let mut at = 0;
                for (start, end) in spans {
                    text.push_str(&self.text[at..start]);
                    text.push_str("true");
                    at = end;
                }
                text.push_str(&self.text[at..]);
                return text;
            }
            // Not found in the text (it parsed, so this should not happen):
            // re-serialize, which leaves one key (same keys, values and
            // order: serde_json's preserve_order).
            let mut object = self.object.clone();
            object.insert(IS_PRUNED_KEY.to_string(), Value::Bool(true));
            let mut text = Value::Object(object).to_string();
            text.push('\n');
            return text;
        }
        // The text parsed as an object, so its last non-space byte is `}`.
        let close = self.text.trim_end().len() - 1;
        let body_end = self.text[..close].trim_end().len();
        let empty = self.text[..body_end].ends_with('{');
        let member = if empty {
            "\"is_pruned\": true".to_string()
        } else {
            match self.last_member_indent() {
                // A pretty-printed file: a line of its own, indented as
                // the member before it.
                Some(indent) => format!(",\n{indent}\"is_pruned\": true"),
                None => ", \"is_pruned\": true".to_string(),
            }
        };
        let mut text = String::with_capacity(self.text.len() + member.len());
        text.push_str(&self.text[..body_end]);
        text.push_str(&member);
        text.push_str(&self.text[body_end..]);
        text
    }

    /// The whitespace before the last top-level member's key, when that
    /// key starts a line of its own (a pretty-printed object).
    fn last_member_indent(&self) -> Option<&str> {
        let key_start = top_level_members(&self.text)?.last()?.key.0;
        let line_start = self.text[..key_start].rfind('\n')? + 1;
        let indent = &self.text[line_start..key_start];
        indent
            .bytes()
            .all(|b| b == b' ' || b == b'\t')
            .then_some(indent)
    }

    /// Whether every JSON reader reads `is_pruned` as true: the key is
    /// there and each of its top-level members, however spelled, is `true`.
    pub fn is_pruned(&self) -> bool {
        if self.object.get(IS_PRUNED_KEY) != Some(&Value::Bool(true)) {
            return false;
        }
        match top_level_value_spans(&self.text, IS_PRUNED_KEY) {
            Some(spans) => spans
                .iter()
                .all(|&(start, end)| &self.text[start..end] == "true"),
            None => true,
        }
    }
}

/// Byte spans of the values of every top-level member of `text` (a JSON
/// object already validated by serde_json) whose key decodes to `key`, in
/// order; `None` if there is none.
fn top_level_value_spans(text: &str, key: &str) -> Option<Vec<(usize, usize)>> {
    let spans: Vec<(usize, usize)> = top_level_members(text)?
        .into_iter()
        .filter(|m| decodes_to(&text[m.key.0..m.key.1], key))
        .map(|m| m.value)
        .collect();
    (!spans.is_empty()).then_some(spans)
}

/// Whether the JSON string `quoted` (quotes included) decodes to `key`.
fn decodes_to(quoted: &str, key: &str) -> bool {
    match quoted.get(1..quoted.len().saturating_sub(1)) {
        Some(raw) if !raw.contains('\\') => raw == key,
        _ => serde_json::from_str::<String>(quoted).is_ok_and(|k| k == key),
    }
}

/// The JSON object a small file (config.json, a shard index) must hold.
pub(crate) fn json_object(path: &Path, text: &str) -> Result<serde_json::Map<String, Value>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(Error::invalid(path, "top level is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<ConfigFile> {
        ConfigFile::parse(Path::new("config.json"), text.to_string())
    }

    #[test]
    fn world_size_defaults_to_one() {
        assert_eq!(config("{}").unwrap().world_size, 1);
        assert_eq!(
            config(r#"{"mapping": {"tp_size": 1}}"#).unwrap().world_size,
            1
        );
        assert_eq!(
            config(r#"{"mapping": {"world_size": 8}}"#)
                .unwrap()
                .world_size,
            8
        );
    }

    #[test]
    fn rejects_bad_world_size() {
        for bad in [
            r#"{"mapping": {"world_size": 0}}"#,
            r#"{"mapping": {"world_size": -2}}"#,
            r#"{"mapping": {"world_size": 2.5}}"#,
            r#"{"mapping": {"world_size": "2"}}"#,
            r#"{"mapping": 3}"#,
            "[1, 2]",
            "{",
        ] {
            assert!(config(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn pruned_text_inserts_key_and_keeps_every_other_byte() {
        let c = config("{\n    \"b\": 1e-05,\n    \"a\": [1, 2]\n}\n").unwrap();
        assert_eq!(
            c.pruned_text(),
            "{\n    \"b\": 1e-05,\n    \"a\": [1, 2],\n    \"is_pruned\": true\n}\n"
        );
        assert_eq!(
            config(" { } ").unwrap().pruned_text(),
            " {\"is_pruned\": true } "
        );
    }

    #[test]
    fn pruned_text_overwrites_existing_flag_in_place() {
        let c = config(r#"{"a": 1e-05, "is_pruned": false, "z": 2}"#).unwrap();
        assert_eq!(
            c.pruned_text(),
            r#"{"a": 1e-05, "is_pruned": true, "z": 2}"#
        );
        // Nested keys of the same name and strings holding braces are skipped;
        // every top-level member of a duplicated key is set.
        let c = config(
            r#"{"m": {"is_pruned": 0}, "s": "}\"{", "is_pruned": [1, {"x": "]"}], "is_pruned": null, "n": 123456789012345678901234567890}"#,
        )
        .unwrap();
        assert_eq!(
            c.pruned_text(),
            r#"{"m": {"is_pruned": 0}, "s": "}\"{", "is_pruned": true, "is_pruned": true, "n": 123456789012345678901234567890}"#
        );
    }

    #[test]
    fn pruned_text_puts_a_new_key_on_its_own_line_in_a_pretty_printed_file() {
        let c = config("{\n    \"a\": 1,\n    \"m\": {\n        \"b\": 2\n    }\n}\n").unwrap();
        assert_eq!(
            c.pruned_text(),
            "{\n    \"a\": 1,\n    \"m\": {\n        \"b\": 2\n    },\n    \"is_pruned\": true\n}\n"
        );
        let c = config("{\n\t\"a\": 1\n}").unwrap();
        assert_eq!(c.pruned_text(), "{\n\t\"a\": 1,\n\t\"is_pruned\": true\n}");
        // One line stays one line.
        let c = config(
            r#"{"a": 1, "b": [1,
 2]}"#,
        )
        .unwrap();
        assert_eq!(
            c.pruned_text(),
            "{\"a\": 1, \"b\": [1,\n 2], \"is_pruned\": true}"
        );
    }

    #[test]
    fn pruned_text_sets_a_key_spelled_with_escapes_in_place() {
        let c = config(r#"{"a": 1, "is\u005fpruned": false}"#).unwrap();
        assert_eq!(c.pruned_text(), r#"{"a": 1, "is\u005fpruned": true}"#);
        // The issue's case: the first plain, the second escaped; and a key
        // that only looks alike stays.
        let c = config(r#"{"is_pruned": false, "is_prun\u0065d": false, "is_pruned\u0000": 1}"#)
            .unwrap();
        let text = c.pruned_text();
        assert_eq!(
            text,
            r#"{"is_pruned": true, "is_prun\u0065d": true, "is_pruned\u0000": 1}"#
        );
        assert!(config(&text).unwrap().is_pruned());
    }

    #[test]
    fn is_pruned_asks_every_member() {
        assert!(config(r#"{"is_pruned": true}"#).unwrap().is_pruned());
        assert!(!config(r#"{"a": 1}"#).unwrap().is_pruned());
        // Last-wins readers see true, first-wins readers false.
        assert!(!config(r#"{"is_pruned": false, "is_pruned": true}"#)
            .unwrap()
            .is_pruned());
        assert!(!config(r#"{"is_pruned": 1, "is\u005fpruned": true}"#)
            .unwrap()
            .is_pruned());
    }
}
