//! What the binary writes: checkpoints are generated with
//! `trtllm_prune::fixture`, pruned by running the binary, and every output
//! is read back with the official `safetensors` crate as the oracle.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use safetensors::SafeTensors;
use serde_json::{Map, Value};
use trtllm_prune::fixture::{
    every_dtype_tensors, write_safetensors, CheckpointSpec, Family, TensorSpec,
};
use trtllm_prune::Dtype;

use crate::util;

/// The original tool's rule, restated here independently of `src/plan/rule.rs`:
/// a name is pruned when it *contains* one of these.
const ORIGINAL_SUBSTRINGS: [&str; 5] = [
    "attention.qkv.weight",
    "attention.proj.weight",
    "mlp.fc.weight",
    "mlp.proj.weight",
    "mlp.gate.weight",
];

fn original_rule(name: &str) -> bool {
    ORIGINAL_SUBSTRINGS.iter().any(|s| name.contains(s))
}

/// One tensor as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

/// Every tensor of a safetensors file, read by the official crate.
fn official(path: &Path) -> BTreeMap<String, Seen> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: official reader refuses it: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let seen = Seen {
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().iter().map(|&d| d as u64).collect(),
                data: view.data().to_vec(),
            };
            (name, seen)
        })
        .collect()
}

/// Every tensor of a safetensors file, read by our own reader (for dtypes
/// the official crate does not know).
fn ours(path: &Path) -> BTreeMap<String, Seen> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let h = trtllm_prune::fixture::parse_file(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = h.data_start() as usize;
    h.tensors()
        .map(|t| {
            let seen = Seen {
                dtype: t.dtype().name().to_string(),
                shape: t.shape().to_owned(),
                data: bytes[start + t.begin() as usize..start + t.end() as usize].to_vec(),
            };
            (t.name().to_owned(), seen)
        })
        .collect()
}

/// Checks one output rank against its input: same names; a pruned tensor
/// has the input's dtype, shape `[0]` and no bytes; any other tensor has
/// the input's dtype, shape and bytes. Returns (pruned, kept) counts.
#[track_caller]
fn check_rank(
    input: &BTreeMap<String, Seen>,
    output: &BTreeMap<String, Seen>,
    pruned: impl Fn(&str) -> bool,
) -> (usize, usize) {
    let in_names: Vec<&String> = input.keys().collect();
    let out_names: Vec<&String> = output.keys().collect();
    assert_eq!(in_names, out_names, "tensor names differ");
    let mut counts = (0, 0);
    for (name, before) in input {
        let after = &output[name];
        if pruned(name) {
            counts.0 += 1;
            let empty = Seen {
                dtype: before.dtype.clone(),
                shape: vec![0],
                data: Vec::new(),
            };
            assert_eq!(after, &empty, "`{name}` should be pruned");
        } else {
            counts.1 += 1;
            assert_eq!(after, before, "`{name}` should be kept as it was");
        }
    }
    counts
}

/// Prunes `ckpt` into `out` (quietly) with `extra` flags, asserting success.
fn prune(ckpt: &Path, out: &Path, extra: &[&str]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"--quiet"];
    for e in extra {
        args.push(e);
    }
    util::assert_success(util::run(&args));
}

fn rank(dir: &Path, n: u64) -> std::path::PathBuf {
    dir.join(format!("rank{n}.safetensors"))
}

fn json_object(path: &Path) -> Map<String, Value> {
    let text = fs::read_to_string(path).expect("config reads");
    match serde_json::from_str(&text).expect("config is JSON") {
        Value::Object(m) => m,
        other => panic!("config is not an object: {other}"),
    }
}

/// A one-rank checkpoint (config without `mapping`) holding `tensors`.
fn single_rank_checkpoint(
    root: &Path,
    tensors: &[TensorSpec],
    metadata: Option<&[(&str, &str)]>,
) -> std::path::PathBuf {
    let dir = root.join("ckpt");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("config.json"), r#"{"architecture": "Test"}"#).unwrap();
    write_safetensors(&rank(&dir, 0), tensors, metadata).unwrap();
    dir
}

