//! The serde_json front end of the header reader, for every header the
//! fast scan declines: serde visitors that read the top-level object key by
//! key (so that duplicate names are seen, where a map type would merge
//! them), tensor entries with unknown keys, and any value in full.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Dtype, RawHeader, TensorList, MAX_DIMS, METADATA_KEY};
use crate::base::shown::shown;

/// Reads `text` (UTF-8 JSON) as a header's top-level object.
pub(super) fn read(text: &str) -> Result<RawHeader, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = (&mut de).deserialize_map(RawHeaderVisitor)?;
    de.end()?;
    Ok(raw)
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

struct RawHeaderVisitor;

impl<'de> Visitor<'de> for RawHeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping tensor names to tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut metadata: Option<Option<String>> = None;
        let mut tensors = TensorList::default();
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
                if raw.shape.len() > MAX_DIMS {
                    return Err(de::Error::custom(format!(
                        "tensor `{}` has a shape of {} dimensions; at most {MAX_DIMS} are read",
                        shown(&key),
                        raw.shape.len()
                    )));
                }
                let [begin, end] = raw.data_offsets;
                raw.shape.iter().for_each(|&d| tensors.push_dim(d));
                tensors
                    .push(&key, raw.dtype, begin, end)
                    .ok_or_else(|| de::Error::custom("header too large"))?;
            }
        }
        Ok(RawHeader {
            metadata: metadata.flatten(),
            tensors,
            duplicate_metadata,
        })
    }
}

fn validate_metadata(text: &str) -> Result<(), String> {
    serde_json::from_str::<std::collections::HashMap<String, String>>(text)
        .map(|_| ())
        .map_err(|e| format!("`__metadata__` must be an object of strings: {e}"))
}
