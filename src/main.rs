//! The `trtllm-prune` binary: parses arguments, sets up progress and
//! signals, prints results (stdout) and messages (stderr). Everything else
//! is the library.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use cli::args::{Cli, ColorChoice, Command, OutputArgs, Shell};
use cli::progress::Bars;
use cli::report::{self, human_bytes};
use cli::signals;
use trtllm_prune::{shown_line, shown_lines, shown_path, Cancel, Error, EXIT_FAILURE};

/// Exit status of a usage error (clap's).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // --color is looked for before parsing, for clap's help and errors too.
    let color = color_arg();
    set_color(color);
    let command = Cli::command().color(match color {
        ColorChoice::Auto => clap::ColorChoice::Auto,
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
    });
    let parsed = command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        // Help and version (exit 0).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return usage_error(&e),
    };
    set_color(cli.color.color);
    if let Some(line) = cli.unusable_place() {
        return usage_line(&line);
    }
    if let Some(conflict) = cli.conflict() {
        let e = Cli::command().error(ErrorKind::ArgumentConflict, conflict);
        return usage_error(&e);
    }
    signals::install();
    let (result, json) = match &cli.command {
        None => (run_prune(&cli), cli.output.json.json),
        Some(Command::Inspect { path, rule, json }) => {
            (run_inspect(json.json, path, &rule.rule()), json.json)
        }
        Some(Command::Verify {
            checkpoint_dir,
            out_dir,
            rule,
            json,
            hollow,
        }) => (
            run_verify(
                json.json,
                checkpoint_dir,
                out_dir.as_deref(),
                &rule.rule(),
                *hollow,
            ),
            json.json,
        ),
        Some(Command::Completions { shell }) => (print_completions(*shell), false),
        Some(Command::Man) => (print_man(), false),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code().clamp(1, 255);
            say(&format!("trtllm-prune: error: {}", e.chain()));
            // `verify` prints its verdicts before failing: one document.
            if json && !JSON_WRITTEN.load(Ordering::Relaxed) {
                let location = e.location();
                // The process fails either way: a closed stdout adds nothing.
                let _ = write_json(&report::error_json(
                    e.kind_name(),
                    &e.chain().to_string(),
                    code,
                    location.as_deref(),
                ));
            }
            ExitCode::from(code as u8)
        }
    }
}

/// Prints a usage error (exit 2) of one line of our own (and, under
/// `--json`, its error document).
fn usage_line(line: &str) -> ExitCode {
    say(&format!("trtllm-prune: error: {line}"));
    if raw_args().any(|a| a == "--json") {
        let _ = write_json(&report::error_json(
            "usage",
            line,
            i32::from(EXIT_USAGE),
            None,
        ));
    }
    ExitCode::from(EXIT_USAGE)
}

/// Prints a usage error (exit 2) as clap renders it, or, for a folder given
/// where a subcommand goes (`trtllm-prune FOLDER`), one line saying how to
/// give it; under `--json`, also as an error document on stdout.
fn usage_error(e: &clap::Error) -> ExitCode {
    let message = match bare_folder(e) {
        Some(folder) => {
            // As a shell word the user can paste back.
            let plain = folder
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-+,:@%=~".contains(c));
            let word = if plain {
                folder.clone()
            } else {
                format!("'{}'", folder.replace('\'', r"'\''"))
            };
            let line = format!(
                "trtllm-prune: error: '{folder}' is not a subcommand; to prune that folder: trtllm-prune --checkpoint_dir {word}"
            );
            say(&line);
            line
        }
        None => {
            let text = shown_lines(&e.render().to_string()).into_owned();
            let _ = write!(std::io::stderr(), "{}", painted(&text, "error:"));
            text
        }
    };
    if raw_args().any(|a| a == "--json") {
        let first = message.lines().next().unwrap_or_default();
        let first = first
            .strip_prefix("trtllm-prune: error: ")
            .or_else(|| first.strip_prefix("error: "))
            .unwrap_or(first);
        let _ = write_json(&report::error_json(
            "usage",
            first,
            i32::from(EXIT_USAGE),
            None,
        ));
    }
    ExitCode::from(EXIT_USAGE)
}

