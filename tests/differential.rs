//! Differential tests: our header reader against the official `safetensors`
//! crate (0.7), on generated valid files and on mutations of them, plus the
//! planner's outputs read back by the official crate.
//!
//! The rule: `trtllm_prune::fixture::parse_file` accepts a file exactly when
//! `safetensors::SafeTensors::read_metadata` does (the first step of
//! `SafeTensors::deserialize`), and when both accept they describe every
//! tensor and the metadata alike. Deliberate differences, each pinned by a
//! test below and listed in docs/FUZZING.md:
//!
//! 1. Duplicate tensor names: we reject them (the format's docs forbid
//!    them); the crate silently keeps the last entry.
//! 2. `F8_E4M3FNUZ` and `F8_E5M2FNUZ`: we accept them, as newer safetensors
//!    releases do; 0.7 does not know them.
//! 3. Offsets whose running end passes `u64::MAX - 8 - N`: the crate's
//!    final length check is an unchecked addition and panics in debug
//!    builds; we reject the file. A panic counts as a rejection here.
//!
//! Found here and fixed in our reader (not a deliberate difference): unknown
//! keys of a tensor entry were only skimmed, so we accepted values the crate
//! rejects (`unknown_keys_are_fully_parsed`).
//!
//! The seed corpus of the fuzz targets (`fuzz/seeds/`) is generated here
//! too: see [`fuzz_seed_corpus_matches_its_generator`].

use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use safetensors::SafeTensors;
use trtllm_prune::fixture::{self, tensor_byte_len, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::{plan_prune, Dtype, Header};

/// The checks the fuzz targets run, shared so they run here on the seeds
/// and the regression inputs too.
#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

/// Fixed seed and modest case counts: reproducible in CI and a few seconds
/// per property in a debug build.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7472_746c_6c6d),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// The two readers, reduced to comparable descriptions.

/// Name -> (dtype, shape, begin, end).
type Tensors = BTreeMap<String, (String, Vec<u64>, u64, u64)>;
type Metadata = Option<BTreeMap<String, String>>;

/// What the official crate made of a file.
#[derive(Debug)]
enum Official {
    Accepted(Tensors, Metadata),
    Rejected(String),
    /// Deliberate difference 3: a crafted header overflows its arithmetic.
    Panicked,
}

impl Official {
    fn why(&self) -> &str {
        match self {
            Official::Accepted(..) => "accepted",
            Official::Rejected(why) => why,
            Official::Panicked => "panicked",
        }
    }
}

fn official(bytes: &[u8]) -> Official {
    match catch_unwind(AssertUnwindSafe(|| SafeTensors::read_metadata(bytes))) {
        Err(_) => Official::Panicked,
        Ok(Err(e)) => Official::Rejected(format!("{e:?}")),
        Ok(Ok((_, metadata))) => {
            let tensors = metadata
                .tensors()
                .into_iter()
                .map(|(name, info)| {
                    let shape = info.shape.iter().map(|&d| d as u64).collect();
                    let (begin, end) = info.data_offsets;
                    let dtype = format!("{:?}", info.dtype);
                    (name, (dtype, shape, begin as u64, end as u64))
                })
                .collect();
            let meta = metadata.metadata().clone().map(|m| m.into_iter().collect());
            Official::Accepted(tensors, meta)
        }
    }
}

fn describe(header: &Header) -> (Tensors, Metadata) {
    let tensors = header
        .tensors()
        .map(|t| {
            let desc = (
                t.dtype().name().to_string(),
                t.shape().to_owned(),
                t.begin(),
                t.end(),
            );
            (t.name().to_owned(), desc)
        })
        .collect();
    let metadata = header.metadata().as_ref().and_then(|text| {
        serde_json::from_str::<Option<BTreeMap<String, String>>>(text)
            .expect("validated metadata parses")
    });
    (tensors, metadata)
}

fn is_fnuz(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ)
}

/// Asserts that our reader and the official crate agree on `bytes`, up to
/// the deliberate differences listed at the top of this file.
fn assert_agrees(bytes: &[u8]) {
    let ours = trtllm_prune::fixture::parse_file(bytes);
    // The fast scan of common headers reads exactly what serde_json reads.
    assert_eq!(
        ours,
        trtllm_prune::fixture::parse_file_without_fast_scan(bytes),
        "fast scan and serde_json differ:\n{}",
        shown(bytes, 0)
    );
    let theirs = official(bytes);
    match (&ours, &theirs) {
        (Ok(header), Official::Accepted(tensors, metadata)) => {
            let (our_tensors, our_metadata) = describe(header);
            assert_eq!(&our_tensors, tensors, "tensors differ");
            assert_eq!(&our_metadata, metadata, "metadata differs");
        }
        // Difference 2: the crate does not know the FNUZ dtypes yet.
        (Ok(header), Official::Rejected(_)) if header.tensors().any(|t| is_fnuz(t.dtype())) => {}
        (Ok(header), theirs) => panic!(
            "we accept, the official crate does not ({}):\n{}",
            theirs.why(),
            shown(bytes, header.header_len())
        ),
        // Difference 1: the crate keeps the last of a duplicated name.
        (Err(e), Official::Accepted(..)) if e.problem == "duplicate tensor name" => {}
        (Err(e), Official::Accepted(..)) => panic!(
            "the official crate accepts, we reject ({e}):\n{}",
            shown(bytes, 0)
        ),
        // Both reject (a panic of the crate is its rejection: difference 3).
        (Err(_), Official::Rejected(_) | Official::Panicked) => {}
    }
}

