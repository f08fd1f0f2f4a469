//! The promises around the commit that a fault matrix does not reach:
//! concurrent runs into one folder, what dead and live runs leave behind,
//! files planted by someone else, numbers from a config, patterns and flag
//! combinations that can only be mistakes, and what in place keeps.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trtllm_prune::fixture::{CheckpointSpec, Family};

use crate::util::{
    self, assert_error, assert_success, run, stderr, tree, write_checkpoint, TreeEntry,
};

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = util::tempdir();
    let root = fs::canonicalize(dir.path()).expect("temp dir resolves");
    (dir, root)
}

fn hidden_names(dir: &Path) -> Vec<String> {
    util::file_names(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn prune_into(ckpt: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(util::bin());
    cmd.arg("--checkpoint_dir")
        .arg(ckpt)
        .arg("--out_dir")
        .arg(out)
        .arg("-q");
    cmd.args(extra);
    cmd.output().expect("binary runs")
}

// ------------------------------------------------------------ concurrency

#[test]
fn eight_parallel_rank_runs_into_one_folder_all_succeed_every_round() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 8, 1));
    let one_run = root.join("one-run");
    assert_success(prune_into(&ckpt, &one_run, &[]));
    let expected = tree(&one_run);
    for round in 0..100 {
        let out = root.join(format!("out{round}"));
        let children: Vec<_> = (0..8)
            .map(|rank| {
                Command::new(util::bin())
                    .arg("--checkpoint_dir")
                    .arg(&ckpt)
                    .arg("--out_dir")
                    .arg(&out)
                    .args(["--ranks", &rank.to_string(), "-q"])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("binary starts")
            })
            .collect();
        for child in children {
            let result = child.wait_with_output().expect("run ends");
            assert!(
                result.status.success(),
                "round {round}: {}",
                stderr(&result)
            );
        }
        assert!(
            tree(&out) == expected,
            "round {round}: the output differs from one run's"
        );
        fs::remove_dir_all(&out).expect("round output removed");
    }
}

#[test]
fn two_runs_with_different_rules_end_with_one_runs_files() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 4, 1));
    let (a, b) = (root.join("a"), root.join("b"));
    assert_success(prune_into(&ckpt, &a, &[]));
    assert_success(prune_into(&ckpt, &b, &["--prune_all"]));
    let (a, b) = (tree(&a), tree(&b));
    for round in 0..40 {
        let out = root.join(format!("out{round}"));
        let spawn = |extra: &[&str]| {
            let mut cmd = Command::new(util::bin());
            cmd.arg("--checkpoint_dir")
                .arg(&ckpt)
                .arg("--out_dir")
                .arg(&out);
            cmd.arg("-q").args(extra);
            cmd.spawn().expect("binary starts")
        };
        let (mut first, mut second) = (spawn(&[]), spawn(&["--prune_all"]));
        assert!(first.wait().expect("run ends").success());
        assert!(second.wait().expect("run ends").success());
        let now = tree(&out);
        assert!(
            now == a || now == b,
            "round {round}: a mix of two runs' files"
        );
        fs::remove_dir_all(&out).expect("round output removed");
    }
}

// --------------------------------------------------- dead and live runs

