//! What the tool prints on stdout: plan tables, inspect listings, verify
//! verdicts, and the same as one JSON document (`--json`, schema in
//! `docs/GUIDE.md`). Pure functions from plans and summaries to text.

use std::fmt::Write;

use std::path::Path;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use trtllm_prune::{
    is_emptied, json_safe, shown, shown_path, FileVerdict, Header, Inspected, Prepared, PrunePlan,
    PruneRule, Summary, TensorEntry, TensorOutcome,
};

/// Identifies the JSON documents' layout; bumped on incompatible changes.
pub const JSON_SCHEMA: &str = "trtllm-prune/v1";

/// Bytes in binary units, e.g. `1.50 GiB` (as the progress bars show
/// them).
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
fn tensor_lines(out: &mut String, header: &Header, plan: &PrunePlan, rule: &PruneRule) {
    for (entry, t) in plan.tensors_of(header) {
        let _ = writeln!(
            out,
            "    {:<5}  {:<11}  {:<20}  {:>12}  {}  ({})",
            decision_word(t),
            t.dtype.name(),
            shape_text(entry.shape()),
            t.bytes,
            shown(entry.name()),
            rule.decide(entry.name()).reason
        );
    }
}

/// The `--dry-run` table: per file and in total, tensors pruned / kept and
/// bytes before -> after; with `verbose`, one line per tensor.
pub fn plan_table(prepared: &Prepared, verbose: bool) -> String {
    let mut out = format!(
        "dry run: nothing written; the output would go to {}\n{}",
        shown_path(&prepared.out_dir),
        plan_lines(prepared, verbose)
    );
    for name in prepared.generated_names() {
        let _ = writeln!(out, "would write {}", shown(name));
    }
    for (path, link_target) in prepared.copied_files() {
        match link_target {
            Some(target) => {
                let _ = writeln!(
                    out,
                    "would copy {} (a symlink to {}: its target's bytes)",
                    shown_path(path),
                    shown_path(target)
                );
            }
            None => {
                let _ = writeln!(out, "would copy {}", shown_path(path));
            }
        }
    }
    out
}

/// The plan's table as [`plan_table`] shows it: per file, the total, and
/// with `verbose` one line per tensor (a run's `-v` prints it on stderr
/// before writing).
pub fn plan_lines(prepared: &Prepared, verbose: bool) -> String {
    let mut out = String::new();
    // Names are escaped before the column is measured, in characters as
    // `{:<width$}` pads.
    let names: Vec<_> = prepared.files.iter().map(|f| shown(&f.name)).collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>8}  {:>12}  {:>12}",
        "FILE", "TENSORS", "PRUNED", "KEPT", "BYTES IN", "BYTES OUT"
    );
    for (f, name) in prepared.files.iter().zip(&names) {
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>8}  {:>8}  {:>12}  {:>12}",
            name,
            f.plan.tensors.len(),
            f.plan.pruned_count(),
            f.plan.kept_count(),
            human_bytes(f.plan.input_len),
            human_bytes(f.plan.output_len)
        );
        if verbose {
            tensor_lines(&mut out, &f.header, &f.plan, &prepared.rule);
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
    if prepared.hollow {
        let _ = writeln!(
            out,
            "hollow: {} apparent size, about {} on disk (emptied tensors are holes that read as zeros)",
            human_bytes(prepared.bytes_out()),
            human_bytes(prepared.bytes_stored())
        );
    }
    out
}

/// Writes `document` as pretty JSON, as it is serialized. Every character
/// a terminal would act on (C1 controls, DEL, bidi and other format
/// characters; serde_json escapes C0 itself) is written as a `\uXXXX`
/// escape: a JSON reader gets the exact names, a terminal no controls.
pub fn write_json(out: &mut impl std::io::Write, document: &impl Serialize) -> std::io::Result<()> {
    let formatter = TerminalSafeJson(serde_json::ser::PrettyFormatter::new());
    let mut serializer = serde_json::Serializer::with_formatter(out, formatter);
    document.serialize(&mut serializer)?;
    Ok(())
}