/// The arguments as given, up to a `--`: what is looked for before (or
/// without) a successful parse.
fn raw_args() -> impl Iterator<Item = String> {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .map(|a| a.to_string_lossy().into_owned())
}

/// The last `--color WHEN` or `--color=WHEN` of the raw arguments (an
/// invalid WHEN is reported by clap; until then it counts as `auto`).
fn color_arg() -> ColorChoice {
    let args: Vec<String> = raw_args().collect();
    let when = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.strip_prefix("--color") {
            Some(v) if v.starts_with('=') => Some(v[1..].to_string()),
            Some("") => args.get(i + 1).cloned(),
            _ => None,
        })
        .next_back();
    match when.as_deref() {
        Some("always") => ColorChoice::Always,
        Some("never") => ColorChoice::Never,
        _ => ColorChoice::Auto,
    }
}

/// The word given where a subcommand goes, when it looks like a folder (it
/// exists, or has a `/`): `trtllm-prune ./llama-7b`.
fn bare_folder(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    (word.contains('/') || std::path::Path::new(word).exists()).then(|| word.clone())
}

/// Whether `warning:` and `error:` are colored on stderr.
static COLOR: AtomicBool = AtomicBool::new(false);

/// `--color`: `auto` colors on a terminal unless `NO_COLOR` is set (and
/// not empty, as no-color.org says).
fn set_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    };
    COLOR.store(on, Ordering::Relaxed);
}

/// `text` with its first `word` (`warning:`, `error:`) in bold yellow or
/// red, when colors are on.
fn painted(text: &str, word: &str) -> String {
    if !COLOR.load(Ordering::Relaxed) {
        return text.to_string();
    }
    let code = if word == "warning:" { "1;33" } else { "1;31" };
    text.replacen(word, &format!("\x1b[{code}m{word}\x1b[0m"), 1)
}

/// A prune run: what dead runs left is dealt with, the plan is made and
/// shown, then (unless `--dry-run`, or already pruned) carried out and
/// summed up.
fn run_prune(cli: &Cli) -> Result<(), Error> {
    let Some(checkpoint_dir) = cli.checkpoint_dir.clone() else {
        // clap requires it without a subcommand; kept for completeness.
        return Err(Error::invalid(
            std::path::Path::new("."),
            "--checkpoint_dir is required",
        ));
    };
    let mut options = cli.options(checkpoint_dir);
    options.cancel = cancel(cli.output.quiet);
    let out = &cli.output;
    let prepared = prepare_after_recovery(&options, cli.dry_run)?;
    // --quiet means nothing at all on stderr when the run succeeds.
    if !out.quiet {
        for warning in &prepared.warnings {
            say(&format!("trtllm-prune: warning: {warning}"));
        }
    }
    if cli.dry_run {
        return if out.json.json {
            print_json(&report::run_json(&prepared, None))
        } else {
            print_stdout(&report::plan_table(&prepared, out.verbose > 0))
        };
    }
    // -v: the plan per file, -vv per tensor, before anything is written.
    if out.verbose > 0 {
        for line in report::plan_lines(&prepared, out.verbose > 1).lines() {
            say(line);
        }
    }
    if prepared.already_pruned() {
        return report_already_pruned(out, &prepared);
    }
    let progress = Bars::stderr(!out.quiet);
    let started = std::time::Instant::now();
    let result = trtllm_prune::execute(&prepared, &options, &progress);
    let elapsed = started.elapsed();
    progress.finish();
    report_done(out, &options, &prepared, &result?, elapsed)
}

/// The run's plan, made once what dead runs left in the folders it reads
/// and writes is dealt with (a dry run only reports that); what was found
/// leads its warnings.
fn prepare_after_recovery(
    options: &trtllm_prune::Options,
    dry_run: bool,
) -> Result<trtllm_prune::Prepared, Error> {
    // An in-place run killed mid-commit left a checkpoint that must be
    // finished before it can be read.
    let recovered = if dry_run {
        trtllm_prune::unfinished_commits(options)?
    } else {
        trtllm_prune::recover_folders(options)?
    };
    let mut prepared = trtllm_prune::prepare(options)?;
    prepared.warnings.splice(0..0, recovered);
    Ok(prepared)
}