/// The header text of a file, for a failure message.
fn shown(bytes: &[u8], header_len: u64) -> String {
    let end = if header_len > 0 {
        8 + header_len as usize
    } else {
        bytes.len().min(4096)
    };
    String::from_utf8_lossy(&bytes[..end.min(bytes.len())]).into_owned()
}

// ---------------------------------------------------------------------------
// A safetensors file as an editable document: every token is kept as JSON
// text, so that mutations can write what no serializer would.

#[derive(Debug, Clone)]
enum Value {
    /// A tensor entry: (key text, value text) pairs, in listing order.
    Fields(Vec<(String, String)>),
    /// Any other value, as JSON text (`__metadata__`, mutated entries).
    Raw(String),
}

#[derive(Debug, Clone)]
struct Entry {
    /// The key as JSON text, quotes and escapes included.
    key: String,
    value: Value,
}

#[derive(Debug, Clone)]
struct Doc {
    /// Whitespace before the opening brace.
    lead: String,
    /// Whitespace around every token.
    sep: String,
    /// Whitespace after the closing brace (the writers' padding).
    trail: String,
    entries: Vec<Entry>,
    data: Vec<u8>,
}

impl Doc {
    fn header_text(&self) -> String {
        let s = &self.sep;
        let items: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let value = match &e.value {
                    Value::Raw(text) => text.clone(),
                    Value::Fields(fields) => {
                        let fields: Vec<String> = fields
                            .iter()
                            .map(|(k, v)| format!("{s}{k}{s}:{s}{v}{s}"))
                            .collect();
                        format!("{{{}}}", fields.join(","))
                    }
                };
                format!("{s}{}{s}:{s}{value}{s}", e.key)
            })
            .collect();
        format!("{}{{{}}}{}", self.lead, items.join(","), self.trail)
    }

    fn bytes(&self) -> Vec<u8> {
        let text = self.header_text();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    fn field_mut(&mut self, entry: usize, field: &str) -> Option<&mut String> {
        let quoted = format!("\"{field}\"");
        match &mut self.entries.get_mut(entry)?.value {
            Value::Fields(fields) => fields
                .iter_mut()
                .find(|(k, _)| *k == quoted)
                .map(|f| &mut f.1),
            Value::Raw(_) => None,
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

fn numbers(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// A valid file: `tensors` stored in `data_order`, listed in `list_order`,
/// with `metadata` (raw JSON) listed at position `meta_at`.
fn valid_doc(
    tensors: &[TensorSpec],
    data_order: &[usize],
    list_order: &[usize],
    metadata: Option<(String, usize)>,
    whitespace: (&str, &str, &str),
) -> Doc {
    let mut offsets = vec![(0, 0); tensors.len()];
    let mut data = Vec::new();
    for &i in data_order {
        let t = &tensors[i];
        let begin = data.len() as u64;
        let mut bytes = vec![0; t.byte_len() as usize];
        fixture::fill(t, 0, &mut bytes);
        data.extend_from_slice(&bytes);
        offsets[i] = (begin, data.len() as u64);
    }
    let mut entries: Vec<Entry> = list_order
        .iter()
        .map(|&i| {
            let t = &tensors[i];
            let (begin, end) = offsets[i];
            Entry {
                key: quoted(&t.name),
                value: Value::Fields(vec![
                    ("\"dtype\"".into(), quoted(t.dtype.name())),
                    ("\"shape\"".into(), numbers(&t.shape)),
                    ("\"data_offsets\"".into(), numbers(&[begin, end])),
                ]),
            }
        })
        .collect();
    if let Some((text, at)) = metadata {
        let entry = Entry {
            key: quoted(trtllm_prune::fixture::METADATA_KEY),
            value: Value::Raw(text),
        };
        entries.insert(at.min(entries.len()), entry);
    }
    let (lead, sep, trail) = whitespace;
    let mut doc = Doc {
        lead: lead.into(),
        sep: sep.into(),
        trail: trail.into(),
        entries,
        data,
    };
    // Writers pad with spaces to a multiple of 8; keep that most of the time.
    if trail == " " {
        let len = doc.header_text().len();
        doc.trail = " ".repeat(len.next_multiple_of(8) - len + 1);
    }
    doc
}

// ---------------------------------------------------------------------------
// Strategies.

fn tensor_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "transformer\\.layers\\.[0-9]\\.(attention\\.(qkv|dense|proj)|mlp\\.(fc|gate|proj|router))\\.(weight|bias|weights_scaling_factor)",
        2 => "[a-z_.0-9]{0,12}",
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
    .prop_filter("reserved key", |n| n != trtllm_prune::fixture::METADATA_KEY)
}

fn dtype() -> impl Strategy<Value = Dtype> {
    proptest::sample::select(Dtype::ALL.to_vec())
}

fn tensor_spec() -> impl Strategy<Value = TensorSpec> {
    let dim = prop_oneof![6 => 1u64..5, 1 => Just(0u64)];
    (tensor_name(), dtype(), proptest::collection::vec(dim, 0..4)).prop_map(
        |(name, dtype, mut shape)| {
            // Sub-byte dtypes need element counts that fill whole bytes.
            if tensor_byte_len(dtype, &shape).is_err() {
                shape.push(4);
            }
            TensorSpec::new(name, dtype, &shape)
        },
    )
}

fn metadata_text() -> impl Strategy<Value = Option<String>> {
    let pairs = proptest::collection::vec(("[a-z_]{0,6}", "\\PC{0,6}"), 0..3);
    prop_oneof![
        2 => Just(None),
        1 => Just(Some("null".to_string())),
        2 => pairs.prop_map(|pairs| {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", quoted(k), quoted(v)))
                .collect();
            Some(format!("{{{}}}", items.join(",")))
        }),
    ]
}

fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => "[ \t\n\r]{1,3}"]
}

fn valid_file() -> impl Strategy<Value = Doc> {
    proptest::collection::vec(tensor_spec(), 0..10)
        .prop_map(|mut specs| {
            let mut seen = std::collections::HashSet::new();
            specs.retain(|t| seen.insert(t.name.clone()));
            specs
        })
        .prop_flat_map(|specs| {
            let order: Vec<usize> = (0..specs.len()).collect();
            (
                Just(specs),
                Just(order.clone()).prop_shuffle(),
                Just(order).prop_shuffle(),
                metadata_text(),
                any::<Index>(),
                (
                    whitespace(),
                    whitespace(),
                    prop_oneof![Just(" ".to_string()), whitespace()],
                ),
            )
        })
        .prop_map(
            |(specs, data_order, list_order, meta, at, (lead, sep, trail))| {
                let metadata = meta.map(|m| (m, at.index(specs.len() + 1)));
                valid_doc(
                    &specs,
                    &data_order,
                    &list_order,
                    metadata,
                    (&lead, &sep, &trail),
                )
            },
        )
}

/// A JSON number token, valid or not for a `u64` field.
fn number_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..40).prop_map(|n| n.to_string()),
        1 => Just("-1".to_string()),
        1 => Just("-0".to_string()),
        1 => Just("1.0".to_string()),
        1 => Just("4e0".to_string()),
        1 => Just("0.5".to_string()),
        1 => Just("18446744073709551615".to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => Just("4611686018427387904".to_string()),
        1 => Just("2305843009213693951".to_string()),
        1 => Just("\"4\"".to_string()),
        1 => Just("null".to_string()),
    ]
}

