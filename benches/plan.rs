//! Header reading and planning at 100, 2,000 and 20,000 tensors: the work
//! done before the first byte is copied, and all of it for `--prune_all`.
//!
//! Run: `cargo bench --bench plan` (figures in docs/BENCHMARKS.md).
//!
//! `filler_bomb` is issue 9's worst case for the block-sharing filler
//! search: 80,000 kept 4 KiB tensors, each after a pruned one of 2 or 4094
//! bytes (or 8 or 4088), then 80,000 small kept tensors as candidates
//! (quadratic before the search had a work budget: 10 s).
//!
//! The headers are those of an FP8 Llama-70B rank at TP8 (18 tensors per
//! layer with scales, offsets in the tens of GB), cut to the tensor count.
//! `read_header` reads them from a sparse file on disk, as a run does.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use trtllm_prune::fixture::{
    filler_bomb, padded_header_json, read_header, CheckpointSpec, Family, TensorSpec, N_LEN,
    SHARE_ALIGNMENT,
};
use trtllm_prune::{parse_header, plan_prune, Dtype, PruneRule};

const COUNTS: [usize; 3] = [100, 2_000, 20_000];

/// The first `count` tensors of an FP8 Llama-70B-shaped rank.
fn tensors(count: usize) -> Vec<TensorSpec> {
    let spec = CheckpointSpec {
        family: Family::Fp8,
        layers: count as u64 / 18 + 2,
        hidden: 8192,
        intermediate: 28672,
        vocab: 128256,
        tp: 8,
        pp: 1,
        dtype: Dtype::BF16,
    };
    let mut all = spec.rank_tensors(0);
    all.truncate(count);
    all
}

/// The padded header JSON and the length of the file it describes.
fn header_bytes(tensors: &[TensorSpec]) -> (Vec<u8>, u64) {
    let json = padded_header_json(tensors, None);
    let data: u64 = tensors.iter().map(TensorSpec::byte_len).sum();
    let file_len = N_LEN + json.len() as u64 + data;
    (json, file_len)
}

/// Writes a sparse safetensors file with this header: only the header
/// takes disk space.
fn sparse_file(dir: &Path, json: &[u8], file_len: u64) -> PathBuf {
    let path = dir.join(format!("rank-{}.safetensors", json.len()));
    let mut file = File::create(&path).expect("bench file created");
    file.write_all(&(json.len() as u64).to_le_bytes())
        .and_then(|()| file.write_all(json))
        .and_then(|()| file.set_len(file_len))
        .expect("bench file written");
    path
}

fn header_and_plan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rule = PruneRule::default();
    let mut group = c.benchmark_group("header");
    for count in COUNTS {
        let (json, file_len) = header_bytes(&tensors(count));
        let path = sparse_file(dir.path(), &json, file_len);
        let file = File::open(&path).expect("bench file opens");
        let header = parse_header(&json, file_len).expect("valid header");
        group.throughput(Throughput::Bytes(json.len() as u64));

        group.bench_with_input(BenchmarkId::new("parse", count), &json, |b, json| {
            b.iter(|| parse_header(black_box(json), file_len).expect("valid header"))
        });
        group.bench_with_input(BenchmarkId::new("read", count), &file, |b, file| {
            b.iter(|| read_header(black_box(file), &path).expect("valid header"))
        });
        group.bench_with_input(BenchmarkId::new("plan", count), &header, |b, header| {
            b.iter(|| plan_prune(black_box(header), &rule, SHARE_ALIGNMENT).expect("plans"))
        });
        group.bench_with_input(
            BenchmarkId::new("read_and_plan", count),
            &file,
            |b, file| {
                b.iter(|| {
                    let header = read_header(black_box(file), &path).expect("valid header");
                    plan_prune(&header, &rule, SHARE_ALIGNMENT).expect("plans")
                })
            },
        );
    }
    group.finish();
}

fn plan_worst_case(c: &mut Criterion) {
    let rule = PruneRule::default();
    let mut group = c.benchmark_group("worst_case");
    group.sample_size(10);
    let count = 80_000;
    // 2/4094: issue 9's shape; 8/4088: every range stays congruent modulo
    // 8, so the filler search runs in front of every large one.
    for (name, gaps) in [("bomb_2_4094", (2, 4094)), ("bomb_8_4088", (8, 4088))] {
        let header = filler_bomb(count, gaps);
        group.bench_with_input(BenchmarkId::new(name, 2 * count), &header, |b, header| {
            b.iter(|| plan_prune(black_box(header), &rule, SHARE_ALIGNMENT).expect("plans"))
        });
    }
    group.finish();
}

criterion_group!(benches, header_and_plan, plan_worst_case);
criterion_main!(benches);