#[test]
fn prunes_exactly_the_original_rule_in_every_family_and_rank() {
    for family in [Family::Llama, Family::Moe, Family::Fp8, Family::Awq] {
        let tmp = util::tempdir();
        let spec = CheckpointSpec::tiny(family, 2, 2);
        let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &spec);
        let out = tmp.path().join("out");
        prune(&ckpt, &out, &[]);
        assert_eq!(
            util::file_names(&out),
            [
                "config.json",
                "rank0.safetensors",
                "rank1.safetensors",
                "rank2.safetensors",
                "rank3.safetensors"
            ],
            "{family:?}"
        );
        for r in 0..4 {
            let (pruned, kept) = check_rank(
                &official(&rank(&ckpt, r)),
                &official(&rank(&out, r)),
                original_rule,
            );
            assert!(
                pruned > 0 && kept > 0,
                "{family:?} rank {r}: {pruned}/{kept}"
            );
        }
    }
}

#[test]
fn gpt_prunes_weights_and_keeps_biases() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &CheckpointSpec::tiny(Family::Gpt, 1, 1));
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let output = official(&rank(&out, 0));
    check_rank(&official(&rank(&ckpt, 0)), &output, original_rule);
    assert_eq!(output["transformer.layers.0.mlp.fc.weight"].shape, [0]);
    assert_ne!(output["transformer.layers.0.mlp.fc.bias"].shape, [0]);
    assert_ne!(output["transformer.layers.0.attention.qkv.bias"].shape, [0]);
    assert_ne!(output["transformer.position_embedding.weight"].shape, [0]);
}

#[test]
fn substring_rule_prunes_scales_and_keeps_dense_router_and_shared_expert() {
    let tmp = util::tempdir();
    let cases: [(Family, &[&str], &[&str]); 3] = [
        (
            Family::Fp8,
            &[
                "transformer.layers.0.attention.qkv.weights_scaling_factor",
                "transformer.layers.0.mlp.fc.weights_scaling_factor",
                "transformer.layers.0.mlp.gate.weights_scaling_factor",
                "transformer.layers.0.mlp.proj.weight",
            ],
            &[
                "transformer.layers.0.attention.dense.weight",
                "transformer.layers.0.attention.dense.weights_scaling_factor",
                "transformer.layers.0.attention.qkv.activation_scaling_factor",
                "transformer.layers.0.attention.kv_cache_scaling_factor",
                "transformer.layers.0.input_layernorm.weight",
                "transformer.vocab_embedding.weight",
                "lm_head.weight",
            ],
        ),
        (
            Family::Awq,
            &[
                "transformer.layers.1.attention.qkv.weight",
                "transformer.layers.1.attention.qkv.weights_scaling_factor",
                "transformer.layers.1.mlp.proj.weights_scaling_factor",
            ],
            &[
                "transformer.layers.1.attention.qkv.prequant_scaling_factor",
                "transformer.layers.1.attention.dense.weight",
                "transformer.layers.1.mlp.fc.prequant_scaling_factor",
                "transformer.ln_f.weight",
            ],
        ),
        (
            Family::Moe,
            &[
                "transformer.layers.0.mlp.fc.weight",
                "transformer.layers.0.mlp.proj.weight",
            ],
            &[
                "transformer.layers.0.mlp.router.weight",
                "transformer.layers.0.mlp.shared_expert.fc.weight",
                "transformer.layers.0.mlp.shared_expert_gate.weight",
                "transformer.layers.0.post_layernorm.weight",
            ],
        ),
    ];
    for (family, pruned, kept) in cases {
        let ckpt = util::write_checkpoint(
            tmp.path(),
            &format!("{family:?}"),
            &CheckpointSpec::tiny(family, 1, 1),
        );
        let out = tmp.path().join(format!("{family:?}.out"));
        prune(&ckpt, &out, &[]);
        let input = official(&rank(&ckpt, 0));
        let output = official(&rank(&out, 0));
        for name in pruned {
            let t = &output[*name];
            assert_eq!((&t.shape[..], t.data.len()), (&[0][..], 0), "{name}");
            assert_eq!(t.dtype, input[*name].dtype, "{name}");
        }
        for name in kept {
            assert_eq!(output[*name], input[*name], "{name}");
            assert!(!input[*name].data.is_empty(), "{name} has bytes to keep");
        }
    }
}

