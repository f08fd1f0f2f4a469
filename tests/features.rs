//! Beyond the original: dry run, inspect, JSON, patterns, verify, generic
//! safetensors folders, in-place pruning and rank subsets.

use std::fs;
use std::path::Path;
use std::process::Output;

use safetensors::SafeTensors;
use serde_json::Value;
use trtllm_prune::fixture::{write_safetensors, CheckpointSpec, Family, TensorSpec};
use trtllm_prune::Dtype;

use crate::util::{
    assert_error, assert_success, file_names, run, snapshot, stderr, tempdir, write_checkpoint,
};

fn llama(dir: &Path, tp: u64) {
    CheckpointSpec::tiny(Family::Llama, tp, 1)
        .write(dir)
        .expect("fixture");
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

/// (dtype, shape, bytes) of every tensor of a safetensors file, by name.
fn tensors(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(path).expect("read output");
    let st = SafeTensors::deserialize(&bytes).expect("official crate reads the output");
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                format!("{:?}", view.dtype()),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pruned_names(path: &Path) -> Vec<String> {
    tensors(path)
        .into_iter()
        .filter(|(_, _, shape, data)| shape == &[0] && data.is_empty())
        .map(|(name, ..)| name)
        .collect()
}

#[test]
fn dry_run_writes_nothing_and_its_numbers_equal_a_real_run() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 2);
    fs::write(ckpt.join("quant_cfg.json"), "{}").unwrap();
    let out = tmp.path().join("out");

    let dry = stdout_json(&run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--dry-run",
        &"--json",
    ]));
    assert!(!out.exists(), "dry run created the output folder");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["copied_files"], serde_json::json!(["quant_cfg.json"]));

    let real = stdout_json(&run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--json",
        &"--quiet",
    ]));
    assert_eq!(real["dry_run"], false);
    assert_eq!(dry["totals"], real["totals"]);
    assert_eq!(dry["files"], real["files"]);
    for file in real["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let size = fs::metadata(out.join(name)).unwrap().len();
        assert_eq!(file["bytes_out"].as_u64(), Some(size), "{name}");
    }
    // 7 tensors per layer, 4 of them prunable, 2 layers, on each of 2 ranks.
    assert_eq!(real["totals"]["tensors_pruned"], 16);
}

#[test]
fn dry_run_table_lists_every_tensor_with_its_rule_when_verbose() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let out = run(&[&"--checkpoint_dir", &ckpt, &"--dry-run", &"-v"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("dry run: nothing written"));
    let qkv = text
        .lines()
        .find(|l| l.contains("layers.0.attention.qkv.weight"))
        .expect("per-tensor line");
    assert!(qkv.trim_start().starts_with("prune"), "{qkv}");
    assert!(qkv.contains("default rule `attention.qkv.weight`"), "{qkv}");
    let dense = text
        .lines()
        .find(|l| l.contains("layers.0.attention.dense.weight"))
        .unwrap();
    assert!(dense.trim_start().starts_with("keep"), "{dense}");
    assert!(text.lines().any(|l| l.starts_with("total")));
    assert!(!tmp.path().join("ckpt.pruned").exists());
}

#[test]
fn prune_pattern_also_empties_the_output_projection() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let out = tmp.path().join("out");
    let r = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune",
        &"attention.dense.weight",
    ]);
    assert!(r.status.success());
    let pruned = pruned_names(&out.join("rank0.safetensors"));
    assert!(pruned.contains(&"transformer.layers.1.attention.dense.weight".to_string()));
    assert!(pruned.contains(&"transformer.layers.1.mlp.fc.weight".to_string()));
    assert!(!pruned.contains(&"lm_head.weight".to_string()));
}

#[test]
fn keep_wins_over_prune_all_and_globs_match_whole_names() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let out = tmp.path().join("out");
    let r = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune_all",
        &"--keep",
        &"*layernorm.weight",
        &"--keep",
        &"lm_head",
    ]);
    assert!(r.status.success());
    let all = tensors(&out.join("rank0.safetensors"));
    for (name, _, shape, _) in &all {
        let kept = name.ends_with("layernorm.weight") || name.contains("lm_head");
        assert_eq!(shape != &[0], kept, "{name}: {shape:?}");
    }
}

