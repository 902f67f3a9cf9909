//! `--format restore`: for each key one `RESTORE` with the DUMP payload the target
//! loads, for `redis-cli --pipe`.
//!
//! A payload is what `DUMP` returns on the target: on Redis 8.6 (RDB 13) the key's module
//! metadata (`KEY_META`, opcode 243, its classes as stored) comes before the type byte and
//! the CRC covers it too, as in `createDumpPayload`; RESTORE reads it back
//! (`rdbResolveKeyType`). Older targets have no key metadata: it is left out and counted.

use rdb_parser::format::{opcode, type_id};
use rdb_parser::{Entry, Item, Value};
use rdb_writer::convert::{dump_body, ConvertError, DumpBody};

use super::resp::{idmp_state, non_key_item, CommandsState};
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
        /// A stream written without its IDMP state (`--stream-idmp drop`).
        idmp_dropped: bool,
    },
}

/// What the writing thread keeps between items.
#[derive(Debug, Default)]
struct State {
    commands: CommandsState,
    /// The KEY_META record (after its opcode) that belongs to the next key.
    key_meta: Option<Vec<u8>>,
}

impl Restore {
    fn restore<'data>(&self, entry: &Entry<'data>) -> Result<KeyRestore<'data>, Failure> {
        let payload = match dump_body(entry, self.source, &self.o.convert) {
            Ok(Some(payload)) => payload,
            Ok(None) => return Ok(KeyRestore::LeftOut),
            Err(ConvertError::Parse(p)) => return Err(Failure::Data(p)),
            Err(ConvertError::Io(io)) => return Err(Failure::Io(io)),
            Err(other) => {
                return Err(crate::convert::failure(
                    other,
                    crate::convert::HintFor::Export,
                ))
            }
        };
        // A stream keeps its IDMP state only in a type-26 payload; `dump_body` refused any
        // other unless `--stream-idmp drop` allowed it.
        let idmp_dropped = match &entry.value {
            Value::Stream(s) => {
                s.idmp.as_ref().and_then(idmp_state).is_some()
                    && payload.type_id != type_id::STREAM_LISTPACKS_4
            }
            _ => false,
        };
        let mut head = Vec::new();
        let mut tail = Vec::new();
        crate::resp::restore_head(&mut head, entry, payload.len(), self.o.replace);
        crate::resp::restore_tail(&mut tail, entry, self.o.replace);
        Ok(KeyRestore::Command {
            head,
            payload,
            tail,
            idmp_dropped,
        })
    }
}

impl ExportFormat for Restore {
    type Key<'data> = KeyRestore<'data>;
    type State = State;

    fn key<'data>(&self, entry: &Entry<'data>) -> Result<Option<KeyRestore<'data>>, Failure> {
        self.restore(entry).map(Some)
    }

    fn item<'data>(
        &self,
        st: &mut State,
        item: Item<'data>,
        k: Option<KeyRestore<'data>>,
        out: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let entry = match item {
            Item::Key(entry) => entry,
            Item::KeyMeta(m) if self.o.convert.target.version.has_key_meta() => {
                st.key_meta = Some(m.raw.to_vec());
                return Ok(());
            }
            Item::KeyMeta(_) => {
                out.summary.key_meta_left_out += 1;
                return Ok(());
            }
            other => return non_key_item(&self.o, &other, out),
        };
        // Goes with this key, written or left out.
        let key_meta = st.key_meta.take();
        let k = match k {
            Some(k) => k,
            None => self.restore(&entry)?,
        };
        let KeyRestore::Command {
            mut head,
            mut payload,
            tail,
            idmp_dropped,
        } = k
        else {
            out.summary.keys_left_out += 1;
            return Ok(());
        };
        st.commands.select(entry.db, out)?;
        out.summary.keys += 1;
        out.summary.records += 1;
        out.summary.streams_idmp_left_out += u64::from(idmp_dropped);
        let prefix = match key_meta {
            Some(meta) => {
                let prefix = [&[opcode::KEY_META][..], &meta].concat();
                payload.trailer = with_prefix(&payload, &prefix);
                head.clear();
                let len = prefix.len() + payload.len();
                crate::resp::restore_head(&mut head, &entry, len, self.o.replace);
                prefix
            }
            None => Vec::new(),
        };
        out.write(&head)?;
        out.write(&prefix)?;
        out.write(&[payload.type_id])?;
        out.write(&payload.value)?;
        out.write(&payload.trailer)?;
        out.write(&tail)
    }
}

/// The trailer of `payload` once `prefix` goes before its type byte: the same version, the
/// CRC64 of the prefix and everything after it.
fn with_prefix(payload: &DumpBody<'_>, prefix: &[u8]) -> [u8; 10] {
    let mut trailer = payload.trailer;
    let (version, crc) = trailer.split_at_mut(2);
    let old = u64::from_le_bytes(crc.try_into().unwrap_or([0; 8]));
    // The old CRC covers the type byte, the value and the version.
    let covered = 1 + payload.value.len() as u64 + version.len() as u64;
    let new = rdb_parser::crc64_combine(rdb_parser::crc64(0, prefix), old, covered);
    crc.copy_from_slice(&new.to_le_bytes());
    trailer
}