#[test]
fn substring_rule_matches_anywhere_and_is_case_sensitive() {
    let cases = [
        ("prefix.attention.qkv.weightXYZ", true),
        ("attention.proj.weight", true),
        ("a.mlp.gate.weight.b", true),
        ("layers.0.mlp.fc.weight_scale", true),
        ("x.mlp.proj.weights_scaling_factor", true),
        ("attention.qkv.weigh", false),
        ("ATTENTION.QKV.WEIGHT", false),
        ("mlp_fc.weight", false),
        ("mlp.fc.bias", false),
        ("attention.qkv_weight", false),
    ];
    let tensors: Vec<TensorSpec> = cases
        .iter()
        .map(|(name, _)| TensorSpec::new(*name, Dtype::F16, &[3]))
        .collect();
    let tmp = util::tempdir();
    let ckpt = single_rank_checkpoint(tmp.path(), &tensors, None);
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let output = official(&rank(&out, 0));
    for (name, pruned) in cases {
        let expected: &[u64] = if pruned { &[0] } else { &[3] };
        assert_eq!(output[name].shape, expected, "{name}");
        assert_eq!(original_rule(name), pruned, "the test's own oracle: {name}");
    }
}

#[test]
fn prune_all_empties_every_tensor() {
    for family in [Family::Moe, Family::Fp8] {
        let tmp = util::tempdir();
        let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &CheckpointSpec::tiny(family, 2, 1));
        let out = tmp.path().join("out");
        prune(&ckpt, &out, &["--prune_all"]);
        for r in 0..2 {
            let (_, kept) = check_rank(
                &official(&rank(&ckpt, r)),
                &official(&rank(&out, r)),
                |_| true,
            );
            assert_eq!(kept, 0);
        }
        assert_eq!(json_object(&out.join("config.json"))["is_pruned"], true);
    }
}

/// F8_E4M3FNUZ and F8_E5M2FNUZ are valid for us but unknown to the official
/// safetensors 0.7.0 reader, which refuses any file holding them; they are
/// left out wherever the official crate is the oracle.
fn officially_known(dtype: Dtype) -> bool {
    !matches!(dtype, Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ)
}

#[test]
fn keeps_every_dtype_scalars_and_zero_size_tensors() {
    let tensors: Vec<TensorSpec> = every_dtype_tensors()
        .into_iter()
        .filter(|t| officially_known(t.dtype))
        .collect();
    for prune_all in [false, true] {
        let tmp = util::tempdir();
        let ckpt = single_rank_checkpoint(tmp.path(), &tensors, None);
        let out = tmp.path().join("out");
        prune(&ckpt, &out, if prune_all { &["--prune_all"] } else { &[] });
        let input = official(&rank(&ckpt, 0));
        let output = official(&rank(&out, 0));
        let (pruned, kept) = check_rank(&input, &output, |n| prune_all || original_rule(n));
        assert_eq!(pruned + kept, tensors.len());
        if !prune_all {
            // Scalars keep shape [] and their bytes; a kept zero-size tensor
            // keeps its own shape, not [0]; sub-byte tensors keep theirs.
            let i = |d: Dtype| Dtype::ALL.iter().position(|&x| x == d).unwrap();
            let scalar = &output[&format!("scalars.{}.F32", i(Dtype::F32))];
            assert_eq!((&scalar.shape[..], scalar.data.len()), (&[][..], 4));
            let f6 = i(Dtype::F6_E3M2);
            assert_eq!(output[&format!("empty.{f6}.kept")].shape, [3, 0]);
            let pruned_empty = &output[&format!("empty.{f6}.attention.qkv.weight")];
            assert_eq!(
                (&pruned_empty.shape[..], &pruned_empty.dtype[..]),
                (&[0][..], "F6_E3M2")
            );
            let f4 = output
                .values()
                .find(|t| t.dtype == "F4" && t.shape == [4, 12])
                .expect("a kept F4 matrix");
            assert_eq!(f4.data.len(), 24);
        }
    }
}