/// Says that the output is already pruned and nothing was rewritten (and
/// prints the JSON report if asked).
fn report_already_pruned(out: &OutputArgs, prepared: &trtllm_prune::Prepared) -> Result<(), Error> {
    if out.json.json {
        print_json(&report::run_json(prepared, None))?;
    }
    if !out.quiet {
        say(&format!(
            "trtllm-prune: {} is already pruned with this rule (config.json says is_pruned, every tensor the rule prunes is empty): nothing was rewritten",
            shown_path(&prepared.out_dir)
        ));
    }
    Ok(())
}

/// After the commit: the run's warnings, the JSON report if asked, the
/// summary line with its timing, and the ranks the folder still lacks.
fn report_done(
    out: &OutputArgs,
    options: &trtllm_prune::Options,
    prepared: &trtllm_prune::Prepared,
    summary: &trtllm_prune::Summary,
    elapsed: std::time::Duration,
) -> Result<(), Error> {
    if !out.quiet {
        for line in summary.recovered.iter().chain(&summary.warnings) {
            say(&format!("trtllm-prune: warning: {line}"));
        }
    }
    if out.json.json {
        // The output is committed: a report that cannot be written must not
        // read as "nothing changed".
        write_json(&report::run_json(prepared, Some(summary))).map_err(|e| Error::AfterCommit {
            dir: summary.out_dir.clone(),
            problem: format!("cannot write the JSON report to stdout: {e}"),
        })?;
    }
    if !out.quiet {
        say(&format!(
            "{}{}",
            summary_line(summary),
            timing(elapsed, prepared.bytes_to_move())
        ));
        // The commit is done: a folder that cannot be listed now only
        // loses this line.
        if let Ok(Some((first, count))) = trtllm_prune::lacking_ranks(prepared, options) {
            say(&lacking_line(&summary.out_dir, prepared, &first, count));
        }
    }
    Ok(())
}

fn run_inspect(
    json: bool,
    path: &std::path::Path,
    rule: &trtllm_prune::PruneRule,
) -> Result<(), Error> {
    // Absolute, as every path in every document (a missing path stays as
    // given, for its error message).
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (files, notes) = trtllm_prune::inspect(&path, rule, &cancel(false))?;
    for note in &notes {
        say(&format!("trtllm-prune: warning: {note}"));
    }
    if json {
        print_json(&report::inspect_json(&path, &files, rule))
    } else {
        print_stdout(&report::inspect_table(&files))
    }
}

fn run_verify(
    json: bool,
    checkpoint_dir: &std::path::Path,
    out_dir: Option<&std::path::Path>,
    rule: &trtllm_prune::PruneRule,
    hollow: bool,
) -> Result<(), Error> {
    let progress = Bars::stderr(true);
    let verification = trtllm_prune::verify_existing(
        checkpoint_dir,
        out_dir,
        rule,
        hollow,
        &cancel(false),
        &progress,
    );
    progress.finish();
    let trtllm_prune::Verification {
        checkpoint_dir,
        out_dir,
        verdicts,
        recovered,
        ..
    } = verification?;
    for note in &recovered {
        say(&format!("trtllm-prune: warning: {note}"));
    }
    if json {
        print_json(&report::verify_json(&checkpoint_dir, &out_dir, &verdicts))?;
    } else {
        print_stdout(&report::verify_table(&verdicts))?;
    }
    match verdicts.iter().find(|v| !v.ok()) {
        Some(bad) => Err(Error::Mismatch {
            file: out_dir.join(&bad.name),
            problem: format!(
                "verification failed: {}",
                bad.problems
                    .first()
                    .map(String::as_str)
                    .unwrap_or("mismatch")
            ),
        }),
        None => Ok(()),
    }
}

