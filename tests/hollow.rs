//! `--hollow`: every tensor keeps its name, dtype, shape and offsets; kept
//! tensors are byte-identical; emptied tensors read as zeros and are holes.
//! Outputs are opened with the official `safetensors` crate.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use safetensors::SafeTensors;
use trtllm_prune::fixture::{CheckpointSpec, Family};
use trtllm_prune::PruneRule;

#[cfg(feature = "remote")]
use crate::remote::HttpServer;
use crate::util::{self, assert_success, run, stderr, write_checkpoint};

/// A checkpoint whose pruned matrices span many blocks (~5 MB per rank
/// emptied, ~1 MB kept), two ranks.
fn spec() -> CheckpointSpec {
    CheckpointSpec {
        hidden: 256,
        intermediate: 1024,
        vocab: 1024,
        ..CheckpointSpec::tiny(Family::Llama, 2, 1)
    }
}

/// Bytes of `path` the filesystem allocated (not its apparent size).
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

/// Whether files in `dir` can have holes: a 16 MiB file of one hole must
/// allocate (almost) nothing.
fn holes_supported(dir: &Path) -> bool {
    let probe = dir.join("hole-probe");
    let file = fs::File::create(&probe).expect("probe created");
    file.set_len(16 << 20).expect("probe sized");
    let supported = allocated(&probe) < 1 << 20;
    drop(file);
    let _ = fs::remove_file(&probe);
    if !supported {
        eprintln!("the temp filesystem has no sparse files: skipping a test of allocated size");
    }
    supported
}

/// Checks every rank of `out` against `ckpt` as a hollow output of `rule`:
/// same header bytes and length, every shape and dtype as in the input
/// (read by `safetensors`), kept bytes equal, emptied bytes zero. Returns
/// (kept tensor bytes + header bytes, apparent size) over all ranks.
fn check_hollow(ckpt: &Path, out: &Path, rule: &PruneRule, ranks: u64) -> (u64, u64) {
    let (mut stored, mut apparent) = (0, 0);
    for rank in 0..ranks {
        let name = format!("rank{rank}.safetensors");
        let input = fs::read(ckpt.join(&name)).expect("input rank");
        let output = fs::read(out.join(&name)).expect("output rank");
        assert_eq!(output.len(), input.len(), "{name}: length");
        let n = 8 + u64::from_le_bytes(input[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(output[..n], input[..n], "{name}: header bytes");
        stored += n as u64;
        apparent += output.len() as u64;
        let a = SafeTensors::deserialize(&input).expect("input opens");
        let b = SafeTensors::deserialize(&output).expect("hollow output opens in safetensors");
        assert_eq!(a.len(), b.len(), "{name}: tensor count");
        for (tensor, view) in a.tensors() {
            let hollow = b.tensor(&tensor).expect("every tensor is in the output");
            assert_eq!(hollow.shape(), view.shape(), "{tensor}: shape");
            assert_eq!(hollow.dtype(), view.dtype(), "{tensor}: dtype");
            if rule.prunes(&tensor) {
                assert!(
                    hollow.data().iter().all(|&b| b == 0),
                    "{tensor}: emptied tensor is not all zeros"
                );
            } else {
                assert_eq!(hollow.data(), view.data(), "{tensor}: kept bytes");
                stored += view.data().len() as u64;
            }
        }
    }
    (stored, apparent)
}

#[test]
fn hollow_ranks_open_in_safetensors_with_every_shape_and_kept_bytes() {
    let tmp = util::tempdir();
    let spec = spec();
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let out = tmp.path().join("out");
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"-q",
    ]);
    assert_success(o);
    let rule = PruneRule::default();
    let (stored, apparent) = check_hollow(&ckpt, &out, &rule, spec.world_size());
    assert!(stored < apparent / 3, "{stored} of {apparent} kept");
    // A TensorRT-LLM checkpoint without real weights says so.
    let config = fs::read_to_string(out.join("config.json")).expect("config");
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["is_pruned"], serde_json::Value::Bool(true));
}

