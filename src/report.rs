//! What the tool prints on stdout: plan tables, inspect listings, verify
//! verdicts, and the same as one JSON document (`--json`, schema in
//! `docs/GUIDE.md`). Pure functions from plans and summaries to text.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::header::{printable, Header, TensorEntry};
use crate::plan::{PrunePlan, TensorOutcome};
use crate::prune::{Inspected, Prepared, Summary};
use crate::verify::FileVerdict;

/// Identifies the JSON documents' layout; bumped on incompatible changes.
pub const JSON_SCHEMA: &str = "trtllm-prune/v1";

/// Bytes in binary units, e.g. `1.50 GiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

fn decision_word(t: &TensorOutcome) -> &'static str {
    if t.pruned {
        "prune"
    } else {
        "keep"
    }
}

fn shape_text(shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// One line per tensor: decision, dtype, shape, bytes, name, rule.
fn tensor_lines(out: &mut String, header: &Header, plan: &PrunePlan) {
    for (entry, t) in header.tensors.iter().zip(&plan.tensors) {
        let _ = writeln!(
            out,
            "    {:<5}  {:<11}  {:<20}  {:>12}  {}  ({})",
            decision_word(t),
            t.dtype.name(),
            shape_text(&entry.shape),
            t.bytes,
            printable(&entry.name),
            t.reason
        );
    }
}

/// The `--dry-run` table: per file and in total, tensors pruned / kept and
/// bytes before -> after; with `verbose`, one line per tensor.
pub fn plan_table(prepared: &Prepared, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dry run: nothing written; the output would go to {}",
        prepared.out_dir.display()
    );
    let width = prepared
        .files
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>12}  {:>12}",
        "FILE", "TENSORS", "PRUNED", "KEPT", "BYTES IN", "BYTES OUT"
    );
    for f in &prepared.files {
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>8}  {:>8}  {:>12}  {:>12}",
            f.name,
            f.plan.tensors.len(),
            f.plan.pruned_count(),
            f.plan.kept_count(),
            human_bytes(f.plan.input_len),
            human_bytes(f.plan.output_len)
        );
        if verbose {
            tensor_lines(&mut out, &f.header, &f.plan);
        }
    }
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>12}  {:>12}",
        "total",
        prepared.tensors_pruned() + prepared.tensors_kept(),
        prepared.tensors_pruned(),
        prepared.tensors_kept(),
        human_bytes(prepared.bytes_in()),
        human_bytes(prepared.bytes_out())
    );
    for g in &prepared.generated {
        let _ = writeln!(out, "would write {}", g.name);
    }
    for f in &prepared.extra_files {
        let _ = writeln!(out, "would copy {}", f.path.display());
    }
    out
}

fn tensor_json(entry: &TensorEntry, t: &TensorOutcome) -> Value {
    json!({
        "name": entry.name,
        "dtype": t.dtype.name(),
        "shape": entry.shape,
        "bytes": t.bytes,
        "offset": t.input_offset,
        "pruned": t.pruned,
        "rule": t.reason.to_string(),
    })
}

fn plan_json(name: &str, header: &Header, plan: &PrunePlan) -> Value {
    json!({
        "name": name,
        "tensors_pruned": plan.pruned_count(),
        "tensors_kept": plan.kept_count(),
        "bytes_in": plan.input_len,
        "bytes_out": plan.output_len,
        "tensors": header
            .tensors
            .iter()
            .zip(&plan.tensors)
            .map(|(entry, t)| tensor_json(entry, t))
            .collect::<Vec<_>>(),
    })
}

pub fn verdict_json(v: &FileVerdict) -> Value {
    json!({
        "name": v.name,
        "ok": v.ok(),
        "tensors_pruned": v.tensors_pruned,
        "tensors_kept": v.tensors_kept,
        "bytes_checked": v.bytes_checked,
        "problems": v.problems,
    })
}