#[test]
fn verify_catches_a_flipped_byte_in_an_output() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let out = tmp.path().join("out");
    let r = run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"--verify"]);
    assert!(r.status.success());
    assert!(stderr(&r).contains("verified"));

    let ok = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Flip the last byte of the data buffer: it belongs to a kept tensor
    // (which one depends on the block-aligned layout).
    let rank0 = out.join("rank0.safetensors");
    let mut bytes = fs::read(&rank0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&rank0, &bytes).unwrap();

    let bad = run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let stderr = stderr(&bad);
    assert!(stderr.starts_with("trtllm-prune: error: "), "{stderr}");
    assert!(stderr.contains("rank0.safetensors"), "{stderr}");
    assert!(stderr.contains("bytes differ"), "{stderr}");
    // Which tensor is last depends on the layout (`lm_head.weight` since
    // ranges are ordered to stay congruent modulo 8).
    assert!(stderr.contains("tensor `"), "{stderr}");
}

#[test]
fn verify_reports_a_tensor_missing_from_the_output() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    let out = tmp.path().join("out");
    fs::create_dir_all(&ckpt).unwrap();
    fs::create_dir_all(&out).unwrap();
    fs::write(ckpt.join("config.json"), "{}").unwrap();
    fs::copy(ckpt.join("config.json"), out.join("config.json")).unwrap();
    let a = TensorSpec::new("a", Dtype::F32, &[2]);
    let b = TensorSpec::new("b", Dtype::F32, &[2]);
    write_safetensors(&ckpt.join("rank0.safetensors"), &[a.clone(), b], None).unwrap();
    write_safetensors(&out.join("rank0.safetensors"), &[a], None).unwrap();
    let r = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    assert_eq!(r.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        stdout.contains("tensor `b` is missing from the output"),
        "{stdout}"
    );
}