#[test]
fn hollow_file_allocates_about_its_kept_bytes() {
    let tmp = util::tempdir();
    if !holes_supported(tmp.path()) {
        return;
    }
    let spec = spec();
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let out = tmp.path().join("out");
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"-q",
    ]);
    assert_success(o);
    let rule = PruneRule::default();
    let (stored, apparent) = check_hollow(&ckpt, &out, &rule, spec.world_size());
    let used: u64 = (0..spec.world_size())
        .map(|r| allocated(&out.join(format!("rank{r}.safetensors"))))
        .sum();
    // Each kept run may start and end in a partial block: allow a few
    // blocks per tensor, far below the emptied megabytes.
    let slack = 64 * 4096 * spec.world_size();
    assert!(
        used <= stored + slack,
        "hollow ranks allocate {used} bytes for {stored} stored ({apparent} apparent)"
    );
}

#[test]
fn hollow_prune_all_is_header_and_holes() {
    let tmp = util::tempdir();
    let spec = spec();
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let out = tmp.path().join("out");
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"--prune_all",
        &"-q",
    ]);
    assert_success(o);
    let rule = PruneRule::original(true);
    let (stored, _) = check_hollow(&ckpt, &out, &rule, spec.world_size());
    if holes_supported(tmp.path()) {
        for r in 0..spec.world_size() {
            let used = allocated(&out.join(format!("rank{r}.safetensors")));
            assert!(used <= 8192, "rank{r}: {used} bytes allocated");
        }
        assert!(stored < 16384, "only headers are stored: {stored}");
    }
}

/// The stderr of a `verify` that found a mismatch (exit status 1; its
/// table is on stdout).
#[track_caller]
fn failure(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    stderr(out)
}

/// Writes `byte` at `offset` of `path`.
fn poke(path: &Path, offset: u64, byte: u8) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing");
    file.write_all_at(&[byte], offset).expect("byte written");
}

/// File offset of the middle of tensor `name` in the safetensors `path`.
fn middle_of(path: &Path, name: &str) -> u64 {
    let bytes = fs::read(path).expect("file");
    let n = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..n as usize]).expect("header json");
    let offsets = &header[name]["data_offsets"];
    let (begin, end) = (
        offsets[0].as_u64().expect("begin"),
        offsets[1].as_u64().expect("end"),
    );
    n + (begin + end) / 2
}

#[test]
fn verify_passes_on_hollow_output_and_fails_on_a_nonzero_hole_or_changed_kept_byte() {
    let tmp = util::tempdir();
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec());
    let out = tmp.path().join("out");
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"--verify",
        &"-q",
    ]);
    assert_success(o);
    let verify = |hollow: bool| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out];
        if hollow {
            args.push(&"--hollow");
        }
        run(&args)
    };
    let ok = verify(true);
    assert!(ok.status.success(), "verify --hollow: {}", stderr(&ok));
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(table.contains("pruned tensors zeros"), "{table}");
    // Without --hollow, the shapes are wrong for a pruned output: say why.
    let plain = verify(false);
    assert!(failure(&plain).contains("--hollow"), "{}", stderr(&plain));

    let rank0 = out.join("rank0.safetensors");
    let emptied = "transformer.layers.0.mlp.fc.weight";
    let at = middle_of(&rank0, emptied);
    poke(&rank0, at, 0x5a);
    let bad = verify(true);
    let line = failure(&bad);
    assert!(
        line.contains(emptied) && line.contains(&format!("byte {at}")),
        "{line}"
    );
    poke(&rank0, at, 0);
    assert!(verify(true).status.success());

    let kept = "transformer.vocab_embedding.weight";
    let at = middle_of(&rank0, kept);
    let mut byte = [0u8];
    fs::File::open(&rank0)
        .expect("open")
        .read_exact_at(&mut byte, at)
        .expect("read");
    poke(&rank0, at, byte[0] ^ 0xff);
    let bad = verify(true);
    let line = failure(&bad);
    assert!(
        line.contains(kept) && line.contains("bytes differ"),
        "{line}"
    );
}