/// A checkpoint and an in-place run of it killed by strace at the 2nd
/// rename: a commit half made. `None` without strace.
fn killed_mid_commit(root: &Path) -> Option<PathBuf> {
    let ckpt = write_checkpoint(root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "inject=renameat2:signal=KILL:when=2",
        ])
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .args(["--in-place", "-q"])
        .status()
        .ok()?;
    assert!(!status.success(), "the run was not killed");
    Some(ckpt)
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn inspect_finishes_a_commit_a_killed_run_left_and_says_so_in_one_line() {
    let (_dir, root) = root();
    let Some(ckpt) = killed_mid_commit(&root) else {
        return;
    };
    assert!(!hidden_names(&ckpt).is_empty(), "the kill left no journal");

    let out = run(&[&"inspect", &ckpt]);

    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning:") && err.contains("finished the commit of an earlier run"),
        "{err}"
    );
    assert_eq!(hidden_names(&ckpt), Vec::<String>::new());
    let config = fs::read_to_string(ckpt.join("config.json")).unwrap();
    assert!(config.contains("\"is_pruned\": true"));
    // Every rank is pruned now: pruning again changes nothing.
    let before = tree(&ckpt);
    assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));
    assert!(tree(&ckpt) == before);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_dry_run_reports_nothing_and_changes_nothing_of_a_dead_runs_commit() {
    let (_dir, root) = root();
    let Some(ckpt) = killed_mid_commit(&root) else {
        return;
    };
    let before = tree(&ckpt);
    let out = run(&[&"--checkpoint_dir", &ckpt, &"--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tree(&ckpt) == before, "a dry run changed the folder");
}

/// Plants a live run's journal and temp file in `dir`: the journal locked by
/// this test process, as a running trtllm-prune holds its own.
fn plant_live_run(dir: &Path) -> (fs::File, Vec<String>) {
    let id = "00112233445566778899aabbccddeeff";
    let journal = format!(".trtllm-prune-{id}.journal");
    let temp = format!(".rank0.safetensors.trtllm-prune-{id}.tmp");
    let file = fs::File::create(dir.join(&journal)).unwrap();
    fs::write(dir.join(&temp), "being written").unwrap();
    // SAFETY: a plain flock on a descriptor this test owns.
    let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    assert_eq!(r, 0);
    (file, vec![journal, temp])
}

#[test]
fn a_live_runs_files_are_never_touched_and_a_dead_runs_are_removed() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    let (lock, names) = plant_live_run(&out);

    assert_success(prune_into(&ckpt, &out, &[]));
    assert_eq!(hidden_names(&out), {
        let mut n = names.clone();
        n.sort();
        n
    });

    drop(lock); // The run "dies".
                // A process forked meanwhile by a parallel test holds a copy of the
                // descriptor (and so the lock) until it execs: wait for the lock to go.
    let journal = out.join(&names[0]);
    for _ in 0..1000 {
        let probe = fs::File::open(&journal).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        let free = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&probe),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        if free {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let again = prune_into(&ckpt, &out, &[]);
    assert!(again.status.success());
    assert_eq!(hidden_names(&out), Vec::<String>::new());
}

// ------------------------------------------------------ planted files

#[test]
fn a_symlink_at_an_output_name_is_replaced_not_written_through() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    let victim = root.join("victim");
    fs::write(&victim, "not yours").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("rank0.safetensors")).unwrap();

    assert_success(prune_into(&ckpt, &out, &[]));

    assert_eq!(fs::read_to_string(&victim).unwrap(), "not yours");
    let meta = fs::symlink_metadata(out.join("rank0.safetensors")).unwrap();
    assert!(meta.is_file());
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn every_file_the_tool_creates_is_created_exclusively() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    fs::write(ckpt.join("quant_cfg.json"), "{}").unwrap();
    let log = root.join("log");
    for extra in [&["--out_dir", "OUT"][..], &["--in-place"][..]] {
        let out = root.join("out");
        let args: Vec<String> = extra
            .iter()
            .map(|a| a.replace("OUT", &out.display().to_string()))
            .collect();
        let status = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=open,openat,creat", "-o"])
            .arg(&log)
            .arg(util::bin())
            .arg("--checkpoint_dir")
            .arg(&ckpt)
            .args(&args)
            .arg("-q")
            .status()
            .expect("strace runs");
        assert!(status.success());
        let text = fs::read_to_string(&log).unwrap();
        let creating: Vec<&str> = text.lines().filter(|l| l.contains("O_CREAT")).collect();
        assert!(!creating.is_empty(), "no file was created?\n{text}");
        for line in creating {
            assert!(line.contains("O_EXCL"), "created without O_EXCL: {line}");
            assert!(line.contains("O_NOFOLLOW"), "may follow a symlink: {line}");
        }
    }
}

// ------------------------------------------------ numbers from a config

#[test]
fn a_huge_world_size_is_an_error_before_anything_is_sized_by_it() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    for world_size in [
        "1000000000",
        "4294967296",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        fs::write(
            ckpt.join("config.json"),
            format!("{{\"mapping\": {{\"world_size\": {world_size}}}}}"),
        )
        .unwrap();
        for args in [
            &["--dry-run"][..],
            &["--out_dir", "/nonexistent/never"][..],
            &["inspect"][..],
        ] {
            let mut cmd = Command::new(util::bin());
            if args == ["inspect"] {
                cmd.arg("inspect").arg(&ckpt);
            } else {
                cmd.arg("--checkpoint_dir").arg(&ckpt).args(args);
            }
            // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
            // 512 MiB of address space: far less than a rank list of 10^9.
            unsafe {
                cmd.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 512 << 20,
                        rlim_max: 512 << 20,
                    };
                    libc::setrlimit(libc::RLIMIT_AS, &limit);
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            // inspect shows the rank files there are, the rest a warning.
            let line = match args == ["inspect"] {
                true => {
                    assert!(out.status.success(), "{}", stderr(&out));
                    stderr(&out)
                }
                false => assert_error(&out),
            };
            assert!(
                line.contains(&format!(
                    "config.json has world_size {world_size}, the folder has 2 rank files"
                )),
                "{args:?}: {line}"
            );
        }
    }
}