/// A Hugging Face-style sharded checkpoint: two shards and an index.
pub(crate) fn sharded_hf(dir: &Path) -> Vec<Vec<TensorSpec>> {
    fs::create_dir_all(dir).unwrap();
    let shard = |layers: std::ops::Range<u32>| {
        let mut t = Vec::new();
        for l in layers {
            let p = format!("model.layers.{l}.");
            t.push(TensorSpec::new(
                format!("{p}self_attn.q_proj.weight"),
                Dtype::BF16,
                &[32, 32],
            ));
            t.push(TensorSpec::new(
                format!("{p}self_attn.o_proj.weight"),
                Dtype::BF16,
                &[32, 32],
            ));
            t.push(TensorSpec::new(
                format!("{p}mlp.down_proj.weight"),
                Dtype::BF16,
                &[32, 64],
            ));
            t.push(TensorSpec::new(
                format!("{p}input_layernorm.weight"),
                Dtype::BF16,
                &[32],
            ));
        }
        t
    };
    let shards = vec![shard(0..2), shard(2..4)];
    let mut weight_map = serde_json::Map::new();
    let mut total = 0;
    for (i, tensors) in shards.iter().enumerate() {
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        let meta: &[(&str, &str)] = &[("format", "pt")];
        write_safetensors(&dir.join(&name), tensors, Some(meta)).unwrap();
        for t in tensors {
            weight_map.insert(t.name.clone(), Value::from(name.clone()));
            total += t.byte_len();
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        dir.join("config.json"),
        "{\"architectures\": [\"LlamaForCausalLM\"]}\n",
    )
    .unwrap();
    shards
}

#[test]
fn sharded_hugging_face_checkpoint_round_trips_with_a_correct_index() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("hf");
    let shards = sharded_hf(&ckpt);
    let out = tmp.path().join("out");
    let r = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune",
        &"*_proj.weight",
        &"--verify",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(file_names(&out), file_names(&ckpt));
    // Hugging Face config is not a TensorRT-LLM config: copied unchanged.
    assert_eq!(
        fs::read(out.join("config.json")).unwrap(),
        fs::read(ckpt.join("config.json")).unwrap()
    );
    let mut kept_bytes = 0;
    for (i, specs) in shards.iter().enumerate() {
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        let got = tensors(&out.join(&name));
        assert_eq!(got.len(), specs.len());
        for (tname, _, shape, data) in &got {
            if tname.ends_with("_proj.weight") {
                assert_eq!(shape, &[0], "{tname}");
            } else {
                assert_eq!(shape, &[32], "{tname}");
                kept_bytes += data.len() as u64;
            }
        }
        // The shard's own metadata survives.
        let bytes = fs::read(out.join(&name)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    }
    let index: Value =
        serde_json::from_slice(&fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let original: Value =
        serde_json::from_slice(&fs::read(ckpt.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(kept_bytes));
    assert_eq!(index["weight_map"], original["weight_map"]);
}

#[test]
fn verify_checks_the_shard_index_against_the_shards() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("hf");
    sharded_hf(&ckpt);
    let out = tmp.path().join("out");
    let rule: [&dyn AsRef<std::ffi::OsStr>; 2] = [&"--prune", &"*_proj.weight"];
    let prune = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"-q"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let verify = || {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out];
        args.extend_from_slice(&rule);
        run(&args)
    };
    assert!(prune(&rule).status.success());
    let good = verify();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("ok    model.safetensors.index.json"));

    let index_path = out.join("model.safetensors.index.json");
    let pristine: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let tamper = |change: &dyn Fn(&mut Value)| {
        let mut index = pristine.clone();
        change(&mut index);
        fs::write(&index_path, serde_json::to_string(&index).unwrap()).unwrap();
        let r = verify();
        assert_eq!(r.status.code(), Some(1));
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    let table = tamper(&|i| i["metadata"]["total_size"] = Value::from(1));
    assert!(
        table.contains("metadata.total_size is 1 but the shards hold"),
        "{table}"
    );
    let table = tamper(&|i| {
        i["weight_map"]
            .as_object_mut()
            .unwrap()
            .shift_remove("model.layers.0.input_layernorm.weight");
    });
    assert!(
        table.contains("tensor `model.layers.0.input_layernorm.weight` of model-00001-of-00002.safetensors is missing from weight_map"),
        "{table}"
    );
    let table = tamper(&|i| {
        i["weight_map"]["model.layers.0.input_layernorm.weight"] =
            Value::from("model-00002-of-00002.safetensors");
    });
    assert!(
        table.contains("but weight_map says model-00002-of-00002"),
        "{table}"
    );
}

#[test]
fn a_run_that_prunes_nothing_and_patterns_that_match_nothing_are_named() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("hf");
    sharded_hf(&ckpt);
    let out = tmp.path().join("out");
    let r = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--keep",
        &"lm_haed",
        &"--full-copy",
    ]);
    assert!(r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("warning: --keep `lm_haed` matches no tensor name"),
        "{err}"
    );
    // The full copy was asked for: no warning about it.
    assert!(!err.contains("full copy"), "{err}");
    let json = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--dry-run",
        &"--json",
        &"--prune",
        &"nope*",
        &"--full-copy",
    ]);
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.contains(&"--prune `nope*` matches no tensor name"),
        "{warnings:?}"
    );
    // A rule that prunes: no warning at all.
    let quiet = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--dry-run",
        &"--prune",
        &"*_proj.weight",
    ]);
    assert!(!stderr(&quiet).contains("warning"), "{}", stderr(&quiet));
}

#[test]
fn subcommand_help_lists_only_what_the_subcommand_uses() {
    for sub in ["inspect", "verify"] {
        let help = String::from_utf8(run(&[&sub, &"--help"]).stdout).unwrap();
        assert!(
            !help.contains("--quiet") && !help.contains("--verbose"),
            "{sub}:\n{help}"
        );
        assert!(help.contains("--json"), "{sub}");
    }
}

#[test]
fn verify_flags_rank_files_beyond_world_size() {
    let tmp = tempdir();
    let ckpt = write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let out = tmp.path().join("out");
    assert!(run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out])
        .status
        .success());
    fs::copy(out.join("rank1.safetensors"), out.join("rank2.safetensors")).unwrap();
    let r = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    assert_eq!(r.status.code(), Some(1));
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(table.contains("FAIL  rank2.safetensors"), "{table}");
    assert!(
        table.contains("rank 2 is beyond world_size 2 of config.json"),
        "{table}"
    );
}

