//! `--format restore`: for each key one `RESTORE` with the DUMP payload the target
//! loads, for `redis-cli --pipe`.

use rdb_parser::{Entry, Item};
use rdb_writer::convert::{dump_body, ConvertError, DumpBody};

use super::resp::{non_key_item, CommandsState};
use super::{ExportFormat, FormatSpec, Job, Sink, Summary, TargetOptions};
use crate::Failure;

pub const SPEC: FormatSpec = FormatSpec {
    name: "restore",
    help:
        "RESTORE commands with DUMP payloads for --target / --rdb-version, for `redis-cli --pipe`",
    for_target: true,
    run,
};

fn run(job: &mut Job<'_>) -> Result<Summary, Failure> {
    let o = job.target_options(SPEC.name)?.clone();
    let source = job.parser.parse(job.data)?.version();
    super::run(&Restore { o, source }, job)
}

struct Restore {
    o: TargetOptions,
    /// The snapshot's format, which the payloads are converted from.
    source: rdb_parser::format::Version,
}

/// One key's RESTORE, built on any core.
enum KeyRestore<'e> {
    /// `--modules drop` and the like left the key out.
    LeftOut,
    Command {
        head: Vec<u8>,
        /// Written between `head` and `tail` without another copy.
        payload: DumpBody<'e>,
        tail: Vec<u8>,
    },
}

impl Restore {
    fn restore<'data>(&self, entry: &Entry<'data>) -> Result<KeyRestore<'data>, Failure> {
        let payload = match dump_body(entry, self.source, &self.o.convert) {
            Ok(Some(payload)) => payload,
            Ok(None) => return Ok(KeyRestore::LeftOut),
            Err(ConvertError::Parse(p)) => return Err(Failure::Data(p)),
            Err(ConvertError::Io(io)) => return Err(Failure::Io(io)),
            Err(other) => return Err(crate::convert::failure(other)),
        };
        let mut head = Vec::new();
        let mut tail = Vec::new();
        crate::resp::restore_head(&mut head, entry, payload.len(), self.o.replace);
        crate::resp::restore_tail(&mut tail, entry, self.o.replace);
        Ok(KeyRestore::Command {
            head,
            payload,
            tail,
        })
    }
}

impl ExportFormat for Restore {
    type Key<'data> = KeyRestore<'data>;
    type State = CommandsState;

    fn key<'data>(&self, entry: &Entry<'data>) -> Result<Option<KeyRestore<'data>>, Failure> {
        self.restore(entry).map(Some)
    }

    fn item<'data>(
        &self,
        st: &mut CommandsState,
        item: Item<'data>,
        k: Option<KeyRestore<'data>>,
        out: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let entry = match item {
            Item::Key(entry) => entry,
            other => return non_key_item(&self.o, &other, out),
        };
        let k = match k {
            Some(k) => k,
            None => self.restore(&entry)?,
        };
        let KeyRestore::Command {
            head,
            payload,
            tail,
        } = k
        else {
            out.summary.keys_left_out += 1;
            return Ok(());
        };
        st.select(entry.db, out)?;
        out.summary.keys += 1;
        out.summary.records += 1;
        out.write(&head)?;
        out.write(&[payload.type_id])?;
        out.write(&payload.value)?;
        out.write(&payload.trailer)?;
        out.write(&tail)
    }
}
