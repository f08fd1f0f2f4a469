//! The `trtllm-prune` binary: parses arguments, sets up progress and
//! signals, prints the summary or the error. Everything else is the library.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use trtllm_prune::progress::Progress;
use trtllm_prune::{interrupt, prune, Error};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Prints help/version (exit 0) or the usage error (exit 2).
        Err(e) => e.exit(),
    };
    interrupt::install();
    let progress = Progress::stderr(!cli.quiet);
    let options = cli.options();
    let result = prune::prepare(&options).and_then(|prepared| {
        // --quiet means nothing at all on stderr when the run succeeds.
        if !cli.quiet {
            for warning in &prepared.warnings {
                progress.println(&format!("trtllm-prune: warning: {warning}"));
            }
        }
        prune::execute(&prepared, &options, &progress)
    });
    progress.finish();
    match result {
        Ok(summary) => {
            if !cli.quiet {
                // Not eprintln!: it panics when stderr is a closed pipe,
                // which would turn a finished run into exit status 101.
                let _ = writeln!(std::io::stderr(), "{}", summary_line(&summary));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "trtllm-prune: error: {e}");
    ExitCode::from(e.exit_code().clamp(1, 255) as u8)
}

fn summary_line(s: &prune::Summary) -> String {
    let mut line = format!(
        "pruned {} rank{} into {}: {} tensors pruned, {} kept, {} -> {}",
        s.ranks,
        if s.ranks == 1 { "" } else { "s" },
        s.out_dir.display(),
        s.tensors_pruned,
        s.tensors_kept,
        human_bytes(s.bytes_in),
        human_bytes(s.bytes_out),
    );
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
    line
}

fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}