#[test]
fn keeps_fnuz_dtypes_the_official_reader_does_not_know() {
    // Checked with our own reader: safetensors 0.7.0 rejects these dtypes.
    let tmp = util::tempdir();
    let ckpt = single_rank_checkpoint(tmp.path(), &every_dtype_tensors(), None);
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let output = ours(&rank(&out, 0));
    check_rank(&ours(&rank(&ckpt, 0)), &output, original_rule);
    let fnuz: Vec<&Seen> = output
        .values()
        .filter(|t| t.dtype.ends_with("FNUZ"))
        .collect();
    assert_eq!(fnuz.len(), 8, "4 tensors of each FNUZ dtype");
}

#[test]
fn keeps_metadata_verbatim() {
    // Hand-written so that spacing, key order and escapes are not what a
    // serializer would produce: the output must carry the same text.
    let metadata = r#"{ "format":"pt",  "note": "caf\u00e9 \"q\"", "a" : "1" }"#;
    let json = format!(
        r#"{{"lm_head.weight":{{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}, "__metadata__": {metadata}, "x.mlp.fc.weight":{{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}}}"#
    );
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("ckpt");
    fs::create_dir(&ckpt).unwrap();
    fs::write(ckpt.join("config.json"), "{}").unwrap();
    fs::write(
        rank(&ckpt, 0),
        util::safetensors_bytes(&json, &[1, 2, 3, 4, 5, 6, 7]),
    )
    .unwrap();
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let bytes = fs::read(rank(&out, 0)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(&format!("\"__metadata__\":{metadata}")),
        "metadata not verbatim in {text}"
    );
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("official reader accepts it");
    let meta = meta.metadata().clone().expect("metadata present");
    assert_eq!(meta["note"], "café \"q\"");
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta.len(), 3);
}

#[test]
fn keeps_fixture_metadata_readable_by_the_official_crate() {
    let tensors = CheckpointSpec::tiny(Family::Llama, 1, 1).rank_tensors(0);
    let tmp = util::tempdir();
    let ckpt = single_rank_checkpoint(tmp.path(), &tensors, Some(&[("format", "pt")]));
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &["--prune_all"]);
    let bytes = fs::read(rank(&out, 0)).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let expected = std::collections::HashMap::from([("format".into(), "pt".into())]);
    assert_eq!(meta.metadata(), &Some(expected));
}

#[test]
fn writes_config_as_the_same_object_plus_is_pruned_true() {
    let tmp = util::tempdir();
    let spec = CheckpointSpec::tiny(Family::Moe, 2, 1);
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &spec);
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let before = json_object(&ckpt.join("config.json"));
    let after = json_object(&out.join("config.json"));
    let mut expected_keys: Vec<&String> = before.keys().collect();
    let is_pruned = "is_pruned".to_string();
    expected_keys.push(&is_pruned);
    assert_eq!(after.keys().collect::<Vec<_>>(), expected_keys, "key order");
    for (k, v) in &before {
        assert_eq!(&after[k], v, "value of `{k}`");
    }
    assert_eq!(after["is_pruned"], Value::Bool(true));
    // Nested objects keep their key order too.
    let order = |m: &Map<String, Value>| -> Vec<String> {
        m["mapping"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(order(&after), order(&before));
}

#[test]
fn turns_existing_is_pruned_false_into_true_in_place() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    fs::write(
        ckpt.join("config.json"),
        r#"{"architecture": "LlamaForCausalLM", "is_pruned": false, "dtype": "bfloat16"}"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    let after = json_object(&out.join("config.json"));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["architecture", "is_pruned", "dtype"]
    );
    assert_eq!(after["is_pruned"], Value::Bool(true));
    assert_eq!(after["dtype"], "bfloat16");
}