// ------------------------------------------------- only mistakes look so

#[test]
fn an_empty_pattern_is_a_usage_error() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let before = tree(&ckpt);
    for flag in ["--prune", "--keep"] {
        for out in [
            run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &flag, &""]),
            run(&[&"inspect", &ckpt, &flag, &""]),
            run(&[&"verify", &"--checkpoint_dir", &ckpt, &flag, &""]),
        ] {
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(stderr(&out).contains("an empty pattern matches every tensor name"));
        }
    }
    assert!(tree(&ckpt) == before);
}

#[test]
fn in_place_with_ranks_is_refused() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let before = tree(&ckpt);
    let out = run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"--ranks", &"0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(tree(&ckpt) == before);
}

#[test]
fn verify_flags_a_config_claiming_pruned_over_an_unpruned_rank() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    assert_success(prune_into(&ckpt, &out, &[]));
    fs::copy(
        ckpt.join("rank1.safetensors"),
        out.join("rank1.safetensors"),
    )
    .unwrap();

    let result = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);

    assert_eq!(result.status.code(), Some(1));
    let table = String::from_utf8_lossy(&result.stdout);
    assert!(table.contains("FAIL  rank1.safetensors"), "{table}");
    assert!(table.contains("should be empty (default rule"), "{table}");
}

#[test]
fn verify_flags_a_tensor_the_rule_keeps_but_the_output_emptied() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    assert_success(prune_into(&ckpt, &out, &["--prune_all"]));

    let wrong_rule = run(&[&"verify", &"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    let right_rule = run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune_all",
    ]);

    assert_eq!(wrong_rule.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong_rule.stdout).contains("was emptied, but the rule keeps it")
    );
    assert!(right_rule.status.success(), "{}", stderr(&right_rule));
}

// --------------------------------------------------------- in place keeps

#[test]
#[cfg_attr(not(has_root), ignore = "needs root")]
fn in_place_keeps_each_files_owner_group_and_mode() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let owners: BTreeMap<&str, (u32, u32, u32)> = [
        ("config.json", (1234, 5678, 0o640)),
        ("rank0.safetensors", (1234, 5678, 0o600)),
        ("rank1.safetensors", (4321, 8765, 0o604)),
    ]
    .into();
    for (name, (uid, gid, mode)) in &owners {
        let path = ckpt.join(name);
        std::os::unix::fs::chown(&path, Some(*uid), Some(*gid)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }

    assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));

    for (name, (uid, gid, mode)) in &owners {
        let meta = fs::metadata(ckpt.join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (*uid, *gid, *mode),
            "{name}"
        );
    }
    assert!(fs::read_to_string(ckpt.join("config.json"))
        .unwrap()
        .contains("is_pruned"));
}

// ------------------------------------------- failures after the commit

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_failed_flush_after_the_commit_exits_3_saying_the_output_is_in_place() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    let log = root.join("log");
    // How many fsyncs a run makes: the last one flushes the folder after
    // the commit.
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync", "-o"])
        .arg(&log)
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--out_dir")
        .arg(&out)
        .arg("-q")
        .status()
        .expect("strace runs");
    assert!(status.success());
    let expected = tree(&out);
    fs::remove_dir_all(&out).unwrap();
    // strace counts calls per thread: the last fsync's thread and its count.
    let text = fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("fsync("))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let last = calls.last().expect("fsyncs were made");
    let fsyncs = calls.iter().filter(|pid| pid == &last).count();

    let result = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject=fsync:error=EIO:when={fsyncs}"))
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--out_dir")
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();

    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    let err = stderr(&result);
    assert!(
        err.contains("the output is in place, but cannot flush the folder to disk"),
        "{err}"
    );
    let visible = |t: BTreeMap<String, TreeEntry>| -> BTreeMap<String, TreeEntry> {
        t.into_iter().filter(|(n, _)| !n.starts_with('.')).collect()
    };
    assert!(visible(tree(&out)) == visible(expected));
}

// ------------------------------------------------- from a hostile review