fn number_list(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(number_token(), len).prop_map(|v| format!("[{}]", v.join(",")))
}

fn dtype_token() -> impl Strategy<Value = String> {
    let names: Vec<String> = Dtype::ALL.iter().map(|d| quoted(d.name())).collect();
    let lower: Vec<String> = Dtype::ALL
        .iter()
        .map(|d| quoted(&d.name().to_lowercase()))
        .collect();
    prop_oneof![
        4 => proptest::sample::select(names),
        2 => proptest::sample::select(lower),
        1 => proptest::sample::select(vec![
            "\"F128\"", "\"\"", "\"F32 \"", "\"Float32\"", "\"F8_E4M3FN\"", "\"BOOL\\u0000\"",
            "\"F\\u0033\\u0032\"", "{\"F32\":null}", "{\"F32\":[]}", "[\"F32\"]", "32", "null",
        ])
        .prop_map(str::to_string),
    ]
}

/// Values for an unknown key in a tensor entry, including ones that are
/// not well-formed beyond a skim (see `unknown_keys_are_fully_parsed`).
fn extra_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("\"x\"".to_string()),
        Just("null".to_string()),
        Just("{\"a\":[1,{\"b\":false}]}".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("1e999".to_string()),
        Just("-1e-999".to_string()),
        (100usize..140).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
    ]
}

/// A byte that means something in JSON, mostly; any byte sometimes.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(b" \t\n\r\"\\,:{}[]0123456789-+.eEnultrfas\0".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    SetDtype(Index, String),
    SetShape(Index, String),
    SetOffsets(Index, String),
    ShiftOffset(Index, bool, i64),
    ChangeDim(Index, Index, u64),
    DropField(Index, Index),
    DuplicateField(Index, Index),
    ExtraField(Index, String),
    /// Gives an entry the key of another one.
    DuplicateName(Index, Index),
    /// Writes an entry as `[dtype, shape, data_offsets]`, with one element
    /// too many when the flag is set.
    EntryAsArray(Index, bool),
    SetMetadata(String),
    /// Lists `__metadata__` twice.
    DuplicateMetadata,
    /// Writes the first character of an entry's key, and of its fields'
    /// keys, as a `\uXXXX` escape.
    EscapeKeys(Index),
    /// Header length prefix off by the given amount.
    HeaderLen(i64),
    FlipHeaderByte(Index, u8),
    SetHeaderByte(Index, u8),
    InsertHeaderByte(Index, u8),
    AppendData(Vec<u8>),
    TruncateData(Index),
    WrapTopLevel(&'static str, &'static str),
}