#[test]
fn world_size_comes_from_mapping() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 2),
    );
    // Four ranks by mapping.world_size; a fifth file is outside it.
    fs::copy(rank(&ckpt, 0), rank(&ckpt, 4)).unwrap();
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    assert_eq!(
        util::file_names(&out),
        [
            "config.json",
            "rank0.safetensors",
            "rank1.safetensors",
            "rank2.safetensors",
            "rank3.safetensors"
        ]
    );
}

#[test]
fn world_size_is_one_without_mapping() {
    // GPT configs carry no `mapping`: only rank0 is read and written, even
    // though the fixture wrote two rank files.
    let tmp = util::tempdir();
    let spec = CheckpointSpec::tiny(Family::Gpt, 2, 1);
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &spec);
    assert!(!json_object(&ckpt.join("config.json")).contains_key("mapping"));
    assert!(rank(&ckpt, 1).exists());
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    assert_eq!(util::file_names(&out), ["config.json", "rank0.safetensors"]);
}

#[test]
fn world_size_is_one_when_mapping_lacks_it() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    fs::write(
        ckpt.join("config.json"),
        r#"{"architecture": "LlamaForCausalLM", "mapping": {"tp_size": 2}}"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    assert_eq!(util::file_names(&out), ["config.json", "rank0.safetensors"]);
}

#[test]
fn copies_other_top_level_files_byte_for_byte() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let quant_cfg = br#"{"quant_algo": "MIXED_PRECISION", "quantized_layers": {}}"#;
    let blob: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    fs::write(ckpt.join("quant_cfg.json"), quant_cfg).unwrap();
    fs::write(ckpt.join("tokenizer.model"), &blob).unwrap();
    fs::write(ckpt.join("empty.txt"), b"").unwrap();
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    assert_eq!(
        util::file_names(&out),
        [
            "config.json",
            "empty.txt",
            "quant_cfg.json",
            "rank0.safetensors",
            "rank1.safetensors",
            "tokenizer.model"
        ]
    );
    assert_eq!(fs::read(out.join("quant_cfg.json")).unwrap(), quant_cfg);
    assert_eq!(fs::read(out.join("tokenizer.model")).unwrap(), blob);
    assert_eq!(fs::read(out.join("empty.txt")).unwrap(), b"");
}

#[test]
fn output_permissions_are_the_inputs_less_the_umask() {
    for (umask, file_mode, dir_mode) in [("022", 0o644, 0o755), ("027", 0o640, 0o750)] {
        let tmp = util::tempdir();
        let ckpt = util::write_checkpoint(
            tmp.path(),
            "ckpt",
            &CheckpointSpec::tiny(Family::Llama, 2, 1),
        );
        fs::write(ckpt.join("quant_cfg.json"), "{}").unwrap();
        // As `cp` does: an input that is private stays private (a copy that
        // widened it could leak a credential); the rest get the umask's.
        fs::set_permissions(
            ckpt.join("quant_cfg.json"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let out = tmp.path().join("out");
        util::assert_success(util::run_with_umask(
            umask,
            &[&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"-q"],
        ));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), dir_mode, "out_dir under umask {umask}");
        for name in util::file_names(&out) {
            let expected = if name == "quant_cfg.json" {
                0o600
            } else {
                file_mode
            };
            assert_eq!(
                mode(&out.join(&name)),
                expected,
                "{name} under umask {umask}"
            );
        }
    }
}

#[test]
fn default_out_dir_is_the_sibling_dot_pruned() {
    let tmp = util::tempdir();
    let root = tmp.path().canonicalize().unwrap();
    let ckpt = util::write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 1, 1));
    let sibling = root.join("ckpt.pruned");
    let spellings: [(&Path, &str); 4] = [
        (&root, ckpt.to_str().unwrap()),
        (&root, &format!("{}/", ckpt.display())),
        (&root, "ckpt"),
        (&root, "./ckpt/"),
    ];
    for (cwd, spelling) in spellings {
        let out = util::run_in(cwd, &[&"--checkpoint_dir", &spelling, &"-q"]);
        util::assert_success(out);
        assert_eq!(
            util::file_names(&sibling),
            ["config.json", "rank0.safetensors"],
            "--checkpoint_dir {spelling}"
        );
        assert_eq!(
            util::file_names(&ckpt),
            ["config.json", "rank0.safetensors"],
            "nothing written inside the checkpoint for {spelling}"
        );
        fs::remove_dir_all(&sibling).unwrap();
    }
    // Relative from another folder.
    let sub = root.join("sub");
    fs::create_dir(&sub).unwrap();
    util::assert_success(util::run_in(
        &sub,
        &[&"--checkpoint_dir", &"../ckpt", &"-q"],
    ));
    assert_eq!(
        util::file_names(&sibling),
        ["config.json", "rank0.safetensors"]
    );
    assert_eq!(util::file_names(&sub), Vec::<String>::new());
}