/// The JSON document of a run (`summary: None` for a dry run).
pub fn run_json(prepared: &Prepared, summary: Option<&Summary>) -> Value {
    json!({
        "schema": JSON_SCHEMA,
        "command": "prune",
        "dry_run": summary.is_none(),
        "checkpoint_dir": prepared.checkpoint_dir,
        "out_dir": prepared.out_dir,
        "layout": prepared.layout,
        "in_place": prepared.in_place,
        "files": prepared.files.iter().map(|f| plan_json(&f.name, &f.header, &f.plan)).collect::<Vec<_>>(),
        "generated_files": prepared.generated.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        "copied_files": prepared.extra_files.iter().map(|f| f.path.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
        "totals": {
            "files": prepared.files.len(),
            "tensors_pruned": prepared.tensors_pruned(),
            "tensors_kept": prepared.tensors_kept(),
            "bytes_in": prepared.bytes_in(),
            "bytes_out": prepared.bytes_out(),
        },
        "bytes_shared": summary.map(|s| s.bytes_shared),
        "verify": summary.and_then(|s| s.verified.as_ref()).map(|v| v.iter().map(verdict_json).collect::<Vec<_>>()),
        "warnings": prepared.warnings.iter().chain(summary.iter().flat_map(|s| &s.recovered)).collect::<Vec<_>>(),
    })
}

/// The `inspect` listing: tensors with dtype, shape, bytes and offset, the
/// header metadata, and what the current rule would prune.
pub fn inspect_table(files: &[Inspected]) -> String {
    let mut out = String::new();
    for f in files {
        let _ = writeln!(
            out,
            "{}: {} tensors, {} (header {})",
            f.path.display(),
            f.plan.tensors.len(),
            human_bytes(f.plan.input_len),
            human_bytes(f.header.header_len)
        );
        let metadata = f.header.metadata.as_deref().unwrap_or("none");
        let _ = writeln!(out, "  metadata: {metadata}");
        let _ = writeln!(
            out,
            "  {:<5}  {:>12}  {:>12}  {:<11}  {:<20}  NAME",
            "RULE", "OFFSET", "BYTES", "DTYPE", "SHAPE"
        );
        for (entry, t) in f.header.tensors.iter().zip(&f.plan.tensors) {
            let _ = writeln!(
                out,
                "  {:<5}  {:>12}  {:>12}  {:<11}  {:<20}  {}",
                decision_word(t),
                t.input_offset,
                t.bytes,
                t.dtype.name(),
                shape_text(&entry.shape),
                printable(&entry.name)
            );
        }
        let _ = writeln!(
            out,
            "  would prune {} of {} tensors: {} -> {}",
            f.plan.pruned_count(),
            f.plan.tensors.len(),
            human_bytes(f.plan.input_len),
            human_bytes(f.plan.output_len)
        );
    }
    out
}

pub fn inspect_json(path: &std::path::Path, files: &[Inspected]) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            let metadata: Value = f
                .header
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Value::Null);
            let mut v = plan_json(&f.name, &f.header, &f.plan);
            v["path"] = json!(f.path);
            v["header_len"] = json!(f.header.header_len);
            v["metadata"] = metadata;
            v
        })
        .collect();
    json!({
        "schema": JSON_SCHEMA,
        "command": "inspect",
        "path": path,
        "files": files,
    })
}

/// The `verify` listing: one line per file, then the problems.
pub fn verify_table(verdicts: &[FileVerdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let status = if v.ok() { "ok" } else { "FAIL" };
        let what = if v.tensors_kept + v.tensors_pruned == 0 {
            format!("compared with the input ({})", human_bytes(v.bytes_checked))
        } else {
            format!(
                "{} kept tensors compared ({}), {} pruned tensors empty",
                v.tensors_kept,
                human_bytes(v.bytes_checked),
                v.tensors_pruned
            )
        };
        let _ = writeln!(out, "{status:<4}  {}: {what}", v.name);
        for p in &v.problems {
            let _ = writeln!(out, "      {p}");
        }
    }
    out
}

pub fn verify_json(
    checkpoint_dir: &std::path::Path,
    out_dir: &std::path::Path,
    verdicts: &[FileVerdict],
) -> Value {
    json!({
        "schema": JSON_SCHEMA,
        "command": "verify",
        "checkpoint_dir": checkpoint_dir,
        "out_dir": out_dir,
        "ok": verdicts.iter().all(FileVerdict::ok),
        "files": verdicts.iter().map(verdict_json).collect::<Vec<_>>(),
    })
}
