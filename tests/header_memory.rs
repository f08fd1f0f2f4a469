//! What a parsed header keeps in memory: no allocation per tensor, and a
//! few bytes per tensor besides its name and shape. A 1,000,000-tensor rank
//! must prune within 4 x its header bytes + 64 MiB (docs/BENCHMARKS.md,
//! `benches/memory.sh`); a `String` and a `Vec` per tensor alone took most
//! of that. Measured structurally, by counting the allocations the header
//! holds, not by timing or by the process's resident size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use trtllm_prune::fixture::parse_file;
use trtllm_prune::fixture::{header_json, TensorSpec};
use trtllm_prune::Dtype;

use crate::util::safetensors_bytes;

/// The system allocator, counting the blocks and bytes that the current
/// thread holds (other tests run on other threads and do not show).
struct Counting;

thread_local! {
    static BLOCKS: Cell<i64> = const { Cell::new(0) };
    static BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count(blocks: i64, bytes: i64) {
    // `try_with`: nothing to count while the thread's locals are torn down.
    let _ = BLOCKS.try_with(|b| b.set(b.get() + blocks));
    let _ = BYTES.try_with(|b| b.set(b.get() + bytes));
}

/// Blocks and bytes the current thread holds.
fn held() -> (i64, i64) {
    (BLOCKS.with(Cell::get), BYTES.with(Cell::get))
}

// SAFETY: every call is passed on to `System` unchanged; the counters are
// plain thread-local cells with a const initialiser, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-1, -(layout.size() as i64));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(0, new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn a_header_holds_no_allocation_per_tensor() {
    const TENSORS: usize = 20_000;
    let specs: Vec<TensorSpec> = (0..TENSORS)
        .map(|i| TensorSpec::new(format!("l{i}.mlp.fc.weight"), Dtype::F16, &[4, 2]))
        .collect();
    let json = header_json(&specs, None);
    let data_len: u64 = specs.iter().map(TensorSpec::byte_len).sum();
    let bytes = safetensors_bytes(&json, &vec![0u8; data_len as usize]);
    let names: usize = specs.iter().map(|t| t.name.len()).sum();
    let dims = 8 * 2 * TENSORS;

    let before = held();
    let header = parse_file(&bytes).expect("valid header");
    let (blocks, bytes_held) = (held().0 - before.0, held().1 - before.1);
    assert_eq!(header.tensor_count(), TENSORS);

    // A handful of flat arrays, however many tensors.
    assert!(blocks <= 8, "the header holds {blocks} allocations");
    // Names and shapes, and at most 32 bytes per tensor besides.
    let bound = names + dims + 32 * TENSORS;
    assert!(
        bytes_held as usize <= bound,
        "the header holds {bytes_held} bytes, over {bound} ({} per tensor besides names and shapes)",
        (bytes_held as usize).saturating_sub(names + dims) / TENSORS
    );
    drop(header);
}
