//! A Hugging Face shard index, `model.safetensors.index.json`: which shard
//! holds which tensor, and the total size of tensor data.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::base::error::{Error, Result};
use crate::base::file::FileStamp;
use crate::read::input::read_stamped;

/// A Hugging Face shard index, `model.safetensors.index.json`.
#[derive(Debug, Clone)]
pub struct IndexFile {
    pub name: String,
    pub path: PathBuf,
    pub object: Map<String, Value>,
    /// The file as it was when read (`None` for a remote one): an in-place
    /// commit replaces it only if it is still that file.
    pub stamp: Option<FileStamp>,
}

pub const INDEX_SUFFIX: &str = ".safetensors.index.json";

impl IndexFile {
    pub(crate) fn read(path: &Path, name: &str) -> Result<IndexFile> {
        let (bytes, stamp) = read_stamped(path)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::invalid(
                path,
                format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        let mut index = IndexFile::parse(path, name, &text)?;
        index.stamp = Some(stamp);
        Ok(index)
    }

    /// Validates the text of an index read from `path` (a local path or a
    /// URL, for messages).
    pub(crate) fn parse(path: &Path, name: &str, text: &str) -> Result<IndexFile> {
        let object = crate::read::config::json_object(path, text)?;
        match object.get("weight_map") {
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            _ => {
                return Err(Error::invalid(
                    path,
                    "`weight_map` must be an object mapping tensor names to shard file names",
                ))
            }
        }
        Ok(IndexFile {
            stamp: None,
            name: name.to_string(),
            path: path.to_path_buf(),
            object,
        })
    }

    /// Tensor name to shard file name.
    pub fn weight_map(&self) -> std::collections::HashMap<&str, &str> {
        self.object
            .get("weight_map")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `metadata.total_size`, when it is a number.
    pub fn total_size(&self) -> Option<u64> {
        self.object.get("metadata")?.get("total_size")?.as_u64()
    }

    /// Shard file names the index refers to, sorted and unique.
    pub fn shards(&self) -> Vec<String> {
        let mut shards: Vec<String> = self.object["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        shards
    }

    /// The index with `metadata.total_size` set to `total_size` (the bytes
    /// of tensor data in the pruned shards); everything else is kept.
    pub fn pruned_text(&self, total_size: u64) -> String {
        let mut object = self.object.clone();
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Value::Object(m) = metadata {
            m.insert("total_size".into(), Value::from(total_size));
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(object)).unwrap_or_default();
        text.push('\n');
        text
    }
}