const FIELDS: [&str; 3] = ["dtype", "shape", "data_offsets"];

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<Index>;
    prop_oneof![
        (i(), dtype_token()).prop_map(|(e, v)| Mutation::SetDtype(e, v)),
        (i(), number_list(0..4)).prop_map(|(e, v)| Mutation::SetShape(e, v)),
        (i(), number_list(0..4)).prop_map(|(e, v)| Mutation::SetOffsets(e, v)),
        (i(), any::<bool>(), -9i64..9).prop_map(|(e, end, d)| Mutation::ShiftOffset(e, end, d)),
        (
            i(),
            i(),
            prop_oneof![0u64..9, Just(u64::MAX), Just(1 << 62), Just(1 << 32)]
        )
            .prop_map(|(e, d, v)| Mutation::ChangeDim(e, d, v)),
        (i(), i()).prop_map(|(e, f)| Mutation::DropField(e, f)),
        (i(), i()).prop_map(|(e, f)| Mutation::DuplicateField(e, f)),
        (i(), extra_value()).prop_map(|(e, v)| Mutation::ExtraField(e, v)),
        (i(), i()).prop_map(|(a, b)| Mutation::DuplicateName(a, b)),
        (i(), any::<bool>()).prop_map(|(e, extra)| Mutation::EntryAsArray(e, extra)),
        prop_oneof![
            Just("{}"),
            Just("null"),
            Just("{\"a\":1}"),
            Just("{\"a\":null}"),
            Just("[]"),
            Just("\"x\""),
            Just("{\"a\":\"1\",\"a\":\"2\"}"),
            Just("{\"a\":\"\\udc00\"}"),
        ]
        .prop_map(|m| Mutation::SetMetadata(m.to_string())),
        Just(Mutation::DuplicateMetadata),
        i().prop_map(Mutation::EscapeKeys),
        prop_oneof![Just(-1i64), Just(1), -9i64..9].prop_map(Mutation::HeaderLen),
        (
            i(),
            prop_oneof![4 => (0u8..7).prop_map(|k| 1 << k), 1 => 1u8..=255]
        )
            .prop_map(|(at, x)| Mutation::FlipHeaderByte(at, x)),
        (i(), json_byte()).prop_map(|(at, b)| Mutation::SetHeaderByte(at, b)),
        (i(), json_byte()).prop_map(|(at, b)| Mutation::InsertHeaderByte(at, b)),
        proptest::collection::vec(any::<u8>(), 1..9).prop_map(Mutation::AppendData),
        i().prop_map(Mutation::TruncateData),
        prop_oneof![
            Just(("[", "]")),
            Just(("\u{feff}", "")),
            Just(("", "\0")),
            Just(("", "\t\n\r ")),
            Just(("", "x")),
        ]
        .prop_map(|(a, b)| Mutation::WrapTopLevel(a, b)),
    ]
}

/// `"abc"` -> `"\u0061bc"`; keys starting with an escape stay as they are.
fn escape_first_char(key: &mut String) {
    if let Some(c) = key[1..].chars().next().filter(|&c| c != '\\' && c != '"') {
        let mut units = [0u16; 2];
        let escaped: String = c
            .encode_utf16(&mut units)
            .iter()
            .map(|u| format!("\\u{u:04x}"))
            .collect();
        key.replace_range(1..1 + c.len_utf8(), &escaped);
    }
}