#[test]
fn in_place_hollow_replaces_every_rank_with_its_hollow_form() {
    let tmp = util::tempdir();
    let spec = spec();
    let pristine = write_checkpoint(tmp.path(), "pristine", &spec);
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--in-place",
        &"--hollow",
        &"-q",
    ]);
    assert_success(o);
    check_hollow(&pristine, &ckpt, &PruneRule::default(), spec.world_size());
    let names = util::file_names(&ckpt);
    assert_eq!(
        names,
        ["config.json", "rank0.safetensors", "rank1.safetensors"],
        "nothing but the checkpoint is left"
    );
    let o = run(&[
        &"verify",
        &"--checkpoint_dir",
        &pristine,
        &"--out_dir",
        &ckpt,
        &"--hollow",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[cfg(feature = "remote")]
#[test]
fn remote_hollow_prune_fetches_only_kept_bytes() {
    let server = HttpServer::start();
    let spec = spec();
    let ckpt = write_checkpoint(server.root(), "ckpt", &spec);
    let tmp = util::tempdir();
    let out = tmp.path().join("out");
    server.reset();
    let o = run(&[
        &"--checkpoint_dir",
        &server.url("ckpt"),
        &"--out_dir",
        &out,
        &"--hollow",
        &"-q",
    ]);
    assert_success(o);
    let (stored, apparent) = check_hollow(&ckpt, &out, &PruneRule::default(), spec.world_size());
    let served = server.bytes_served();
    // Headers are read speculatively in 64 KiB (then read again whole for
    // the hollow header), config.json once.
    let slack = 3 * (64 << 10) * spec.world_size() + 4096;
    assert!(
        served <= stored + slack,
        "served {served} bytes for {stored} stored of {apparent}"
    );
}

#[test]
fn dry_run_json_reports_apparent_and_stored_bytes() {
    let tmp = util::tempdir();
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec());
    let out = tmp.path().join("out");
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"--dry-run",
        &"--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let bytes_in = doc["totals"]["bytes_in"].as_u64().expect("bytes_in");
    assert_eq!(doc["totals"]["bytes_out"].as_u64(), Some(bytes_in));
    assert_eq!(doc["hollow"]["apparent_bytes"].as_u64(), Some(bytes_in));
    let stored = doc["hollow"]["stored_bytes"].as_u64().expect("stored");
    assert!(
        stored > 0 && stored < bytes_in / 3,
        "{stored} of {bytes_in}"
    );
    assert!(!out.exists(), "a dry run writes nothing");
    let text = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--hollow",
        &"--dry-run",
    ]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("hollow: "),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}