#[test]
fn verify_reports_a_missing_output_file_as_a_failed_verdict() {
    let tmp = tempdir();
    let ckpt = write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 2, 1),
    );
    let out = tmp.path().join("out");
    assert!(run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out])
        .status
        .success());
    fs::remove_file(out.join("rank1.safetensors")).unwrap();
    let r = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    assert_eq!(r.status.code(), Some(1));
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(table.contains("FAIL  rank1.safetensors"), "{table}");
    assert!(table.contains("missing from the output"), "{table}");
}

#[test]
fn single_model_safetensors_folder_is_pruned_as_generic() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("m");
    fs::create_dir_all(&ckpt).unwrap();
    let specs = [
        TensorSpec::new("embed.weight", Dtype::F16, &[8, 4]),
        TensorSpec::new("layer.weight", Dtype::F16, &[4, 4]),
    ];
    write_safetensors(&ckpt.join("model.safetensors"), &specs, None).unwrap();
    let r = run(&[&"--checkpoint_dir", &ckpt, &"--prune_all"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let out = tmp.path().join("m.pruned");
    assert_eq!(pruned_names(&out.join("model.safetensors")).len(), 2);
    assert!(!out.join("config.json").exists());
}

#[test]
fn in_place_prunes_the_checkpoint_folder_itself() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 2);
    let reference = tmp.path().join("reference");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &reference,
        &"-q",
    ]));
    assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));
    assert!(
        snapshot(&ckpt) == snapshot(&reference),
        "in-place output differs"
    );
}

#[test]
fn in_place_failure_leaves_the_checkpoint_untouched() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 2);
    // rank1's last byte is gone: its header no longer matches the file.
    let rank1 = ckpt.join("rank1.safetensors");
    let len = fs::metadata(&rank1).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&rank1)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let before = snapshot(&ckpt);
    let line = assert_error(&run(&[&"--checkpoint_dir", &ckpt, &"--in-place"]));
    assert!(line.contains("rank1.safetensors"), "{line}");
    assert!(snapshot(&ckpt) == before, "the checkpoint changed");
}

#[test]
fn same_folder_is_refused_without_in_place_and_other_folder_with_it() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let same = run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &ckpt, &"--json"]);
    // Refused, with the flag that does it.
    assert!(crate::util::assert_error_kind(&same, "refused").contains("--in-place"));
    let other = tmp.path().join("other");
    let mixed = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &other,
        &"--in-place",
    ]);
    // A usage conflict (tests/first_hour.rs).
    assert_eq!(mixed.status.code(), Some(2));
    assert!(!other.exists());
}

#[test]
fn rank_subsets_from_separate_runs_add_up_to_a_full_run() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 4);
    let full = tmp.path().join("full");
    let split = tmp.path().join("split");
    let prune_ranks = |out: &Path, ranks: &str| {
        assert_success(run(&[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out,
            &"--ranks",
            &ranks,
            &"-q",
        ]));
    };
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &full,
        &"-q",
    ]));
    prune_ranks(&split, "0,2-3");
    assert!(!split.join("rank1.safetensors").exists());
    assert!(split.join("rank2.safetensors").exists());
    prune_ranks(&split, "1");
    assert!(
        snapshot(&full) == snapshot(&split),
        "split runs differ from one run"
    );
}