/// A dead run's half-made commit into `out` (pruned with `--prune_all`),
/// killed by strace at its `renameat2` number `when` (every rename of a
/// commit is one). `None` without strace.
fn dead_commit_into(ckpt: &Path, out: &Path, when: u32) -> Option<()> {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("inject=renameat2:signal=KILL:when={when}"))
        .arg(util::bin())
        .arg("--checkpoint_dir")
        .arg(ckpt)
        .arg("--out_dir")
        .arg(out)
        .args(["--prune_all", "-q"])
        .status()
        .ok()?;
    assert!(!status.success(), "the run was not killed");
    Some(())
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_commit_into_a_folder_renamed_mid_run_still_finishes_the_dead_run_there_first() {
    use trtllm_prune::fixture::Staging;
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    // This run starts in `out` and writes one file.
    let mut staging = Staging::open(&out, false, trtllm_prune::Cancel::on_signals()).unwrap();
    let staged = staging.add("notes.txt");
    let file = staging.create(&staged, None, false).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"ours\n", 0).unwrap();
    drop(file);
    // Meanwhile another run dies mid-commit in the same folder, and the
    // folder is renamed, a new empty one taking its name.
    if dead_commit_into(&ckpt, &out, 2).is_none() {
        return;
    }
    let moved = root.join("moved");
    fs::rename(&out, &moved).unwrap();
    fs::create_dir_all(&out).unwrap();

    let report = staging.commit().unwrap();

    assert_eq!(report.recovered.len(), 1, "{:?}", report.recovered);
    assert!(report.recovered[0].contains("finished the commit of an earlier run"));
    assert_eq!(hidden_names(&moved), Vec::<String>::new());
    assert_eq!(
        fs::read_to_string(moved.join("notes.txt")).unwrap(),
        "ours\n"
    );
    let verify = run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &moved,
        &"--prune_all",
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert_eq!(util::file_names(&out), Vec::<String>::new());
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_file_planted_at_a_used_temp_name_is_never_renamed_over_an_output() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    // Killed after rank0 (the first rename) was put in place.
    if dead_commit_into(&ckpt, &out, 2).is_none() {
        return;
    }
    let journal = hidden_names(&out)
        .into_iter()
        .find(|n| n.ends_with(".journal"))
        .expect("a journal is left");
    let id = journal
        .trim_start_matches(".trtllm-prune-")
        .trim_end_matches(".journal");
    let planted = out.join(format!(".rank0.safetensors.trtllm-prune-{id}.tmp"));
    assert!(!planted.exists(), "rank0 was not renamed yet");
    fs::write(&planted, "PWNED").unwrap();
    // Planted by another user, as in a shared folder with the sticky bit.
    // SAFETY: geteuid cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    }

    let out_inspect = run(&[&"inspect", &out]);

    assert!(out_inspect.status.success(), "{}", stderr(&out_inspect));
    assert_ne!(fs::read(out.join("rank0.safetensors")).unwrap(), b"PWNED");
    let verify = run(&[
        &"verify",
        &"--checkpoint_dir",
        &ckpt,
        &"--out_dir",
        &out,
        &"--prune_all",
    ]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Another user's file is not the tool's to remove.
    if as_root {
        assert_eq!(fs::read(&planted).unwrap(), b"PWNED");
    }
}

#[test]
fn in_place_a_symlinked_config_keeps_its_targets_mode() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    fs::rename(ckpt.join("config.json"), ckpt.join("config.real")).unwrap();
    fs::set_permissions(ckpt.join("config.real"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("config.real", ckpt.join("config.json")).unwrap();

    assert_success(run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"]));

    let meta = fs::symlink_metadata(ckpt.join("config.json")).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600);
}

#[test]
fn a_json_report_that_cannot_be_written_after_the_commit_exits_3() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    let full = fs::File::create("/dev/full").ok();
    let Some(full) = full else {
        return;
    };
    let result = Command::new(util::bin())
        .arg("--checkpoint_dir")
        .arg(&ckpt)
        .arg("--out_dir")
        .arg(&out)
        .arg("--json")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    assert!(stderr(&result).contains("the output is in place, but cannot write the JSON report"));
    assert!(out.join("config.json").exists());
}