/// What stops a run (SIGINT, SIGTERM, SIGHUP), telling the user when it
/// waits for a folder's lock (unless --quiet): a wait that says nothing
/// looks like a hang.
fn cancel(quiet: bool) -> Cancel {
    let cancel = Cancel::on_signals();
    if quiet {
        return cancel;
    }
    cancel.on_wait(|folder| {
        say(&format!(
            "trtllm-prune: {}: another trtllm-prune run is committing here, or another process holds its lock; waiting (Ctrl-C to stop)",
            shown_path(folder)
        ))
    })
}

/// One line on stderr, with every control escaped (`shown`): names in it
/// were escaped where the line was made, and anything missed still cannot
/// act on the terminal. Not `eprintln!`: it panics when stderr is a closed
/// pipe, which would turn a finished run into exit status 101.
///
/// The `warning:` or `error:` after the `trtllm-prune: ` prefix is colored
/// when colors are on (`--color`, `NO_COLOR`).
fn say(line: &str) {
    let mut line = shown_line(line).into_owned();
    for word in ["warning:", "error:"] {
        if line.starts_with(&format!("trtllm-prune: {word}")) {
            line = painted(&line, word);
        }
    }
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn print_completions(shell: Shell) -> Result<(), Error> {
    let mut command = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "trtllm-prune", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if matches!(shell, clap_complete::Shell::Bash) {
        // clap_complete names the subcommands' cases `trtllm__subcmd__prune__…`
        // for a binary with a hyphen, but sets `cmd` to `trtllm__prune__…`,
        // so nothing completes after a subcommand. Give both one spelling
        // (tests/features.rs asks bash itself).
        script = script.replace("trtllm__subcmd__prune", "trtllm__prune");
        script = bash_completes_files_after_inspect(&script);
    }
    write_stdout(script.as_bytes())
}

/// clap_complete's bash script offers only options after `inspect`, whose
/// argument is a path: there, a word that does not start with `-`
/// completes as a file or folder name.
fn bash_completes_files_after_inspect(script: &str) -> String {
    let start_marker = "        trtllm__prune__subcmd__inspect)\n";
    let Some(start) = script.find(start_marker) else {
        return script.to_string();
    };
    let end = script[start..]
        .find("\n            ;;\n")
        .map_or(script.len(), |e| start + e);
    let case = script[start..end]
        .replace(
            "if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then",
            "if [[ ${cur} == -* ]] ; then",
        )
        .replace(
            "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )\n            return 0",
            "            COMPREPLY=( $(compgen -f -- \"${cur}\") )\n            return 0",
        );
    format!("{}{case}{}", &script[..start], &script[end..])
}

fn print_man() -> Result<(), Error> {
    let render_error = |e| {
        Error::io(
            std::path::Path::new("<stdout>"),
            "cannot render the man page",
            e,
        )
    };
    // The release alone: the page is the same from commit to commit
    // (docs/trtllm-prune.1 is checked against it).
    let command = Cli::command().version(env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page).map_err(render_error)?;
    man.render_name_section(&mut page).map_err(render_error)?;
    man.render_synopsis_section(&mut page)
        .map_err(render_error)?;
    page.extend_from_slice(cli::man::MAN_DESCRIPTION.as_bytes());
    man.render_options_section(&mut page)
        .map_err(render_error)?;
    // Each subcommand under its own heading, here: there are no separate
    // pages for them to refer to.
    page.extend_from_slice(b".SH SUBCOMMANDS\n");
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        page.extend_from_slice(
            format!(
                ".SS trtllm\\-prune {name}\n{}\n",
                cli::args::roff_text(&about)
            )
            .as_bytes(),
        );
        let mut options = Vec::new();
        clap_mangen::Man::new(sub.clone().bin_name(format!("trtllm-prune {name}")))
            .render_options_section(&mut options)
            .map_err(render_error)?;
        let options = String::from_utf8_lossy(&options).replace(".SH OPTIONS\n", "");
        page.extend_from_slice(options.as_bytes());
    }
    page.extend_from_slice(cli::man::MAN_EXIT_STATUS.as_bytes());
    page.extend_from_slice(cli::man::MAN_ENVIRONMENT.as_bytes());
    page.extend_from_slice(cli::man::MAN_EXAMPLES.as_bytes());
    page.extend_from_slice(cli::man::MAN_SEE_ALSO.as_bytes());
    man.render_version_section(&mut page)
        .map_err(render_error)?;
    write_stdout(&page)
}