#[test]
fn ranks_outside_world_size_are_refused() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 2);
    let r = run(&[&"--checkpoint_dir", &ckpt, &"--ranks", &"1-2"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("rank 2"));
    let bad = run(&[&"--checkpoint_dir", &ckpt, &"--ranks", &"x"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn inspect_lists_tensors_metadata_and_what_the_rule_would_prune() {
    let tmp = tempdir();
    let file = tmp.path().join("one.safetensors");
    let specs = [
        TensorSpec::new(
            "transformer.layers.0.mlp.fc.weight",
            Dtype::F8_E4M3,
            &[4, 8],
        ),
        TensorSpec::new(
            "transformer.layers.0.attention.dense.weight",
            Dtype::BF16,
            &[2, 2],
        ),
    ];
    let meta: &[(&str, &str)] = &[("source", "unit-test")];
    write_safetensors(&file, &specs, Some(meta)).unwrap();

    let doc = stdout_json(&run(&[&"inspect", &file, &"--json"]));
    assert_eq!(doc["command"], "inspect");
    let f = &doc["files"][0];
    assert_eq!(f["metadata"]["source"], "unit-test");
    let t = &f["tensors"];
    assert_eq!(t[0]["name"], "transformer.layers.0.mlp.fc.weight");
    assert_eq!(t[0]["dtype"], "F8_E4M3");
    assert_eq!(t[0]["bytes"], 32);
    assert_eq!(t[0]["pruned"], true);
    assert_eq!(t[1]["pruned"], false);
    // Offsets are file offsets: the second tensor follows the first.
    assert_eq!(
        t[1]["offset"].as_u64().unwrap(),
        t[0]["offset"].as_u64().unwrap() + 32
    );
    assert_eq!(
        t[0]["offset"].as_u64().unwrap(),
        8 + f["header_len"].as_u64().unwrap()
    );

    let table = run(&[&"inspect", &file, &"--prune_all"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("would prune 2 of 2 tensors"), "{text}");
    assert!(text.contains("unit-test"), "{text}");
}

#[test]
fn inspect_reads_a_whole_checkpoint_folder() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 2);
    let doc = stdout_json(&run(&[&"inspect", &ckpt, &"--json"]));
    let names: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rank0.safetensors", "rank1.safetensors"]);
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&[&"completions", &shell]);
        assert!(r.status.success(), "{shell}");
        let text = String::from_utf8(r.stdout).unwrap();
        assert!(text.contains("checkpoint_dir"), "{shell}");
        assert!(text.contains("prune_all"), "{shell}");
    }
    let man = run(&[&"man"]);
    assert!(man.status.success());
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH trtllm-prune 1"));
    // Every exit status is documented, and no other page is referred to.
    assert!(page.contains(".SH \"EXIT STATUS\""));
    for status in ["\n0\n", "\n1\n", "\n2\n", "\n3\n", "\n4\n", "129, 130, 143"] {
        assert!(
            page.contains(status),
            "exit status {status:?} is not documented"
        );
    }
    assert!(
        !page.contains("(1)\n"),
        "the page refers to pages that do not exist"
    );
    assert!(page.contains(".SS trtllm\\-prune verify"));
    // The rule list stays a list.
    assert!(page.contains(".nf\nattention.qkv.weight\nattention.proj.weight\n"));
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/trtllm-prune.1"))
            .expect("docs/trtllm-prune.1 is shipped");
    assert_eq!(
        page, shipped,
        "docs/trtllm-prune.1 is stale: run `trtllm-prune man > docs/trtllm-prune.1`"
    );
}

/// What bash's completion offers for the command line `words` (the last
/// word is the one being completed), from the generated script.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = run(&[&"completions", &"bash"]);
    assert!(script.status.success());
    let dir = tempdir();
    let path = dir.path().join("trtllm-prune.bash");
    fs::write(&path, &script.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let driver = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_trtllm__prune trtllm-prune '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(driver)
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_options_after_a_subcommand() {
    let after_inspect = bash_completes(&["trtllm-prune", "inspect", "--pr"]);
    assert!(
        after_inspect.contains(&"--prune_all".to_string()),
        "{after_inspect:?}"
    );
    let after_verify = bash_completes(&["trtllm-prune", "verify", "--chec"]);
    assert!(
        after_verify.contains(&"--checkpoint_dir".to_string()),
        "{after_verify:?}"
    );
    let top = bash_completes(&["trtllm-prune", "--in"]);
    // One spelling each (the other is a hidden alias).
    assert_eq!(top, ["--in-place"]);
}

#[test]
fn help_has_no_color_codes_when_no_color_is_set() {
    let out = std::process::Command::new(crate::util::bin())
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b));
}

#[test]
fn json_run_prints_one_document_on_stdout_and_messages_on_stderr() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("ckpt");
    llama(&ckpt, 1);
    let r = run(&[&"--checkpoint_dir", &ckpt, &"--json"]);
    let doc = stdout_json(&r);
    assert_eq!(doc["schema"], "trtllm-prune/v1");
    assert!(doc["bytes_shared"].is_u64());
    assert!(stderr(&r).contains("pruned 1 rank"));
}

