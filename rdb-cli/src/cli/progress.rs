//! Progress on long work: a bar on a terminal, a plain line every few seconds elsewhere
//! (CI logs, `nohup`), nothing with `--progress never`. Callers get a cheap `FnMut(offset)`
//! to call from the hot loop.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal for inputs of 64 MiB and more; elsewhere a plain line every
    /// 10 seconds, so short runs print nothing.
    #[default]
    Auto,
    /// A bar on a terminal, else plain lines, whatever the input's size.
    Always,
    /// Nothing.
    Never,
}

/// Where progress goes for one command; dropping it clears the bar.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: Option<Lines>,
    /// When [`Progress::set`] prints its next plain line, in ms after `lines.started`.
    due_ms: AtomicU64,
}

#[derive(Debug, Clone)]
struct Lines {
    total: u64,
    every: Duration,
    started: Instant,
}

/// Offsets between two looks at the clock or the bar: the hot loop stays cheap.
const STEP: u64 = 4 << 20;

impl Progress {
    pub fn new(total: u64, mode: ProgressMode) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let none = Progress {
            bar: None,
            lines: None,
            due_ms: AtomicU64::new(0),
        };
        match mode {
            ProgressMode::Never => none,
            ProgressMode::Auto if terminal && total < 64 << 20 => none,
            _ if terminal => Progress {
                bar: Some(bar(total)),
                lines: None,
                due_ms: AtomicU64::new(0),
            },
            _ => {
                let every = if mode == ProgressMode::Always {
                    Duration::from_secs(2)
                } else {
                    Duration::from_secs(10)
                };
                Progress {
                    bar: None,
                    lines: Some(Lines {
                        total,
                        every,
                        started: Instant::now(),
                    }),
                    due_ms: AtomicU64::new(millis(every)),
                }
            }
        }
    }

    /// The callback for `offset` (bytes of input done so far).
    pub fn tick(&self) -> impl FnMut(u64) + Send + '_ {
        let mut next = 0u64;
        let mut next_line = self.lines.as_ref().map(|l| l.started + l.every);
        move |offset| {
            if offset < next {
                return;
            }
            next = offset.saturating_add(STEP);
            if let Some(bar) = &self.bar {
                bar.set_position(offset);
            }
            if let (Some(lines), Some(when)) = (&self.lines, next_line.as_mut()) {
                let now = Instant::now();
                if now >= *when {
                    *when = now + lines.every;
                    eprintln!("{}", lines.describe(offset, now));
                }
            }
        }
    }

    /// The position for callers on several threads (one call per block of work, not per
    /// byte): moves the bar, or prints a plain line when one is due.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if let Some(lines) = &self.lines {
            let now = Instant::now();
            let at = millis(now.duration_since(lines.started));
            let due = self.due_ms.load(Ordering::Relaxed);
            let every = millis(lines.every);
            // Whoever moves `due_ms` on prints the line; the others skip it.
            if at >= due
                && self
                    .due_ms
                    .compare_exchange(
                        due,
                        at.saturating_add(every),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                eprintln!("{}", lines.describe(done, now));
            }
        }
    }

    /// Names the work on the bar (e.g. the file), before it.
    pub fn message(&self, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        }
    }

    /// Prints `line` on standard error without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Lines {
    fn describe(&self, done: u64, now: Instant) -> String {
        let secs = now.duration_since(self.started).as_secs_f64().max(0.001);
        let mb = |b: u64| b as f64 / 1e6;
        let rate = mb(done) / secs;
        let percent = if self.total > 0 {
            format!(" ({:.0}%)", 100.0 * done as f64 / self.total as f64)
        } else {
            String::new()
        };
        // A total of 0 is unknown (a diskless `fetch` is not told its length).
        if self.total == 0 {
            return format!("rdbkit: {:.0} MB, {rate:.0} MB/s, {secs:.0} s", mb(done));
        }
        format!(
            "rdbkit: {:.0} of {:.0} MB{percent}, {rate:.0} MB/s, {secs:.0} s",
            mb(done),
            mb(self.total)
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg}{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_how_far_and_how_fast() {
        let lines = Lines {
            total: 200_000_000,
            every: Duration::from_secs(10),
            started: Instant::now(),
        };
        let text = lines.describe(50_000_000, lines.started + Duration::from_secs(5));
        assert_eq!(text, "rdbkit: 50 of 200 MB (25%), 10 MB/s, 5 s");
    }
}
