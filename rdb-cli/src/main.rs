//! `rdbkit`: parses the command line, sets up the thread pool and the interrupt handler,
//! runs the command and maps its outcome to an exit code. Everything else is in `cli/`
//! (arguments, inputs, progress) and in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use rdb_cli::Failure;

use cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap quotes unexpected arguments, e.g. a SAS URL given without --sas-url.
        Err(e) if e.use_stderr() => {
            eprint!("{}", rdb_cli::azure::sas::redact(&e.render().to_string()));
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
        Err(e) => e.exit(),
    };
    if let Err(e) = rdb_cli::output::clean_up_when_interrupted() {
        eprintln!("rdbkit: warning: no interrupt handler ({e}): Ctrl-C may leave a .tmp file");
    }
    // As rayon counts them by default: RAYON_NUM_THREADS, else one per core.
    let threads = cli
        .threads
        .or_else(|| {
            let n = std::env::var("RAYON_NUM_THREADS")
                .ok()?
                .parse::<usize>()
                .ok()?;
            (n > 0).then_some(n)
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, cli::MAX_THREADS);
    let mut pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    // This thread runs the pipelines' serial stages and joins the batches: as a worker of
    // the pool it does so without waking another thread and sleeping for every batch.
    // Not with one thread, where it would be the only worker and a job handed over from
    // another thread would wait for it forever.
    if threads > 1 {
        pool = pool.use_current_thread();
    }
    if let Err(e) = pool.build_global() {
        eprintln!("rdbkit: error: --threads {threads}: {e}");
        return ExitCode::from(2);
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`rdbkit export ... | head`) is not an error.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // The command has printed its verdict already.
        Err(Failure::Verdict(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rdbkit: error: {e}");
            if matches!(e, Failure::Data(_)) && cli::input::any_decompressed() {
                eprintln!("rdbkit: note: byte offsets count in the decompressed data");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