#[test]
fn default_out_dir_is_beside_the_name_given_not_beside_a_symlink_target() {
    // The original derives it from the path as given
    // (`Path(dir).with_name(name + ".pruned")`): a checkpoint reached
    // through a symlink gets its output next to the link, which may be the
    // only writable place (the target can sit on a read-only mount).
    let tmp = util::tempdir();
    let root = tmp.path().canonicalize().unwrap();
    fs::create_dir(root.join("data")).unwrap();
    fs::create_dir(root.join("work")).unwrap();
    util::write_checkpoint(
        &root.join("data"),
        "real",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    std::os::unix::fs::symlink("../data/real", root.join("work/llama")).unwrap();
    util::assert_success(util::run_in(
        &root.join("work"),
        &[&"--checkpoint_dir", &"llama/", &"-q"],
    ));
    assert_eq!(
        util::file_names(&root.join("work/llama.pruned")),
        ["config.json", "rank0.safetensors"]
    );
    assert_eq!(util::file_names(&root.join("data")), ["real"]);
    // A spelling without a last name of its own falls back to the folder's
    // real name.
    util::assert_success(util::run_in(
        &root.join("data/real"),
        &[&"--checkpoint_dir", &".", &"-q"],
    ));
    assert_eq!(
        util::file_names(&root.join("data/real.pruned")),
        ["config.json", "rank0.safetensors"]
    );
}

#[test]
fn keeps_unrelated_files_in_an_existing_out_dir() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "mine").unwrap();
    // A rank file beyond world_size is refused instead (verify would
    // reject the folder): first_hour::stale_rank_files_beyond_world_size_*.
    fs::write(out.join("rank01.safetensors"), "not ours").unwrap();
    fs::create_dir(out.join("sub")).unwrap();
    prune(&ckpt, &out, &[]);
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert_eq!(
        fs::read_to_string(out.join("rank01.safetensors")).unwrap(),
        "not ours"
    );
    assert!(out.join("sub").is_dir());
    assert_eq!(
        util::file_names(&out),
        [
            "config.json",
            "notes.txt",
            "rank0.safetensors",
            "rank01.safetensors",
            "sub"
        ],
        "no temp file left behind"
    );
}

#[test]
fn rerun_replaces_the_existing_output() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &["--prune_all"]);
    let skeleton = fs::read(rank(&out, 0)).unwrap();
    // A read-only leftover must be replaced as well.
    fs::set_permissions(rank(&out, 1), fs::Permissions::from_mode(0o444)).unwrap();
    fs::write(out.join("config.json"), "stale").unwrap();
    prune(&ckpt, &out, &[]);
    assert_ne!(fs::read(rank(&out, 0)).unwrap(), skeleton);
    for r in 0..2 {
        check_rank(
            &official(&rank(&ckpt, r)),
            &official(&rank(&out, r)),
            original_rule,
        );
    }
    assert_eq!(json_object(&out.join("config.json"))["is_pruned"], true);
    assert_eq!(
        util::file_names(&out),
        ["config.json", "rank0.safetensors", "rank1.safetensors"]
    );
}

#[test]
fn output_does_not_depend_on_jobs_or_fsync() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &CheckpointSpec::tiny(Family::Fp8, 2, 2));
    fs::write(ckpt.join("quant_cfg.json"), "{}").unwrap();
    let one = tmp.path().join("one");
    let many = tmp.path().join("many");
    let unflushed = tmp.path().join("unflushed");
    prune(&ckpt, &one, &["--jobs", "1"]);
    prune(&ckpt, &many, &["-j", "8"]);
    prune(&ckpt, &unflushed, &["--no-fsync"]);
    assert_eq!(util::snapshot(&one), util::snapshot(&many));
    assert_eq!(util::snapshot(&one), util::snapshot(&unflushed));
    assert_eq!(util::snapshot(&one).len(), 6);
}