/// serde_json's pretty printer with [`json_safe`] strings.
struct TerminalSafeJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for TerminalSafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        writer.write_all(json_safe(fragment).as_bytes())
    }

    /// A `RawValue` (a header's `__metadata__`, as written in the file).
    fn write_raw_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        writer.write_all(json_safe(fragment).as_bytes())
    }

    // The layout is the pretty printer's.
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// A path as a JSON string: exact when it is UTF-8; otherwise each byte
/// that is not becomes U+FFFD (a JSON string is Unicode), where serde's own
/// would fail the document halfway through.
fn lossy_path<S: Serializer>(path: &&Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// A JSON array written element by element from an iterator, so a
/// document with a million tensors is never held in memory as a tree.
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
struct TensorDoc<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [u64],
    bytes: u64,
    offset: u64,
    pruned: bool,
    rule: String,
}

fn tensor_doc<'a>(entry: TensorEntry<'a>, t: &TensorOutcome, rule: &PruneRule) -> TensorDoc<'a> {
    TensorDoc {
        name: entry.name(),
        dtype: t.dtype.name(),
        shape: entry.shape(),
        bytes: t.bytes,
        offset: t.input_offset,
        pruned: t.pruned,
        rule: rule.decide(entry.name()).reason.to_string(),
    }
}

/// The `tensors` array of one file.
fn tensors_doc<'a>(
    header: &'a Header,
    plan: &'a PrunePlan,
    rule: &'a PruneRule,
) -> impl Serialize + 'a {
    Seq(move || {
        plan.tensors_of(header)
            .map(move |(e, t)| tensor_doc(e, t, rule))
    })
}

/// One file of a run or of `inspect`; `inspect` adds where the file is.
#[derive(Serialize)]
struct FileDoc<'a, T: Serialize> {
    name: &'a str,
    tensors_pruned: usize,
    tensors_kept: usize,
    bytes_in: u64,
    bytes_out: u64,
    tensors: T,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    location: Option<Location<'a>>,
}

#[derive(Serialize)]
struct Location<'a> {
    #[serde(serialize_with = "lossy_path")]
    path: &'a Path,
    header_len: u64,
    /// Some tensors are emptied already and the rule would empty no more.
    already_pruned: bool,
    /// The header's `__metadata__`, written as it is in the file.
    metadata: Option<&'a RawValue>,
}

fn file_doc<'a>(
    name: &'a str,
    header: &'a Header,
    plan: &'a PrunePlan,
    rule: &'a PruneRule,
    location: Option<Location<'a>>,
) -> FileDoc<'a, impl Serialize + 'a> {
    FileDoc {
        name,
        tensors_pruned: plan.pruned_count(),
        tensors_kept: plan.kept_count(),
        bytes_in: plan.input_len,
        bytes_out: plan.output_len,
        tensors: tensors_doc(header, plan, rule),
        location,
    }
}

#[derive(Serialize)]
pub struct VerdictDoc<'a> {
    name: &'a str,
    ok: bool,
    tensors_pruned: usize,
    tensors_kept: usize,
    bytes_checked: u64,
    problems: &'a [String],
    /// Problems found beyond those listed.
    problems_omitted: usize,
}

pub fn verdict_doc(v: &FileVerdict) -> VerdictDoc<'_> {
    VerdictDoc {
        name: &v.name,
        ok: v.ok(),
        tensors_pruned: v.tensors_pruned,
        tensors_kept: v.tensors_kept,
        bytes_checked: v.bytes_checked,
        problems: &v.problems,
        problems_omitted: v.problems_omitted,
    }
}

#[derive(Serialize)]
struct Totals {
    files: usize,
    tensors_pruned: usize,
    tensors_kept: usize,
    bytes_in: u64,
    bytes_out: u64,
}

/// Sizes of hollow outputs: apparent (`totals.bytes_out`) and stored
/// (headers and kept data, about what they take on disk).
#[derive(Serialize)]
struct HollowDoc {
    apparent_bytes: u64,
    stored_bytes: u64,
}

