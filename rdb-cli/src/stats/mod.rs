//! `rdbkit stats`: an assessment of a snapshot from one streaming pass with flat memory:
//! keys per db/type/encoding, serialized and estimated in-memory sizes, the biggest keys,
//! key prefixes, TTLs, hash slots and shard balance, modules, functions and streams.
//! Output: a terminal report, `--json` (docs/stats-json.md) or one self-contained
//! `--html` page.

pub mod collect;
pub mod html;
pub mod json;
pub mod memory;
pub mod prefixes;
pub mod sections;
pub mod text;
pub mod top;
pub mod whole;

use std::io::Write;

use rdb_parser::ParserBuilder;

pub use collect::{collect, Options, Stats};
pub use whole::{PartStats, Report};

use crate::parts::Part;
use crate::Failure;

/// The deepest prefix breakdown `--depth` accepts.
pub const MAX_DEPTH: usize = 32;

impl Options {
    /// Refuses what the collection cannot do: no shards or more than there are slots, a
    /// breakdown deeper than [`MAX_DEPTH`], a depth without separators, or a separator
    /// byte that is not ASCII (it would cut keys in the middle of a character).
    pub fn check(&self) -> Result<(), Failure> {
        if self.shards == 0 || self.shards > rdb_writer::slot::SLOTS {
            return Err(Failure::Usage(format!(
                "--shards {}: give between 1 and 16384",
                self.shards
            )));
        }
        if self.depth > MAX_DEPTH {
            // The breakdown is walked recursively; a key of 100k separators at an
            // unbounded depth overflowed the stack.
            return Err(Failure::Usage(format!(
                "--depth {}: give between 0 and {MAX_DEPTH}",
                self.depth
            )));
        }
        if self.separators.is_empty() && self.depth > 0 {
            return Err(Failure::Usage(
                "--separators is empty: give at least one byte, or --depth 0".into(),
            ));
        }
        if let Some(b) = self.separators.iter().find(|b| !b.is_ascii()) {
            return Err(Failure::Usage(format!(
                "--separators: byte 0x{b:02x} is not ASCII; give single-byte separators"
            )));
        }
        Ok(())
    }
}

/// One snapshot of a run: the part it is (its path, and its manifest's slot ranges) and
/// its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub part: &'a Part,
    pub data: &'a [u8],
}

/// Collects the statistics of the sources and writes the report(s) `options` asks for:
/// text or JSON on `out`, and the HTML page when `options.html` names one. Several
/// sources are reported as one whole and part by part.
pub fn run(
    sources: &[Source<'_>],
    parser: &ParserBuilder,
    options: &Options,
    out: &mut dyn Write,
    progress: impl FnMut(u64) + Send,
) -> Result<Report, Failure> {
    options.check()?;
    if sources.is_empty() {
        return Err(Failure::Usage("no snapshot to read".into()));
    }
    let report = whole::collect_all(sources, parser, options, progress)?;
    if let Some(path) = &options.html {
        let mut file = crate::output::AtomicFile::create(path).map_err(|e| io_at(e, path))?;
        html::write(&report, &title(sources), &mut file).map_err(|e| io_at(e, path))?;
        file.commit().map_err(|e| io_at(e, path))?;
    }
    if options.json {
        let text =
            serde_json::to_string_pretty(&report.to_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(out, "{text}").map_err(Failure::Io)?;
    } else {
        text::write_report(&report, out).map_err(Failure::Io)?;
    }
    out.flush().map_err(Failure::Io)?;
    Ok(report)
}

/// The page's title: the file's name, or the first's and how many more.
fn title(sources: &[Source<'_>]) -> String {
    let name = |s: &Source<'_>| {
        s.part
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot".into())
    };
    match sources {
        [] => "snapshot".into(),
        [one] => name(one),
        [first, rest @ ..] => format!("{} and {} more", name(first), rest.len()),
    }
}

fn io_at(e: std::io::Error, path: &std::path::Path) -> Failure {
    Failure::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}