/// Writes `document` to stdout as it is serialized, through a buffer: a
/// document about a million tensors is never held whole in memory.
fn print_json(document: &impl serde::Serialize) -> Result<(), Error> {
    write_json(document).map_err(stdout_error)
}

/// Whether a JSON document went to stdout (the only one a run prints).
static JSON_WRITTEN: AtomicBool = AtomicBool::new(false);

fn write_json(document: &impl serde::Serialize) -> std::io::Result<()> {
    JSON_WRITTEN.store(true, Ordering::Relaxed);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    report::write_json(&mut out, document)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Lines of text on stdout, with every control but the newlines escaped
/// (as [`say`]).
fn print_stdout(text: &str) -> Result<(), Error> {
    write_stdout(shown_lines(text).as_bytes())
}

/// Writes to stdout.
fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// A failed write to stdout. A closed pipe (`| head`) is not worth a
/// message, but is still a failure: the process ends with status 1 (before
/// a commit, nothing changed; after one, see `run_prune`).
fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_FAILURE);
    }
    Error::io(std::path::Path::new("<stdout>"), "cannot write", e)
}

/// The line after a `--ranks` run whose output folder is still partial.
fn lacking_line(
    out_dir: &std::path::Path,
    prepared: &trtllm_prune::Prepared,
    first: &[u64],
    count: u64,
) -> String {
    let world_size = prepared.world_size().unwrap_or(0);
    let mut ranks: Vec<String> = first.iter().map(u64::to_string).collect();
    let more = count.saturating_sub(first.len() as u64);
    if more > 0 {
        ranks.push(format!("and {more} more"));
    }
    format!(
        "trtllm-prune: {} still lacks rank{} {} of world_size {world_size}: prune them with --ranks, then run verify",
        shown_path(out_dir),
        if count == 1 { "" } else { "s" },
        ranks.join(", "),
    )
}

/// The end of the summary line: how long the run took and the bytes it
/// moved per second (`; done in 2.41 s (1.20 GiB/s)`).
fn timing(elapsed: std::time::Duration, moved: u64) -> String {
    let secs = elapsed.as_secs_f64();
    let took = match secs {
        s if s < 10.0 => format!("{s:.2} s"),
        s if s < 60.0 => format!("{s:.1} s"),
        s => format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64),
    };
    let rate = (moved as f64 / secs.max(1e-3)) as u64;
    format!("; done in {took} ({}/s)", human_bytes(rate))
}

fn summary_line(s: &trtllm_prune::Summary) -> String {
    let unit = match s.layout {
        trtllm_prune::LayoutKind::TrtLlm => "rank",
        _ => "file",
    };
    let mut line = format!(
        "pruned {} {unit}{} into {}: {} tensors pruned, {} kept, {} -> {}",
        s.files,
        if s.files == 1 { "" } else { "s" },
        shown_path(&s.out_dir),
        s.tensors_pruned,
        s.tensors_kept,
        human_bytes(s.bytes_in),
        human_bytes(s.bytes_out),
    );
    if let Some(stored) = s.hollow_stored {
        line.push_str(&format!(" (hollow: {} stored)", human_bytes(stored)));
    }
    if s.bytes_shared > 0 {
        line.push_str(&format!(
            ", {} shared with the input",
            human_bytes(s.bytes_shared)
        ));
    }
    if s.extra_files > 0 {
        line.push_str(&format!(
            "; {} other file{} copied",
            s.extra_files,
            if s.extra_files == 1 { "" } else { "s" }
        ));
    }
    if let Some(verdicts) = &s.verified {
        line.push_str(&format!("; verified {} files", verdicts.len()));
    }
    line
}