#[test]
fn a_shard_whose_name_is_not_utf8_is_refused_not_renamed() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, root) = root();
    let ckpt = root.join("hf");
    fs::create_dir_all(&ckpt).unwrap();
    let specs = [trtllm_prune::fixture::TensorSpec::new(
        "embed.weight",
        trtllm_prune::Dtype::F16,
        &[4],
    )];
    let odd = ckpt.join(std::ffi::OsStr::from_bytes(b"a\xff.safetensors"));
    trtllm_prune::fixture::write_safetensors(&odd, &specs, None).unwrap();
    let before = tree(&ckpt);
    let result = run(&[
        &"--checkpoint_dir",
        &ckpt,
        &"--in-place",
        &"--prune_all",
        &"--json",
    ]);
    let line = util::assert_error_kind(&result, "invalid");
    assert!(line.contains(r"a\xff.safetensors"), "{line}");
    assert!(tree(&ckpt) == before);
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_dry_run_names_an_unfinished_commit_it_reads_through() {
    let (_dir, root) = root();
    let Some(ckpt) = killed_mid_commit(&root) else {
        return;
    };
    let out = run(&[&"--checkpoint_dir", &ckpt, &"--in-place", &"--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was stopped in the middle of its commit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn leftovers_left_alone_are_reported_once_per_run() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    // Not a journal: a folder with a journal's name.
    fs::create_dir(out.join(".trtllm-prune-0123456789abcdef0123456789abcdef.journal")).unwrap();
    let result = run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out]);
    assert!(result.status.success(), "{}", stderr(&result));
    let err = stderr(&result);
    assert_eq!(err.matches("left alone").count(), 1, "{err}");
}

// ------------------------------------------- from a second hostile review

/// Runs the binary under strace with `injections` (each `-e inject=...`),
/// `as_nobody` as user nobody. `None` without strace.
fn run_traced(
    injections: &[&str],
    as_nobody: bool,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> Option<Output> {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"]);
    if as_nobody {
        cmd.args(["-u", "nobody"]);
    }
    for i in injections {
        cmd.arg("-e").arg(i);
    }
    cmd.arg(util::bin());
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().ok()
}

#[test]
fn an_undone_commit_killed_while_it_cleans_up_is_never_finished_later() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let before = tree(&ckpt);
    // The first rename fails (the commit is undone), then the run is killed
    // while it removes its temp files.
    let Some(out) = run_traced(
        &[
            "inject=renameat2:error=EIO:when=1",
            "inject=unlinkat:signal=KILL:when=2",
        ],
        false,
        &[&"--checkpoint_dir", &ckpt, &"--in-place", &"-q"],
    ) else {
        return;
    };
    assert!(!out.status.success());

    assert!(run(&[&"inspect", &ckpt]).status.success());

    assert!(
        tree(&ckpt) == before,
        "the folder is not the checkpoint it was"
    );
}

/// Gives `dir` and everything in it to everyone, so user nobody can run in it.
fn open_to_all(dir: &Path) {
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
#[cfg_attr(not(has_root), ignore = "needs root")]
fn another_users_unfinished_commit_blocks_writes_into_that_folder() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    open_to_all(&root);
    let Some(dead) = run_traced(
        &["inject=renameat2:signal=KILL:when=2"],
        true,
        &[
            &"--checkpoint_dir",
            &ckpt,
            &"--out_dir",
            &out,
            &"--prune_all",
            &"-q",
        ],
    ) else {
        return;
    };
    assert!(!dead.status.success());
    let before = tree(&out);

    let line = assert_error(&prune_into(&ckpt, &out, &[]));

    assert!(
        line.contains("a run of another user (uid 65534) was stopped in the middle of its commit"),
        "{line}"
    );
    assert!(tree(&out) == before, "the folder changed");
}

#[test]
#[cfg_attr(not(has_root), ignore = "needs root")]
fn a_checkpoint_left_half_committed_by_another_user_is_not_read() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    open_to_all(&root);
    let Some(dead) = run_traced(
        &["inject=renameat2:signal=KILL:when=2"],
        true,
        &[
            &"--checkpoint_dir",
            &ckpt,
            &"--in-place",
            &"--prune_all",
            &"-q",
        ],
    ) else {
        return;
    };
    assert!(!dead.status.success());
    let out = root.join("out");

    let line = assert_error(&prune_into(&ckpt, &out, &[]));

    assert!(line.contains("not read: a run of another user"), "{line}");
    assert!(!out.exists());
}

#[test]
#[cfg_attr(not(has_strace), ignore = "needs strace (apt install strace)")]
fn a_dry_run_names_an_unfinished_commit_in_the_output_folder() {
    let (_dir, root) = root();
    let ckpt = write_checkpoint(&root, "ckpt", &CheckpointSpec::tiny(Family::Llama, 2, 1));
    let out = root.join("out");
    if dead_commit_into(&ckpt, &out, 2).is_none() {
        return;
    }
    let before = tree(&out);
    let dry = run(&[&"--checkpoint_dir", &ckpt, &"--out_dir", &out, &"--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains("was stopped in the middle of its commit"),
        "{}",
        stderr(&dry)
    );
    assert!(tree(&out) == before, "a dry run changed the folder");
}