/// Applies the document-level mutations, renders the file, then applies
/// the byte-level ones.
fn mutate(mut doc: Doc, mutations: &[Mutation]) -> Vec<u8> {
    let n = doc.entries.len();
    let mut wrap = ("", "");
    for m in mutations {
        let set = |doc: &mut Doc, e: &Index, field: &str, v: &str| {
            if n > 0 {
                if let Some(f) = doc.field_mut(e.index(n), field) {
                    *f = v.to_string();
                }
            }
        };
        match m {
            Mutation::SetDtype(e, v) => set(&mut doc, e, "dtype", v),
            Mutation::SetShape(e, v) => set(&mut doc, e, "shape", v),
            Mutation::SetOffsets(e, v) => set(&mut doc, e, "data_offsets", v),
            Mutation::ShiftOffset(e, end, delta) => {
                if let Some(f) = (n > 0)
                    .then(|| doc.field_mut(e.index(n), "data_offsets"))
                    .flatten()
                {
                    if let Ok(mut v) = serde_json::from_str::<Vec<i128>>(f) {
                        if v.len() == 2 {
                            v[usize::from(*end)] += i128::from(*delta);
                            let items: Vec<String> = v.iter().map(i128::to_string).collect();
                            *f = format!("[{}]", items.join(","));
                        }
                    }
                }
            }
            Mutation::ChangeDim(e, d, value) => {
                if let Some(f) = (n > 0)
                    .then(|| doc.field_mut(e.index(n), "shape"))
                    .flatten()
                {
                    if let Ok(mut v) = serde_json::from_str::<Vec<u64>>(f) {
                        if v.is_empty() {
                            v.push(*value);
                        } else {
                            let at = d.index(v.len());
                            v[at] = *value;
                        }
                        *f = numbers(&v);
                    }
                }
            }
            Mutation::DropField(e, f) | Mutation::DuplicateField(e, f) => {
                if n == 0 {
                    continue;
                }
                if let Value::Fields(fields) = &mut doc.entries[e.index(n)].value {
                    if fields.is_empty() {
                        continue;
                    }
                    let at = f.index(fields.len());
                    if matches!(m, Mutation::DropField(..)) {
                        fields.remove(at);
                    } else {
                        let copy = fields[at].clone();
                        fields.push(copy);
                    }
                }
            }
            Mutation::ExtraField(e, v) => {
                if n == 0 {
                    continue;
                }
                if let Value::Fields(fields) = &mut doc.entries[e.index(n)].value {
                    fields.insert(fields.len() / 2, ("\"extra\"".into(), v.clone()));
                }
            }
            Mutation::DuplicateName(a, b) if n > 1 => {
                let key = doc.entries[b.index(n)].key.clone();
                doc.entries[a.index(n)].key = key;
            }
            Mutation::EntryAsArray(e, extra) => {
                if n == 0 {
                    continue;
                }
                let entry = &mut doc.entries[e.index(n)];
                if let Value::Fields(fields) = &entry.value {
                    let get = |name: &str| {
                        let key = format!("\"{name}\"");
                        fields.iter().find(|(k, _)| *k == key).map(|f| f.1.clone())
                    };
                    let items: Option<Vec<String>> = FIELDS.iter().map(|f| get(f)).collect();
                    if let Some(mut items) = items {
                        if *extra {
                            items.push("0".into());
                        }
                        entry.value = Value::Raw(format!("[{}]", items.join(",")));
                    }
                }
            }
            Mutation::SetMetadata(text) => {
                let key = quoted(trtllm_prune::fixture::METADATA_KEY);
                match doc.entries.iter_mut().find(|e| e.key == key) {
                    Some(e) => e.value = Value::Raw(text.clone()),
                    None => doc.entries.push(Entry {
                        key,
                        value: Value::Raw(text.clone()),
                    }),
                }
            }
            Mutation::DuplicateMetadata => doc.entries.push(Entry {
                key: quoted(trtllm_prune::fixture::METADATA_KEY),
                value: Value::Raw("{}".into()),
            }),
            Mutation::EscapeKeys(e) if n > 0 => {
                let entry = &mut doc.entries[e.index(n)];
                escape_first_char(&mut entry.key);
                if let Value::Fields(fields) = &mut entry.value {
                    fields.iter_mut().for_each(|(k, _)| escape_first_char(k));
                }
            }
            Mutation::WrapTopLevel(before, after) => wrap = (before, after),
            _ => {}
        }
    }
    doc.lead = format!("{}{}", wrap.0, doc.lead);
    doc.trail = format!("{}{}", doc.trail, wrap.1);
    let mut bytes = doc.bytes();
    let mut header_len = bytes.len() - doc.data.len() - 8;
    for m in mutations {
        if 8 + header_len > bytes.len() {
            break; // truncated into the header: nothing left to edit there
        }
        match m {
            Mutation::HeaderLen(delta) => {
                let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                let n = n.wrapping_add_signed(*delta);
                bytes[..8].copy_from_slice(&n.to_le_bytes());
            }
            Mutation::FlipHeaderByte(at, x) if header_len > 0 => {
                bytes[8 + at.index(header_len)] ^= x;
            }
            Mutation::SetHeaderByte(at, b) if header_len > 0 => {
                bytes[8 + at.index(header_len)] = *b;
            }
            Mutation::InsertHeaderByte(at, b) => {
                bytes.insert(8 + at.index(header_len + 1), *b);
                header_len += 1;
                bytes[..8].copy_from_slice(&(header_len as u64).to_le_bytes());
            }
            Mutation::AppendData(extra) => bytes.extend_from_slice(extra),
            Mutation::TruncateData(at) => {
                let keep = at.index(bytes.len());
                bytes.truncate(keep);
            }
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_files_are_read_alike(doc in valid_file()) {
        let bytes = doc.bytes();
        let ours = trtllm_prune::fixture::parse_file(&bytes);
        prop_assert!(ours.is_ok(), "valid file rejected: {:?}\n{}", ours, doc.header_text());
        assert_agrees(&bytes);
    }

    #[test]
    fn planned_outputs_are_read_by_the_official_crate(doc in valid_file(), control: u8) {
        let bytes = doc.bytes();
        let input = trtllm_prune::fixture::parse_file(&bytes).expect("valid file");
        let (rule, align) = fuzz_checks::rule_from(control);
        let plan = plan_prune(&input, &rule, align).expect("plans");
        let out = fuzz_checks::apply_plan(&bytes, &plan);
        // The same checks as the roundtrip fuzz target, with our reader.
        let mut data = vec![control];
        data.extend_from_slice(&bytes);
        fuzz_checks::check_roundtrip(&data);

        if input.tensors().any(|t| is_fnuz(t.dtype())) {
            // Difference 2: 0.7 cannot read these dtypes at all.
            return Ok(());
        }
        let read = SafeTensors::deserialize(&out);
        prop_assert!(read.is_ok(), "official crate rejects the output: {:?}", read.err());
        let read = read.expect("checked");
        prop_assert_eq!(read.len(), input.tensor_count());
        for (t, outcome) in input.tensors().zip(&plan.tensors) {
            let view = read.tensor(t.name()).expect("every name kept");
            prop_assert_eq!(format!("{:?}", view.dtype()), t.dtype().name());
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            if outcome.pruned {
                prop_assert_eq!(shape, vec![0]);
                prop_assert!(view.data().is_empty());
            } else {
                prop_assert_eq!(&shape, &t.shape());
                let begin = (input.data_start() + t.begin()) as usize;
                prop_assert_eq!(view.data(), &bytes[begin..begin + t.byte_len() as usize]);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(1536))]

    #[test]
    fn mutated_files_are_accepted_exactly_when_the_official_crate_accepts(
        doc in valid_file(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        assert_agrees(&mutate(doc, &mutations));
    }
}

// ---------------------------------------------------------------------------
// The deliberate differences, and regressions found by the properties and
// the fuzz targets.

fn file(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0x5a);
    out
}

#[test]
fn duplicate_names_are_rejected_where_the_official_crate_keeps_the_last() {
    let bytes = file(
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
        2,
    );
    let err = trtllm_prune::fixture::parse_file(&bytes).unwrap_err();
    assert_eq!(err.problem, "duplicate tensor name");
    let Official::Accepted(tensors, _) = official(&bytes) else {
        panic!("the official crate 0.7 accepts duplicates");
    };
    assert_eq!(tensors["a"].1, [2], "it keeps the last entry");
}

#[test]
fn fnuz_dtypes_are_accepted_where_the_official_crate_0_7_rejects_them() {
    for dtype in ["F8_E4M3FNUZ", "F8_E5M2FNUZ"] {
        let header = format!(r#"{{"a":{{"dtype":"{dtype}","shape":[2],"data_offsets":[0,2]}}}}"#);
        let bytes = file(&header, 2);
        let ours = trtllm_prune::fixture::parse_file(&bytes).expect("accepted");
        assert_eq!(ours.tensor(0).unwrap().dtype().name(), dtype);
        assert!(matches!(official(&bytes), Official::Rejected(_)));
    }
}

#[test]
fn offsets_summing_past_u64_are_rejected_where_the_official_crate_overflows() {
    let bytes = offsets_past_u64();
    let err = trtllm_prune::fixture::parse_file(&bytes).unwrap_err();
    assert!(err.problem.contains("overflows"), "{err}");
    // In a debug build the crate's `buffer_end + N_LEN + n` panics; in a
    // release build it wraps and rejects the length. Either way: no accept.
    assert!(!matches!(official(&bytes), Official::Accepted(..)));
}

/// Regression: unknown keys in a tensor entry were only skimmed (serde skips
/// them without a depth limit or string and number checks), so we accepted
/// headers the official crate rejects. It buffers every value in full.
#[test]
fn fast_scan_agrees_with_serde() {
    let entry = r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
    let headers = [
        format!(r#"{{"a":{entry}}}"#),
        format!(" \n{{ \"a\" :\t{entry} }}\r\n "),
        format!(r#"{{"__metadata__":null,"a":{entry}}}"#),
        format!(r#"{{"__metadata__":{{ }},"a":{entry}}}"#),
        format!(r#"{{"__metadata__":{{"k":"v","k":"w"}},"a":{entry}}}"#),
        format!(r#"{{"a":{entry},"__metadata__":{{"format":"pt"}}}}"#),
        format!(r#"{{"__metadata__":null,"__metadata__":null,"a":{entry}}}"#),
        format!(r#"{{"__metadata__":nullx,"a":{entry}}}"#),
        format!(r#"{{"__metadata__":{{"k":1}},"a":{entry}}}"#),
        format!("{{\"é\u{2028}\":{entry}}}"),
        format!(r#"{{"a\u0062":{entry}}}"#),
        format!(r#"{{"a":{entry},}}"#),
        format!(r#"{{"a":{entry}}} x"#),
        r#"{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":[]}}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#.to_string(),
        r#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#.to_string(),
        r#"{"a":["F32",[1],[0,4]]}"#.to_string(),
        r#"{"a":{"dtype":"F32","shape":[ ],"data_offsets":[ 0 , 4 ]}}"#.to_string(),
        "{}".to_string(),
        "[]".to_string(),
    ];
    for text in headers {
        let bytes = file(&text, 4);
        assert_eq!(
            trtllm_prune::fixture::parse_file(&bytes),
            trtllm_prune::fixture::parse_file_without_fast_scan(&bytes),
            "{text}"
        );
    }
    // The common form is read, and read alike.
    let plain = file(&format!(r#"{{"a":{entry}}}"#), 4);
    assert!(trtllm_prune::fixture::parse_file(&plain).is_ok());
}

#[test]
fn unknown_keys_are_fully_parsed() {
    let entry = |extra: &str| {
        format!(r#"{{"w":{{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":{extra}}}}}"#)
    };
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for (extra, accepted) in [
        (deep(120), true),
        (deep(130), false),
        ("\"\\ud800\"".to_string(), false),
        ("\"\\ud83d\\ude00\"".to_string(), true),
        ("1e999".to_string(), false),
        ("-1e-999".to_string(), true),
        ("{\"a\":\"\\udc00\"}".to_string(), false),
    ] {
        let bytes = file(&entry(&extra), 1);
        assert_eq!(
            trtllm_prune::fixture::parse_file(&bytes).is_ok(),
            accepted,
            "{extra}"
        );
        assert_agrees(&bytes);
    }
}

#[test]
fn escaped_keys_mean_what_they_decode_to() {
    let w = r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#;
    for (header, data) in [
        (r#"{"\u005f_metadata__":{"a":"b"}}"#.to_string(), 0),
        (r#"{"\u005f_metadata__":{"a":1}}"#.to_string(), 0),
        (format!(r#"{{"w":{w},"\u0077":{w}}}"#), 1),
        (
            r#"{"w":{"d\u0074ype":"U8","shape":[1],"data_\u006fffsets":[0,1]}}"#.to_string(),
            1,
        ),
        (
            r#"{"w":{"dtype":"\u0055\u0038","shape":[1],"data_offsets":[0,1]}}"#.to_string(),
            1,
        ),
    ] {
        assert_agrees(&file(&header, data));
    }
    let ours =
        trtllm_prune::fixture::parse_file(&file(r#"{"\u005f_metadata__":{"a":"b"}}"#, 0)).unwrap();
    assert!(
        (ours.tensor_count() == 0),
        "an escaped __metadata__ is the metadata"
    );
}

/// Eight tensors of 2^61 - 1 bytes each, tiling up to u64::MAX - 7: every
/// tensor is valid on its own, only the file length sum overflows.
fn offsets_past_u64() -> Vec<u8> {
    let size = (1u64 << 61) - 1;
    let mut entries = Vec::new();
    let mut begin = 0u64;
    for i in 0..8 {
        let end = begin + size;
        entries.push(format!(
            r#""t{i}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{begin},{end}]}}"#
        ));
        begin = end;
    }
    file(&format!("{{{}}}", entries.join(",")), 0)
}

// ---------------------------------------------------------------------------
// The seed corpus of the fuzz targets.

/// Small adversarial files: valid ones of every shape the format allows,
/// and one per rule the readers enforce.
fn adversarial_files() -> Vec<(String, Vec<u8>)> {
    let t = |dtype: &str, shape: &str, b: u64, e: u64| {
        format!(r#"{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{b},{e}]}}"#)
    };
    let one = |entry: String, data: usize| file(&format!(r#"{{"w":{entry}}}"#), data);
    let two = |a: String, b: String, data: usize| file(&format!(r#"{{"a":{a},"b":{b}}}"#), data);
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("valid-empty".into(), file("{}", 0)),
        ("valid-one-f32".into(), one(t("F32", "[2]", 0, 8), 8)),
        ("valid-scalar".into(), one(t("F64", "[]", 0, 8), 8)),
        (
            "valid-zero-size".into(),
            two(t("BF16", "[0,3]", 0, 0), t("U8", "[1]", 0, 1), 1),
        ),
        (
            "valid-unordered".into(),
            two(t("I16", "[2]", 4, 8), t("I32", "[1]", 0, 4), 8),
        ),
        (
            "valid-metadata".into(),
            file(
                &format!(
                    r#"{{"__metadata__":{{"format":"pt","k":"v"}},"w":{}}}"#,
                    t("U8", "[3]", 0, 3)
                ),
                3,
            ),
        ),
        (
            "valid-metadata-null".into(),
            file(
                &format!(r#"{{"w":{},"__metadata__":null}}"#, t("U8", "[3]", 0, 3)),
                3,
            ),
        ),
        (
            "valid-whitespace".into(),
            file(
                &format!(" \t\n\r{{ \"w\" : {} }}\r\n\t   ", t("U8", "[ 1 ]", 0, 1)),
                1,
            ),
        ),
        (
            "valid-unknown-key".into(),
            one(
                r#"{"dtype":"U8","x":[{"y":null}],"shape":[1],"data_offsets":[0,1]}"#.into(),
                1,
            ),
        ),
        (
            "valid-entry-array".into(),
            file(r#"{"w":["U8",[2],[0,2]]}"#, 2),
        ),
        (
            "valid-dtype-object".into(),
            one(
                r#"{"dtype":{"U8":null},"shape":[1],"data_offsets":[0,1]}"#.into(),
                1,
            ),
        ),
        (
            "valid-escaped-names".into(),
            file(
                &format!(
                    r#"{{"\u0000\n\ud83d\ude00":{},"\u00e9.mlp.fc.weight":{}}}"#,
                    t("U8", "[1]", 0, 1),
                    t("U8", "[1]", 1, 2)
                ),
                2,
            ),
        ),
        (
            "valid-fnuz".into(),
            two(
                t("F8_E4M3FNUZ", "[2]", 0, 2),
                t("F8_E5M2FNUZ", "[1]", 2, 3),
                3,
            ),
        ),
        (
            "valid-f4-f6".into(),
            two(t("F4", "[2,3]", 0, 3), t("F6_E2M3", "[4]", 3, 6), 6),
        ),
        (
            "valid-huge-dims-zero-size".into(),
            one(t("F64", "[0,18446744073709551615]", 0, 0), 0),
        ),
        ("reject-too-short".into(), vec![2, 0, 0, 0, 0, 0, 0]),
        ("reject-n-over-limit".into(), {
            let mut b = 100_000_001u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        ("reject-n-past-end".into(), {
            let mut b = 3u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        (
            "reject-not-utf8".into(),
            file("{\"\u{fffd}\":1}", 0)
                .into_iter()
                .map(|b| if b == 0xbd { 0xff } else { b })
                .collect(),
        ),
        ("reject-not-json".into(), file("{\"w\":", 0)),
        ("reject-top-level-array".into(), file("[]", 0)),
        ("reject-bom".into(), file("\u{feff}{}", 0)),
        ("reject-nul-padding".into(), file("{}\0\0\0\0\0\0", 0)),
        (
            "reject-missing-field".into(),
            one(r#"{"dtype":"U8","shape":[1]}"#.into(), 1),
        ),
        (
            "reject-lowercase-dtype".into(),
            one(t("f32", "[1]", 0, 4), 4),
        ),
        (
            "reject-unknown-dtype".into(),
            one(t("F128", "[1]", 0, 16), 16),
        ),
        ("reject-negative".into(), one(t("U8", "[-1]", 0, 1), 1)),
        ("reject-minus-zero".into(), one(t("U8", "[-0]", 0, 0), 0)),
        ("reject-float".into(), one(t("U8", "[1.0]", 0, 1), 1)),
        ("reject-exponent".into(), one(t("U8", "[1e0]", 0, 1), 1)),
        (
            "reject-2-pow-64".into(),
            one(t("U8", "[18446744073709551616]", 0, 1), 1),
        ),
        (
            "reject-offsets-three".into(),
            one(
                r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1,1]}"#.into(),
                1,
            ),
        ),
        (
            "reject-metadata-number".into(),
            file(r#"{"__metadata__":{"a":1}}"#, 0),
        ),
        (
            "reject-duplicate-metadata".into(),
            file(r#"{"__metadata__":{},"__metadata__":{}}"#, 0),
        ),
        (
            "reject-duplicate-name".into(),
            file(
                &format!(
                    r#"{{"a":{},"a":{}}}"#,
                    t("U8", "[1]", 0, 1),
                    t("U8", "[1]", 0, 1)
                ),
                1,
            ),
        ),
        (
            "reject-duplicate-field".into(),
            one(
                r#"{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}"#.into(),
                1,
            ),
        ),
        (
            "reject-hole".into(),
            two(t("U8", "[1]", 0, 1), t("U8", "[1]", 2, 3), 3),
        ),
        (
            "reject-overlap".into(),
            two(t("U8", "[2]", 0, 2), t("U8", "[2]", 1, 3), 3),
        ),
        ("reject-not-at-zero".into(), one(t("U8", "[1]", 1, 2), 2)),
        (
            "reject-end-before-begin".into(),
            two(t("U8", "[0]", 0, 0), t("U8", "[0]", 2, 0), 0),
        ),
        ("reject-size-mismatch".into(), one(t("F32", "[2]", 0, 4), 4)),
        ("reject-f4-odd".into(), one(t("F4", "[3]", 0, 1), 1)),
        (
            "reject-f6-not-four".into(),
            one(t("F6_E3M2", "[2]", 0, 1), 1),
        ),
        (
            "reject-shape-overflow".into(),
            one(t("U8", "[4294967296,4294967296]", 0, 0), 0),
        ),
        (
            "reject-bits-overflow".into(),
            one(t("U64", "[2305843009213693952]", 0, 0), 0),
        ),
        ("reject-offsets-past-u64".into(), offsets_past_u64()),
        ("reject-trailing-bytes".into(), one(t("U8", "[1]", 0, 1), 2)),
        ("reject-truncated".into(), one(t("U8", "[2]", 0, 2), 1)),
        (
            "reject-unknown-key-deep".into(),
            one(
                format!(
                    r#"{{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":{}{}}}"#,
                    "[".repeat(130),
                    "]".repeat(130)
                ),
                1,
            ),
        ),
        (
            "reject-unknown-key-surrogate".into(),
            one(
                r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\ud800"}"#.into(),
                1,
            ),
        ),
        (
            "reject-unknown-key-inf".into(),
            one(
                r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1e999}"#.into(),
                1,
            ),
        ),
    ];
    // Realistic rank files, kept small.
    for (family, name) in [
        (Family::Llama, "llama"),
        (Family::Gpt, "gpt"),
        (Family::Moe, "moe"),
        (Family::Fp8, "fp8"),
        (Family::Awq, "awq"),
    ] {
        let spec = CheckpointSpec {
            layers: 1,
            hidden: 16,
            intermediate: 32,
            vocab: 8,
            ..CheckpointSpec::tiny(family, 2, 1)
        };
        out.push((
            format!("valid-rank-{name}"),
            rank_bytes(&spec.rank_tensors(1)),
        ));
    }
    out.push((
        "valid-every-dtype".into(),
        rank_bytes(&fixture::every_dtype_tensors()),
    ));
    out
}

/// A rank file as the fixture writer lays it out, built in memory.
fn rank_bytes(tensors: &[TensorSpec]) -> Vec<u8> {
    let order: Vec<usize> = (0..tensors.len()).collect();
    valid_doc(tensors, &order, &order, None, ("", "", " ")).bytes()
}

/// Control bytes the roundtrip seeds are prefixed with (see
/// `fuzz_checks::rule_from`): the default rule, `--prune_all`, patterns,
/// and each alignment.
const ROUNDTRIP_CONTROLS: [u8; 4] = [0x06, 0x01, 0x6a, 0xb4];

fn seed_corpus() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut seeds = BTreeMap::new();
    for (name, bytes) in adversarial_files() {
        if name.starts_with("valid-") {
            for control in ROUNDTRIP_CONTROLS {
                let mut data = vec![control];
                data.extend_from_slice(&bytes);
                seeds.insert(
                    Path::new("roundtrip").join(format!("{name}-{control:02x}")),
                    data,
                );
            }
        }
        seeds.insert(Path::new("header").join(&name), bytes);
    }
    seeds
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

/// The committed seeds are exactly what [`adversarial_files`] generates.
/// Regenerate them with `UPDATE_FUZZ_SEEDS=1 cargo test fuzz_seed_corpus`.
#[test]
fn fuzz_seed_corpus_matches_its_generator() {
    let seeds = seed_corpus();
    let dir = seeds_dir();
    if std::env::var_os("UPDATE_FUZZ_SEEDS").is_some() {
        let _ = fs::remove_dir_all(&dir);
        for (path, bytes) in &seeds {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(&path, bytes).expect("write seed");
        }
    }
    let mut on_disk = BTreeMap::new();
    for target in ["header", "roundtrip"] {
        let entries = fs::read_dir(dir.join(target)).expect("seed dir exists");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(&dir).expect("under dir").to_path_buf();
            on_disk.insert(rel, fs::read(&path).expect("read seed"));
        }
    }
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&on_disk),
        names(&seeds),
        "run with UPDATE_FUZZ_SEEDS=1"
    );
    for (path, bytes) in &seeds {
        assert!(on_disk[path] == *bytes, "{} is stale", path.display());
    }
}

#[test]
fn seeds_are_read_as_their_names_say_and_like_the_official_crate() {
    for (name, bytes) in adversarial_files() {
        let accepted = trtllm_prune::fixture::parse_file(&bytes).is_ok();
        assert_eq!(accepted, name.starts_with("valid-"), "{name}");
        assert_agrees(&bytes);
        fuzz_checks::check_header(&bytes);
    }
    for (path, bytes) in seed_corpus() {
        if path.starts_with("roundtrip") {
            fuzz_checks::check_roundtrip(&bytes);
        }
    }
}