/// The JSON document of a run (`summary: None` for a dry run), written as
/// it is serialized.
pub fn run_json<'a>(prepared: &'a Prepared, summary: Option<&'a Summary>) -> impl Serialize + 'a {
    #[derive(Serialize)]
    struct RunDoc<'a, F: Serialize, W: Serialize> {
        schema: &'static str,
        command: &'static str,
        dry_run: bool,
        /// In place with nothing to do: nothing was rewritten.
        already_pruned: bool,
        #[serde(serialize_with = "lossy_path")]
        checkpoint_dir: &'a Path,
        #[serde(serialize_with = "lossy_path")]
        out_dir: &'a Path,
        layout: &'static str,
        in_place: bool,
        hollow: Option<HollowDoc>,
        files: F,
        generated_files: Vec<&'a str>,
        copied_files: Vec<Option<String>>,
        totals: Totals,
        bytes_shared: Option<u64>,
        verify: Option<Vec<VerdictDoc<'a>>>,
        warnings: W,
    }
    RunDoc {
        schema: JSON_SCHEMA,
        command: "prune",
        dry_run: summary.is_none() && !prepared.already_pruned(),
        already_pruned: prepared.already_pruned(),
        checkpoint_dir: &prepared.checkpoint_dir,
        out_dir: &prepared.out_dir,
        layout: prepared.layout.name(),
        in_place: prepared.in_place,
        hollow: prepared.hollow.then(|| HollowDoc {
            apparent_bytes: prepared.bytes_out(),
            stored_bytes: prepared.bytes_stored(),
        }),
        files: Seq(move || {
            prepared
                .files
                .iter()
                .map(|f| file_doc(&f.name, &f.header, &f.plan, &prepared.rule, None))
        }),
        generated_files: prepared.generated_names().collect(),
        copied_files: prepared
            .copied_files()
            .map(|(path, _)| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        totals: Totals {
            files: prepared.files.len(),
            tensors_pruned: prepared.tensors_pruned(),
            tensors_kept: prepared.tensors_kept(),
            bytes_in: prepared.bytes_in(),
            bytes_out: prepared.bytes_out(),
        },
        bytes_shared: summary.map(|s| s.bytes_shared),
        verify: summary
            .and_then(|s| s.verified.as_ref())
            .map(|v| v.iter().map(verdict_doc).collect()),
        warnings: Seq(move || {
            prepared.warnings.iter().chain(
                summary
                    .into_iter()
                    .flat_map(|s| s.recovered.iter().chain(&s.warnings)),
            )
        }),
    }
}

/// The `inspect` listing: tensors with dtype, shape, bytes and offset, the
/// header metadata, and what the current rule would prune.
pub fn inspect_table(files: &[Inspected]) -> String {
    let mut out = String::new();
    for f in files {
        let _ = writeln!(
            out,
            "{}: {} tensors, {} (header {})",
            shown_path(&f.path),
            f.plan.tensors.len(),
            human_bytes(f.plan.input_len),
            human_bytes(f.header.header_len())
        );
        // JSON text, shown with JSON's own escapes.
        let metadata = json_safe(f.header.metadata().unwrap_or("none"));
        let _ = writeln!(out, "  metadata: {metadata}");
        let _ = writeln!(
            out,
            "  {:<5}  {:>12}  {:>12}  {:<11}  {:<20}  NAME",
            "RULE", "OFFSET", "BYTES", "DTYPE", "SHAPE"
        );
        for (entry, t) in f.plan.tensors_of(&f.header) {
            // An already emptied tensor of a pruned output is neither kept
            // nor about to be pruned: it is empty.
            let word = if is_emptied(entry) {
                "empty"
            } else {
                decision_word(t)
            };
            let _ = writeln!(
                out,
                "  {:<5}  {:>12}  {:>12}  {:<11}  {:<20}  {}",
                word,
                t.input_offset,
                t.bytes,
                t.dtype.name(),
                shape_text(entry.shape()),
                shown(entry.name())
            );
        }
        let empty = f.header.tensors().filter(|&e| is_emptied(e)).count();
        if already_pruned(f) {
            let _ = writeln!(
                out,
                "  already pruned: {empty} of {} tensors are empty; the rule would empty no more",
                f.plan.tensors.len(),
            );
        } else {
            let _ = writeln!(
                out,
                "  would prune {} of {} tensors: {} -> {}",
                f.plan.pruned_count() - empty.min(f.plan.pruned_count()),
                f.plan.tensors.len(),
                human_bytes(f.plan.input_len),
                human_bytes(f.plan.output_len)
            );
        }
    }
    out
}

/// Whether a file is a pruned output already: some tensors are emptied and
/// every tensor the rule prunes is one of them.
fn already_pruned(f: &Inspected) -> bool {
    let mut any = false;
    for (entry, t) in f.plan.tensors_of(&f.header) {
        let emptied = is_emptied(entry);
        any |= emptied;
        if t.pruned && !emptied {
            return false;
        }
    }
    any
}