#[test]
fn input_is_left_unchanged() {
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(tmp.path(), "ckpt", &CheckpointSpec::tiny(Family::Awq, 2, 1));
    let before = util::snapshot(&ckpt);
    prune(&ckpt, &tmp.path().join("out"), &[]);
    assert_eq!(util::snapshot(&ckpt), before);
}

#[test]
fn copies_files_with_non_utf8_names_under_their_own_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = util::tempdir();
    let ckpt = util::write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    // Two names that differ only in bytes that are not UTF-8: a lossy
    // conversion would give both the same name.
    let names = [
        OsStr::from_bytes(b"tok\xffen.bin"),
        OsStr::from_bytes(b"tok\xfeen.bin"),
    ];
    for (i, name) in names.iter().enumerate() {
        fs::write(ckpt.join(name), format!("file {i}")).unwrap();
    }
    let out = tmp.path().join("out");
    prune(&ckpt, &out, &[]);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(out.join(name)).ok(),
            Some(format!("file {i}")),
            "{name:?}"
        );
    }
    let count = fs::read_dir(&out).unwrap().count();
    assert_eq!(count, 4, "config, rank0 and the two files, nothing else");
    // A second run replaces them, again under their own names.
    prune(&ckpt, &out, &[]);
    assert_eq!(fs::read_dir(&out).unwrap().count(), 4);
}

#[test]
fn holes_in_the_input_stay_holes_in_the_output() {
    use std::os::unix::fs::MetadataExt;
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("ckpt");
    fs::create_dir_all(&ckpt).unwrap();
    fs::write(
        ckpt.join("config.json"),
        "{\"mapping\": {\"world_size\": 1}}",
    )
    .unwrap();
    // A 48 GiB kept tensor that is all hole but for 4 KiB of data in the
    // middle, and a pruned one.
    let tensors = [
        trtllm_prune::fixture::TensorSpec::new(
            "transformer.vocab_embedding.weight",
            Dtype::U8,
            &[48 << 30],
        ),
        trtllm_prune::fixture::TensorSpec::new(
            "transformer.layers.0.mlp.fc.weight",
            Dtype::BF16,
            &[8, 8],
        ),
    ];
    let rank0 = ckpt.join("rank0.safetensors");
    trtllm_prune::fixture::write_sparse_safetensors(&rank0, &tensors).unwrap();
    let data_start = 8 + trtllm_prune::fixture::padded_header_json(&tensors, None).len() as u64;
    let middle = data_start + (24 << 30);
    let file = fs::File::options().write(true).open(&rank0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xa5; 4096], middle).unwrap();
    let out = tmp.path().join("out");

    util::assert_success(util::run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));

    let pruned = out.join("rank0.safetensors");
    let meta = fs::metadata(&pruned).unwrap();
    assert!(meta.len() > 48 << 30);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "the output stores {} bytes: holes were written",
        meta.blocks() * 512
    );
    // The data between the holes is there, where the header says.
    let f = fs::File::open(&pruned).unwrap();
    let mut prefix = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut prefix, 0).unwrap();
    let n = u64::from_le_bytes(prefix);
    let mut json = vec![0u8; n as usize];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut json, 8).unwrap();
    let parsed = trtllm_prune::parse_header(&json, meta.len()).unwrap();
    let kept = parsed
        .tensors()
        .find(|t| t.name() == "transformer.vocab_embedding.weight")
        .unwrap();
    let at = 8 + n + kept.begin() + (middle - data_start);
    let mut got = [0u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, at).unwrap();
    assert_eq!(got, [0xa5; 4096]);
    let mut zeros = [1u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut zeros, at - 4096).unwrap();
    assert_eq!(zeros, [0; 4096]);
}
