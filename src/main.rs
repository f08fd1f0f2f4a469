//! The `trtllm-prune` binary: parses arguments, sets up progress and
//! signals, prints results (stdout) and messages (stderr). Everything else
//! is the library.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command, Shell};
use trtllm_prune::error::EXIT_FAILURE;
use trtllm_prune::interrupt::{self, Cancel};
use trtllm_prune::progress::Progress;
use trtllm_prune::report::{self, human_bytes};
use trtllm_prune::shown::{shown_line, shown_lines, shown_path};
use trtllm_prune::{prune, Error};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version (exit 0).
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error (exit 2) quotes what was given, which may be a
        // file name: plain text, shown escaped as every other message.
        Err(e) => {
            let _ = write!(
                std::io::stderr(),
                "{}",
                shown_lines(&e.render().to_string())
            );
            return ExitCode::from(e.exit_code().clamp(1, 255) as u8);
        }
    };
    interrupt::install();
    let result = match &cli.command {
        None => run_prune(&cli),
        Some(Command::Inspect { path, rule }) => run_inspect(&cli, path, &rule.rule()),
        Some(Command::Verify {
            checkpoint_dir,
            out_dir,
            rule,
            hollow,
        }) => run_verify(
            &cli,
            checkpoint_dir,
            out_dir.as_deref(),
            &rule.rule(),
            *hollow,
        ),
        Some(Command::Completions { shell }) => print_completions(*shell),
        Some(Command::Man) => print_man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("trtllm-prune: error: {e}"));
            ExitCode::from(e.exit_code().clamp(1, 255) as u8)
        }
    }
}

fn run_prune(cli: &Cli) -> Result<(), Error> {
    let Some(checkpoint_dir) = cli.checkpoint_dir.clone() else {
        // clap requires it without a subcommand; kept for completeness.
        return Err(Error::invalid(
            std::path::Path::new("."),
            "--checkpoint_dir is required",
        ));
    };
    let mut options = cli.options(checkpoint_dir);
    options.cancel = cancel(cli);
    let out = &cli.output;
    // What dead runs left in the folders this run reads and writes is dealt
    // with first: an in-place run killed mid-commit left a checkpoint that
    // must be finished before it can be read. A dry run only reports it.
    let recovered = if cli.dry_run {
        prune::unfinished_commits(&options)?
    } else {
        prune::recover_folders(&options)?
    };
    let mut prepared = prune::prepare(&options)?;
    prepared.warnings.splice(0..0, recovered);
    // --quiet means nothing at all on stderr when the run succeeds.
    if !out.quiet {
        for warning in &prepared.warnings {
            say(&format!("trtllm-prune: warning: {warning}"));
        }
    }
    if cli.dry_run {
        return if out.json {
            print_json(&report::run_json(&prepared, None))
        } else {
            print_stdout(&report::plan_table(&prepared, out.verbose))
        };
    }
    let progress = Progress::stderr(!out.quiet);
    let result = prune::execute(&prepared, &options, &progress);
    progress.finish();
    let summary = result?;
    if !out.quiet {
        for line in summary.recovered.iter().chain(&summary.warnings) {
            say(&format!("trtllm-prune: warning: {line}"));
        }
    }
    if out.json {
        // The output is committed: a report that cannot be written must not
        // read as "nothing changed".
        write_json(&report::run_json(&prepared, Some(&summary))).map_err(|e| {
            Error::AfterCommit {
                dir: summary.out_dir.clone(),
                problem: format!("cannot write the JSON report to stdout: {e}"),
            }
        })?;
    }
    if !out.quiet {
        say(&summary_line(&summary));
    }
    Ok(())
}

fn run_inspect(
    cli: &Cli,
    path: &std::path::Path,
    rule: &trtllm_prune::rule::PruneRule,
) -> Result<(), Error> {
    // Absolute, as every path in every document (a missing path stays as
    // given, for its error message).
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (files, notes) = trtllm_prune::inspect::inspect(&path, rule, &cancel(cli))?;
    for note in &notes {
        say(&format!("trtllm-prune: warning: {note}"));
    }
    if cli.output.json {
        print_json(&report::inspect_json(&path, &files, rule))
    } else {
        print_stdout(&report::inspect_table(&files))
    }
}

fn run_verify(
    cli: &Cli,
    checkpoint_dir: &std::path::Path,
    out_dir: Option<&std::path::Path>,
    rule: &trtllm_prune::rule::PruneRule,
    hollow: bool,
) -> Result<(), Error> {
    let trtllm_prune::verify::Verification {
        checkpoint_dir,
        out_dir,
        verdicts,
        recovered,
    } = trtllm_prune::verify::verify_existing(checkpoint_dir, out_dir, rule, hollow, &cancel(cli))?;
    for note in &recovered {
        say(&format!("trtllm-prune: warning: {note}"));
    }
    if cli.output.json {
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
fn cancel(cli: &Cli) -> Cancel {
    let cancel = Cancel::on_signals();
    if cli.output.quiet {
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
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{}", shown_line(line));
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
    }
    write_stdout(script.as_bytes())
}

fn print_man() -> Result<(), Error> {
    let render_error = |e| {
        Error::io(
            std::path::Path::new("<stdout>"),
            "cannot render the man page",
            e,
        )
    };
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page).map_err(render_error)?;
    man.render_name_section(&mut page).map_err(render_error)?;
    man.render_synopsis_section(&mut page)
        .map_err(render_error)?;
    page.extend_from_slice(cli::MAN_DESCRIPTION.as_bytes());
    man.render_options_section(&mut page)
        .map_err(render_error)?;
    // Each subcommand under its own heading, here: there are no separate
    // pages for them to refer to.
    page.extend_from_slice(b".SH SUBCOMMANDS\n");
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        page.extend_from_slice(
            format!(".SS trtllm\\-prune {name}\n{}\n", cli::roff_text(&about)).as_bytes(),
        );
        let mut options = Vec::new();
        clap_mangen::Man::new(sub.clone().bin_name(format!("trtllm-prune {name}")))
            .render_options_section(&mut options)
            .map_err(render_error)?;
        let options = String::from_utf8_lossy(&options).replace(".SH OPTIONS\n", "");
        page.extend_from_slice(options.as_bytes());
    }
    page.extend_from_slice(cli::MAN_EXIT_STATUS.as_bytes());
    page.extend_from_slice(cli::MAN_EXAMPLES.as_bytes());
    man.render_version_section(&mut page)
        .map_err(render_error)?;
    write_stdout(&page)
}

/// Writes `document` to stdout as it is serialized, through a buffer: a
/// document about a million tensors is never held whole in memory.
fn print_json(document: &impl serde::Serialize) -> Result<(), Error> {
    write_json(document).map_err(stdout_error)
}

fn write_json(document: &impl serde::Serialize) -> std::io::Result<()> {
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

fn summary_line(s: &prune::Summary) -> String {
    let unit = match s.layout {
        prune::LayoutKind::TrtLlm => "rank",
        prune::LayoutKind::Safetensors => "file",
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