/// The JSON document of `inspect`.
pub fn inspect_json<'a>(
    path: &'a Path,
    files: &'a [Inspected],
    rule: &'a PruneRule,
) -> impl Serialize + 'a {
    #[derive(Serialize)]
    struct InspectDoc<'a, F: Serialize> {
        schema: &'static str,
        command: &'static str,
        #[serde(serialize_with = "lossy_path")]
        path: &'a Path,
        files: F,
    }
    InspectDoc {
        schema: JSON_SCHEMA,
        command: "inspect",
        path,
        files: Seq(move || {
            files.iter().map(|f| {
                let location = Location {
                    path: &f.path,
                    header_len: f.header.header_len(),
                    already_pruned: already_pruned(f),
                    metadata: f
                        .header
                        .metadata()
                        .and_then(|m| serde_json::from_str::<&RawValue>(m).ok()),
                };
                file_doc(&f.name, &f.header, &f.plan, rule, Some(location))
            })
        }),
    }
}

/// Problems the `verify` listing shows per file; the rest are counted.
const PROBLEMS_SHOWN: usize = 5;

/// `"s"` unless `n` is 1.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The `verify` listing: one line per file, then its first problems and a
/// count of the rest.
pub fn verify_table(verdicts: &[FileVerdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let status = if v.ok() { "ok" } else { "FAIL" };
        let what = if v.tensors_kept + v.tensors_pruned == 0 {
            format!("compared with the input ({})", human_bytes(v.bytes_checked))
        } else {
            let kept = match (v.tensors_compared, v.tensors_kept) {
                (_, 0) => "no kept tensors".to_string(),
                (0, kept) => format!("none of the {kept} kept tensors compared"),
                (compared, kept) if compared == kept => format!(
                    "{kept} kept tensor{} compared ({})",
                    plural(kept),
                    human_bytes(v.bytes_checked)
                ),
                (compared, kept) => format!(
                    "{compared} of {kept} kept tensors compared ({})",
                    human_bytes(v.bytes_checked)
                ),
            };
            format!(
                "{kept}, {} pruned tensor{} {}",
                v.tensors_pruned,
                plural(v.tensors_pruned),
                if v.hollow { "zeros" } else { "empty" }
            )
        };
        let _ = writeln!(out, "{status:<4}  {}: {what}", shown(&v.name));
        for p in v.problems.iter().take(PROBLEMS_SHOWN) {
            let _ = writeln!(out, "      {p}");
        }
        let more = v.problems.len().saturating_sub(PROBLEMS_SHOWN) + v.problems_omitted;
        if more > 0 {
            let _ = writeln!(
                out,
                "      ... and {more} more problem{} (--json lists the first {})",
                plural(more),
                trtllm_prune::FileVerdict::MAX_PROBLEMS
            );
        }
    }
    out
}

/// The JSON document of `verify`.
pub fn verify_json<'a>(
    checkpoint_dir: &'a Path,
    out_dir: &'a Path,
    verdicts: &'a [FileVerdict],
) -> impl Serialize + 'a {
    #[derive(Serialize)]
    struct VerifyDoc<'a> {
        schema: &'static str,
        command: &'static str,
        #[serde(serialize_with = "lossy_path")]
        checkpoint_dir: &'a Path,
        #[serde(serialize_with = "lossy_path")]
        out_dir: &'a Path,
        ok: bool,
        files: Vec<VerdictDoc<'a>>,
    }
    VerifyDoc {
        schema: JSON_SCHEMA,
        command: "verify",
        checkpoint_dir,
        out_dir,
        ok: verdicts.iter().all(FileVerdict::ok),
        files: verdicts.iter().map(verdict_doc).collect(),
    }
}

/// The JSON document of a failure under `--json`:
/// `{"error": {"kind", "message", "exit_code", "file"}}` (`kind` is
/// `usage` for a usage error, else the error's kind; `file` is null when
/// the error names none).
pub fn error_json<'a>(
    kind: &'a str,
    message: &'a str,
    exit_code: i32,
    file: Option<&'a str>,
) -> impl Serialize + 'a {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        kind: &'a str,
        message: &'a str,
        exit_code: i32,
        file: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct ErrorDoc<'a> {
        schema: &'static str,
        error: ErrorBody<'a>,
    }
    ErrorDoc {
        schema: JSON_SCHEMA,
        error: ErrorBody {
            kind,
            message,
            exit_code,
            file,
        },
    }
}
