//! The library as another tool calls it: through the names `lib.rs`
//! re-exports, with its own progress observer, printing nothing.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use trtllm_prune::fixture::{CheckpointSpec, Family};
use trtllm_prune::{FileProgress, Options, Progress, PruneRule};

use crate::util::{self, write_checkpoint};

/// Counts what a run reports.
#[derive(Default)]
struct Tally {
    total: AtomicU64,
    files: AtomicUsize,
    started: Mutex<Vec<String>>,
    checked: AtomicUsize,
    bytes: AtomicU64,
    done: AtomicUsize,
}

struct FileTally<'a>(&'a Tally);

impl Progress for Tally {
    fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::SeqCst);
    }

    fn set_files(&self, count: usize) {
        self.files.store(count, Ordering::SeqCst);
    }

    fn file(&self, name: &OsStr, _len: u64) -> Box<dyn FileProgress + '_> {
        let mut started = self.started.lock().unwrap();
        started.push(name.to_string_lossy().into_owned());
        Box::new(FileTally(self))
    }

    fn check(&self, _name: &OsStr, _len: u64) -> Box<dyn FileProgress + '_> {
        self.checked.fetch_add(1, Ordering::SeqCst);
        Box::new(FileTally(self))
    }
}

impl FileProgress for FileTally<'_> {
    fn inc(&self, bytes: u64) {
        self.0.bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    fn done(self: Box<Self>) {
        self.0.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_library_caller_sees_a_run_through_its_own_progress_observer() {
    let tmp = util::tempdir();
    let spec = CheckpointSpec::tiny(Family::Llama, 2, 1);
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let mut options = Options::new(&ckpt);
    options.out_dir = Some(tmp.path().join("out"));
    options.rule = PruneRule::original(false);
    options.verify = true;
    let tally = Tally::default();

    let summary = trtllm_prune::prune(&options, &tally).expect("the run succeeds");

    let mut started = tally.started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, ["rank0.safetensors", "rank1.safetensors"]);
    assert_eq!(tally.files.load(Ordering::SeqCst), 2);
    assert_eq!(
        tally.checked.load(Ordering::SeqCst),
        2,
        "--verify checks each"
    );
    assert_eq!(tally.done.load(Ordering::SeqCst), 4, "every file ends");
    let total = tally.total.load(Ordering::SeqCst);
    assert!(total > 0);
    assert_eq!(
        tally.bytes.load(Ordering::SeqCst),
        total,
        "the bars end full"
    );
    assert_eq!(summary.files, 2);
    assert_eq!(
        summary.verified.map(|v| v.len()),
        Some(3),
        "ranks and config"
    );
}

#[test]
fn a_library_run_without_an_observer_reports_nothing_and_still_prunes() {
    let tmp = util::tempdir();
    let spec = CheckpointSpec::tiny(Family::Gpt, 1, 1);
    let ckpt = write_checkpoint(tmp.path(), "ckpt", &spec);
    let mut options = Options::new(&ckpt);
    options.out_dir = Some(tmp.path().join("out"));

    let prepared = trtllm_prune::prepare(&options).expect("prepared");
    let summary =
        trtllm_prune::execute(&prepared, &options, &trtllm_prune::NoProgress).expect("executed");

    assert_eq!(summary.tensors_pruned, prepared.tensors_pruned());
    assert!(summary.tensors_pruned > 0);
    assert_eq!(
        prepared.generated_names().collect::<Vec<_>>(),
        ["config.json"]
    );
    assert_eq!(prepared.world_size(), Some(1));
    let verification = trtllm_prune::verify_existing(
        &ckpt,
        Some(&tmp.path().join("out")),
        &prepared.rule,
        false,
        &trtllm_prune::Cancel::new(),
        &trtllm_prune::NoProgress,
    )
    .expect("verified");
    assert!(verification.verdicts.iter().all(|v| v.ok()));
}