#[test]
fn hollow_hugging_face_shards_keep_the_index_total_size_and_config() {
    let tmp = util::tempdir();
    let ckpt = tmp.path().join("hf");
    let shards = crate::features::sharded_hf(&ckpt);
    let out = tmp.path().join("out");
    let rule = ["--prune", "*_proj.weight"];
    let o = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &rule[0],
        &rule[1],
        &"--hollow",
        &"-q",
    ]);
    assert_success(o);
    let index = "model.safetensors.index.json";
    let read_json = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&fs::read(path).expect("file")).expect("json")
    };
    assert_eq!(
        read_json(&out.join(index))["metadata"]["total_size"],
        read_json(&ckpt.join(index))["metadata"]["total_size"],
    );
    // A Hugging Face config is a side file, copied as it is.
    assert_eq!(
        fs::read(out.join("config.json")).expect("out config"),
        fs::read(ckpt.join("config.json")).expect("config")
    );
    for (i, tensors) in shards.iter().enumerate() {
        let name = format!("model-0000{}-of-00002.safetensors", i + 1);
        let bytes = fs::read(out.join(&name)).expect("shard");
        let shard = SafeTensors::deserialize(&bytes).expect("hollow shard opens");
        for t in tensors {
            let view = shard.tensor(&t.name).expect("tensor");
            assert_eq!(
                view.shape(),
                t.shape.iter().map(|&d| d as usize).collect::<Vec<_>>()
            );
            let zeros = view.data().iter().all(|&b| b == 0);
            assert_eq!(zeros, t.name.ends_with("_proj.weight"), "{}", t.name);
        }
    }
    let o = run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &rule[0],
        &rule[1],
        &"--hollow",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn hollow_plan_copies_kept_runs_in_place_and_needs_the_whole_header() {
    use trtllm_prune::fixture::parse_file;
    use trtllm_prune::fixture::plan_hollow;
    use trtllm_prune::fixture::{padded_header_json, write_safetensors, TensorSpec};
    use trtllm_prune::Dtype;
    use trtllm_prune::{CopyRange, PlanError};
    let tensors = [
        TensorSpec::new("a.norm", Dtype::F32, &[4]),
        TensorSpec::new("b.mlp.fc.weight", Dtype::F32, &[8]),
        TensorSpec::new("c.embedding", Dtype::BF16, &[6]),
        TensorSpec::new("d.norm", Dtype::BF16, &[2]),
    ];
    let tmp = util::tempdir();
    let path = tmp.path().join("f.safetensors");
    write_safetensors(&path, &tensors, None).expect("written");
    let bytes = fs::read(&path).expect("read");
    let header = parse_file(&bytes).expect("valid");
    let start = 8 + padded_header_json(&tensors, None).len() as u64;
    let head = bytes[..start as usize].to_vec();
    let plan = plan_hollow(&header, head.clone(), &PruneRule::default()).expect("planned");
    assert!(plan.hollow);
    assert_eq!(plan.header_bytes, head);
    assert_eq!(plan.output_len, bytes.len() as u64);
    // `a`; then `c` and `d`, adjacent, in one range; `b` is a hole.
    let range = |src, len| CopyRange { src, dst: src, len };
    assert_eq!(plan.copies, [range(start, 16), range(start + 48, 16)]);
    assert!(plan
        .tensors
        .iter()
        .all(|t| t.output_offset == t.input_offset));
    assert_eq!(plan.stored_bytes(), start + 32);
    let short = plan_hollow(
        &header,
        head[..head.len() - 1].to_vec(),
        &PruneRule::default(),
    );
    assert_eq!(
        short.expect_err("a header byte short"),
        PlanError::HeaderBytes {
            len: start - 1,
            expected: start
        }
    );
}

#[test]
#[cfg_attr(
    not(all(has_mount, has_mkfs_xfs)),
    ignore = "needs root that may mount (CAP_SYS_ADMIN, loop devices), mkfs.xfs (apt install xfsprogs)"
)]
fn hollow_output_shares_every_whole_kept_block_on_xfs() {
    use trtllm_prune::NoProgress;
    use trtllm_prune::Options;
    let tmp = util::tempdir();
    let image = tmp.path().join("xfs.img");
    let mount = crate::sharing::XfsMount::new(&image, &tmp.path().join("xfs"));
    let ckpt = mount.dir.join("ckpt");
    crate::sharing::spec()
        .write(&ckpt)
        .expect("checkpoint written");
    let mut options = Options::new(&ckpt);
    options.out_dir = Some(mount.dir.join("out"));
    options.hollow = true;
    let prepared = trtllm_prune::prepare(&options).expect("planned");
    // Offsets are the input's, so every whole block of a kept range is
    // congruent: only the partial blocks at the ends of ranges are copied.
    let block = 4096;
    let (mut kept, mut whole_blocks) = (0, 0);
    for file in &prepared.files {
        for c in &file.plan.copies {
            assert_eq!(c.src, c.dst);
            kept += c.len;
            let first = c.src.div_ceil(block) * block;
            let end = (c.src + c.len) / block * block;
            whole_blocks += end.saturating_sub(first);
        }
    }
    let summary = trtllm_prune::execute(&prepared, &options, &NoProgress).expect("hollow prune");
    assert!(
        whole_blocks * 2 > kept,
        "the fixture has whole blocks to share"
    );
    assert_eq!(summary.bytes_shared, whole_blocks, "of {kept} kept bytes");
    let rule = PruneRule::default();
    check_hollow(&ckpt, &mount.dir.join("out"), &rule, 2);
}