#[test]
fn a_checkpoint_in_a_hugging_face_cache_is_pruned_through_its_links() {
    // The cache's layout: snapshots/<revision>/ holds only symlinks into
    // ../../blobs/, named by hash.
    let tmp = tempdir();
    let source = tmp.path().join("source");
    sharded_hf(&source);
    let repo = tmp.path().join("hub/models--org--model");
    let blobs = repo.join("blobs");
    let snapshot = repo.join("snapshots/0123abcd");
    fs::create_dir_all(&blobs).unwrap();
    fs::create_dir_all(&snapshot).unwrap();
    for (i, name) in file_names(&source).iter().enumerate() {
        let blob = format!("{i:040x}");
        fs::rename(source.join(name), blobs.join(&blob)).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snapshot.join(name)).unwrap();
    }
    let out = tmp.path().join("out");

    let dry = run(&[
        &"--checkpoint_dir",
        &snapshot,
        &"--out_dir",
        &out,
        &"--prune",
        &"*_proj.weight",
        &"--dry-run",
    ]);
    let table = String::from_utf8_lossy(&dry.stdout);
    assert!(
        table.contains("config.json (a symlink to ../../blobs/"),
        "{table}"
    );
    let r = run(&[
        &"--checkpoint_dir",
        &snapshot,
        &"--out_dir",
        &out,
        &"--prune",
        &"*_proj.weight",
        &"-q",
    ]);

    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(file_names(&out), file_names(&snapshot));
    for name in file_names(&out) {
        let meta = fs::symlink_metadata(out.join(&name)).unwrap();
        assert!(meta.is_file(), "{name} is not a regular file in the output");
    }
    let v = run(&[
        &"verify",
        &"--checkpoint_dir",
        &snapshot,
        &"--out_dir",
        &out,
        &"--prune",
        &"*_proj.weight",
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn subfolders_are_named_in_a_warning_and_not_copied() {
    let tmp = tempdir();
    let ckpt = tmp.path().join("hf");
    sharded_hf(&ckpt);
    fs::create_dir_all(ckpt.join("original")).unwrap();
    fs::write(ckpt.join("original/consolidated.00.pth"), "full weights").unwrap();
    let out = tmp.path().join("out");
    let r = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune_all",
    ]);
    assert!(r.status.success());
    assert!(
        stderr(&r).contains("original: skipped: subfolders are not copied"),
        "{}",
        stderr(&r)
    );
    assert!(!out.join("original").exists());
}

#[test]
fn inspect_recognizes_an_already_pruned_output() {
    let tmp = tempdir();
    let ckpt = write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let out = tmp.path().join("out");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    let table = String::from_utf8(run(&[&"inspect", &out]).stdout).unwrap();
    assert!(
        table.contains("already pruned: 8 of 17 tensors are empty"),
        "{table}"
    );
    assert!(table.contains("  empty  "), "{table}");
    let doc: Value = serde_json::from_slice(&run(&[&"inspect", &out, &"--json"]).stdout).unwrap();
    assert_eq!(doc["files"][0]["already_pruned"], Value::Bool(true));
    let original: Value =
        serde_json::from_slice(&run(&[&"inspect", &ckpt, &"--json"]).stdout).unwrap();
    assert_eq!(original["files"][0]["already_pruned"], Value::Bool(false));
}

#[test]
fn every_json_document_gives_absolute_paths() {
    let tmp = tempdir();
    let ckpt = write_checkpoint(
        tmp.path(),
        "ckpt",
        &CheckpointSpec::tiny(Family::Llama, 1, 1),
    );
    let out = tmp.path().join("out");
    assert_success(run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"-q",
    ]));
    let in_tmp = |args: &[&str]| -> Value {
        let r = std::process::Command::new(crate::util::bin())
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap();
        serde_json::from_slice(&r.stdout).unwrap()
    };
    let verify = in_tmp(&[
        "verify",
        "--checkpoint_dir",
        "ckpt",
        "--out_dir",
        "out",
        "--json",
    ]);
    let dry = in_tmp(&[
        "--checkpoint_dir",
        "ckpt",
        "--out_dir",
        "out",
        "--dry-run",
        "--json",
    ]);
    let inspect = in_tmp(&["inspect", "ckpt", "--json"]);
    for path in [
        &verify["checkpoint_dir"],
        &verify["out_dir"],
        &dry["checkpoint_dir"],
        &dry["out_dir"],
        &inspect["path"],
    ] {
        assert!(Path::new(path.as_str().unwrap()).is_absolute(), "{path}");
    }
}
