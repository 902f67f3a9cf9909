//! `--format jsonl`: one JSON object per line, in file order. The schema is
//! `docs/export-jsonl.md`.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use rdb_parser::{Element, Entry, Function, Item, Stream, Value};

use super::{ExportFormat, FormatSpec, Job, Sink, Summary};
use crate::json;
use crate::Failure;

pub const SPEC: FormatSpec = FormatSpec {
    name: "jsonl",
    help: "One JSON object per line, binary-safe",
    for_target: false,
    run,
};

fn run(job: &mut Job<'_>) -> Result<Summary, Failure> {
    super::run(&Jsonl, job)
}

/// The JSON Lines format: a worker formats a key's line whole; the writing thread writes
/// the header line (gathering the AUX fields before the first other item), the other
/// items' lines, and a huge value's line piece by piece.
struct Jsonl;

#[derive(Default)]
struct State {
    /// The line being written by the writing thread.
    line: Vec<u8>,
    header: Option<Header>,
    /// The header line is written (it ends at the first item that is not AUX).
    header_done: bool,
}

impl ExportFormat for Jsonl {
    /// The key's line, with its newline.
    type Key<'data> = Vec<u8>;
    type State = State;

    fn key<'data>(&self, entry: &Entry<'data>) -> Result<Option<Vec<u8>>, Failure> {
        // A huge value is formatted by the sink, written out piece by piece.
        if entry.raw_value.len() > super::IN_PIECES_ABOVE {
            return Ok(None);
        }
        let mut l = Vec::with_capacity(64 + entry.raw_value.len() * 2);
        let mut line = Line::worker(&mut l);
        key_into(&mut line, entry).map_err(|e| e.in_key(entry.db, &entry.key))?;
        if line.overflow {
            // Small in the file, huge formatted (LZF, a stream node's shared fields):
            // the sink writes it in pieces instead.
            return Ok(None);
        }
        l.push(b'\n');
        Ok(Some(l))
    }

    fn item<'data>(
        &self,
        st: &mut State,
        item: Item<'data>,
        formatted: Option<Vec<u8>>,
        out: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        // A key line formatted by a worker goes straight out once the header is written
        // (it ends at the first item that is not AUX, such as this key).
        if let (Item::Key(_), Some(formatted)) = (&item, &formatted) {
            if st.header_done {
                out.record(formatted)?;
                out.summary.keys += 1;
                return Ok(());
            }
        }
        // AUX fields before anything else fold into the header line; a name that is not
        // UTF-8 gets its own `aux` line, where it stays binary-safe.
        if let (Item::Aux(aux), Some(h)) = (&item, st.header.as_mut()) {
            let utf8 = std::str::from_utf8(&aux.key).is_ok();
            if !st.header_done && utf8 && h.names.insert(aux.key.to_vec()) {
                h.aux.push((aux.key.to_vec(), aux.value.to_vec()));
                return Ok(());
            }
        }
        if let Item::Header(version) = &item {
            st.header = Some(Header {
                magic: version.magic.as_str(),
                number: version.number,
                aux: Vec::new(),
                names: HashSet::new(),
            });
            return Ok(());
        }
        if !st.header_done {
            st.header_done = true;
            if let Some(h) = &st.header {
                h.write(&mut st.line);
                end_line(out, &mut st.line)?;
            }
        }
        let line = &mut st.line;
        match item {
            Item::Eof(_) | Item::Header(_) | Item::SelectDb(_) | Item::ResizeDb { .. } => {
                return Ok(())
            }
            Item::Aux(aux) => {
                line.extend_from_slice(b"{\"kind\":\"aux\",\"key\":");
                json::bytes(line, &aux.key);
                line.extend_from_slice(b",\"value\":");
                json::bytes(line, &aux.value);
                line.push(b'}');
            }
            Item::ModuleAux(m) => write_module_aux(line, &m),
            Item::Function(f) => write_function(line, &f),
            Item::SlotInfo {
                slot,
                keys,
                expires,
            } => {
                line.extend_from_slice(b"{\"kind\":\"slot_info\",\"slot\":");
                json::int(line, slot);
                line.extend_from_slice(b",\"keys\":");
                json::int(line, keys);
                line.extend_from_slice(b",\"expires\":");
                json::int(line, expires);
                line.push(b'}');
            }
            Item::SlotImport(s) => write_slot_import(line, &s),
            Item::KeyMeta(m) => write_key_meta(line, &m),
            Item::Key(entry) => {
                match formatted {
                    // Already ends in its newline.
                    Some(formatted) => {
                        line.extend_from_slice(formatted.strip_suffix(b"\n").unwrap_or(&formatted))
                    }
                    None => {
                        let mut pieces = Line {
                            buf: line,
                            out: Some(out.writer()),
                            error: None,
                            overflow: false,
                            max: usize::MAX,
                        };
                        key_into(&mut pieces, &entry)
                            .map_err(|e| e.in_key(entry.db, &entry.key))?;
                        if let Some(e) = pieces.error {
                            return Err(Failure::Io(e));
                        }
                    }
                }
                out.summary.keys += 1;
            }
        }
        end_line(out, &mut st.line)
    }
}

/// Ends the line, writes it and starts the next.
fn end_line(out: &mut Sink<'_>, line: &mut Vec<u8>) -> Result<(), Failure> {
    line.push(b'\n');
    out.record(line)?;
    line.clear();
    Ok(())
}

fn write_module_aux(line: &mut Vec<u8>, m: &rdb_parser::ModuleAux<'_>) {
    line.extend_from_slice(b"{\"kind\":\"module_aux\",\"module\":");
    json::string(line, &m.id.name());
    line.extend_from_slice(b",\"encver\":");
    json::int(line, m.id.encver());
    line.extend_from_slice(b",\"when\":");
    json::string(
        line,
        if m.when == 1 {
            "before_keys"
        } else {
            "after_keys"
        },
    );
    line.extend_from_slice(b",\"raw\":");
    json::bytes(line, m.raw);
    line.push(b'}');
}

fn write_slot_import(line: &mut Vec<u8>, s: &rdb_parser::SlotImport<'_>) {
    line.extend_from_slice(b"{\"kind\":\"slot_import\",\"name\":");
    json::bytes(line, &s.name);
    line.extend_from_slice(b",\"ranges\":[");
    for (i, (a, b)) in s.ranges.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.push(b'[');
        json::int(line, *a);
        line.push(b',');
        json::int(line, *b);
        line.push(b']');
    }
    line.extend_from_slice(b"]}");
}

/// Redis 8.6 module key metadata for the next key: opaque, like module data.
fn write_key_meta(line: &mut Vec<u8>, m: &rdb_parser::KeyMetadata<'_>) {
    line.extend_from_slice(b"{\"kind\":\"key_meta\",\"classes\":[");
    for (i, c) in m.classes.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"spec\":");
        json::int(line, c.spec);
        line.extend_from_slice(b",\"raw\":");
        json::bytes(line, c.raw);
        line.push(b'}');
    }
    line.extend_from_slice(b"]}");
}

struct Header {
    magic: &'static str,
    number: u32,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    names: HashSet<Vec<u8>>,
}

impl Header {
    fn write(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(b"{\"kind\":\"header\",\"magic\":");
        json::string(line, self.magic);
        line.extend_from_slice(b",\"rdb_version\":");
        json::int(line, self.number);
        line.extend_from_slice(b",\"aux\":{");
        for (i, (k, v)) in self.aux.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            json::string(line, &String::from_utf8_lossy(k));
            line.push(b':');
            json::bytes(line, v);
        }
        line.extend_from_slice(b"}}");
    }
}

fn write_function(line: &mut Vec<u8>, f: &Function<'_>) {
    line.extend_from_slice(b"{\"kind\":\"function\"");
    match f {
        Function::Library { code } => {
            line.extend_from_slice(b",\"code\":");
            json::bytes(line, code);
        }
        Function::PreGa {
            name,
            engine,
            description,
            code,
        } => {
            line.extend_from_slice(b",\"name\":");
            json::bytes(line, name);
            line.extend_from_slice(b",\"engine\":");
            json::bytes(line, engine);
            line.extend_from_slice(b",\"description\":");
            match description {
                Some(d) => json::bytes(line, d),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b",\"code\":");
            json::bytes(line, code);
        }
    }
    line.push(b'}');
}

fn element(line: &mut Vec<u8>, e: &Element<'_>) {
    match e {
        Element::Bytes(b) => json::bytes(line, b),
        Element::Int(v) => {
            line.push(b'"');
            json::int(line, *v);
            line.push(b'"');
        }
    }
}

/// The size of those pieces.
const PIECE_BYTES: usize = 1 << 20;
/// The most a worker formats of one line before giving the key to the writing thread:
/// the stored size does not bound the formatted one.
const BUFFERED_MAX: usize = 8 << 20;

/// A line being formatted: a buffer and, for a huge value, where to write it out as it
/// grows (an I/O error is kept for the end of the line, and the buffer still drained).
///
/// What formats a value (here, or a [`super::ModuleType`]'s `json`) appends through the
/// `Vec` it dereferences to, with [`Line::bytes`] for strings of any size, and calls
/// [`Line::spill`] after each element of a collection: memory then stays at one piece
/// whatever the value's size, and a worker gives up early on a line too long to hold.
pub struct Line<'b, 'o> {
    buf: &'b mut Vec<u8>,
    out: Option<&'o mut dyn Write>,
    error: Option<std::io::Error>,
    /// A line without `out` grew past `max`: what it holds is incomplete.
    overflow: bool,
    max: usize,
}

impl std::fmt::Debug for Line<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("buffered", &self.buf.len())
            .field("in_pieces", &self.out.is_some())
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Line<'_, '_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        self.buf
    }
}

impl std::ops::DerefMut for Line<'_, '_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        self.buf
    }
}

impl<'b> Line<'b, '_> {
    fn buffered(buf: &'b mut Vec<u8>) -> Self {
        Line {
            buf,
            out: None,
            error: None,
            overflow: false,
            max: usize::MAX,
        }
    }

    /// A worker's line: given up past [`BUFFERED_MAX`] (see `overflow`).
    fn worker(buf: &'b mut Vec<u8>) -> Self {
        Line {
            max: BUFFERED_MAX,
            ..Line::buffered(buf)
        }
    }

    /// Writes the buffer out once it holds a piece (only when formatting in pieces);
    /// true when a worker's line gave up (the caller may stop early: what it appends
    /// after that is thrown away, and the writing thread formats the value again).
    #[inline]
    pub fn spill(&mut self) -> bool {
        if self.buf.len() >= PIECE_BYTES {
            self.drain();
            return self.capped(0);
        }
        self.overflow
    }

    /// Gives up on a buffered line that would pass `max` (see `overflow`).
    fn capped(&mut self, more: usize) -> bool {
        if self.out.is_none() && self.buf.len().saturating_add(more) > self.max {
            self.overflow = true;
            self.buf.clear();
        }
        self.overflow
    }

    #[cold]
    fn drain(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if self.error.is_none() {
                if let Err(e) = out.write_all(self.buf) {
                    self.error = Some(e);
                }
            }
            self.buf.clear();
        }
    }

    /// [`json::bytes`], in pieces when the line is written out as it grows.
    pub fn bytes(&mut self, b: &[u8]) {
        if self.capped(b.len()) {
            return;
        }
        match self.out.as_mut() {
            Some(out) if b.len() > PIECE_BYTES => {
                let error = &mut self.error;
                json::bytes_in_pieces(&mut *self.buf, b, PIECE_BYTES, |piece| {
                    if error.is_none() {
                        if let Err(e) = out.write_all(piece) {
                            *error = Some(e);
                        }
                    }
                    piece.clear();
                });
            }
            _ => json::bytes(&mut *self.buf, b),
        }
    }
}

/// Appends one `key` line (without the newline).
pub fn write_key(line: &mut Vec<u8>, entry: &Entry<'_>) -> Result<(), rdb_parser::Error> {
    key_into(&mut Line::buffered(line), entry)
}

fn key_into(line: &mut Line<'_, '_>, entry: &Entry<'_>) -> Result<(), rdb_parser::Error> {
    line.extend_from_slice(b"{\"kind\":\"key\",\"db\":");
    json::int(line, entry.db);
    line.extend_from_slice(b",\"key\":");
    line.bytes(&entry.key);
    line.extend_from_slice(b",\"type\":\"");
    line.extend_from_slice(entry.value.type_name().as_bytes());
    line.extend_from_slice(b"\",\"encoding\":\"");
    line.extend_from_slice(entry.value.encoding_name().as_bytes());
    line.extend_from_slice(b"\",\"expire_ms\":");
    json::opt_int(line, entry.expire_ms);
    line.extend_from_slice(b",\"idle_s\":");
    json::opt_int(line, entry.idle_s);
    line.extend_from_slice(b",\"freq\":");
    json::opt_int(line, entry.freq);
    line.extend_from_slice(b",\"value\":");
    value_into(line, &entry.value)?;
    line.push(b'}');
    Ok(())
}

/// Appends a value in the export's shape.
pub fn write_value(line: &mut Vec<u8>, value: &Value<'_>) -> Result<(), rdb_parser::Error> {
    value_into(&mut Line::buffered(line), value)
}

fn value_into(line: &mut Line<'_, '_>, value: &Value<'_>) -> Result<(), rdb_parser::Error> {
    match value {
        Value::String(s) => line.bytes(&s.to_bytes()?),
        Value::List(l) => elements(line, l.iter())?,
        Value::Set(s) => elements(line, s.iter())?,
        Value::ZSet(z) => {
            line.push(b'[');
            for (i, pair) in z.iter().enumerate() {
                let (member, score) = pair?;
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'[');
                element(line, &member);
                line.push(b',');
                json::score(line, score);
                line.push(b']');
                if line.spill() {
                    break;
                }
            }
            line.push(b']');
        }
        Value::Hash(h) => {
            line.push(b'[');
            for (i, field) in h.iter().enumerate() {
                let field = field?;
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'[');
                element(line, &field.field);
                line.push(b',');
                element(line, &field.value);
                if let Some(t) = field.expire_ms {
                    line.push(b',');
                    json::int(line, t);
                }
                line.push(b']');
                if line.spill() {
                    break;
                }
            }
            line.push(b']');
        }
        Value::Stream(s) => write_stream(line, s)?,
        Value::Module(m) => {
            if let Some(t) = super::module_type(m) {
                return (t.json)(line, m);
            }
            line.extend_from_slice(b"{\"module\":");
            json::string(line, &m.id.name());
            line.extend_from_slice(b",\"encver\":");
            json::int(line, m.id.encver());
            line.extend_from_slice(b",\"raw\":");
            line.bytes(m.raw);
            line.push(b'}');
        }
    }
    Ok(())
}

fn elements<'a>(
    line: &mut Line<'_, '_>,
    iter: impl Iterator<Item = Result<Element<'a>, rdb_parser::Error>>,
) -> Result<(), rdb_parser::Error> {
    line.push(b'[');
    for (i, e) in iter.enumerate() {
        if i > 0 {
            line.push(b',');
        }
        element(line, &e?);
        if line.spill() {
            break;
        }
    }
    line.push(b']');
    Ok(())
}

fn id(line: &mut Vec<u8>, id: rdb_parser::StreamId) {
    line.push(b'"');
    json::int(line, id.ms);
    line.push(b'-');
    json::int(line, id.seq);
    line.push(b'"');
}

fn opt_id(line: &mut Vec<u8>, v: Option<rdb_parser::StreamId>) {
    match v {
        Some(v) => id(line, v),
        None => line.extend_from_slice(b"null"),
    }
}

/// Redis 8.6 idempotent-producer state: the settings and counters `XINFO STREAM` shows
/// (the two `_tracked` counts derived from the stored producers), then the producers.
fn write_idmp(line: &mut Vec<u8>, m: &rdb_parser::Idmp<'_>) {
    line.extend_from_slice(b",\"idmp\":{\"duration\":");
    json::int(line, m.duration_s);
    line.extend_from_slice(b",\"max_size\":");
    json::int(line, m.max_entries);
    line.extend_from_slice(b",\"pids_tracked\":");
    json::int(line, m.producer_count());
    line.extend_from_slice(b",\"iids_tracked\":");
    json::int(line, m.iid_count());
    line.extend_from_slice(b",\"iids_added\":");
    json::int(line, m.iids_added);
    line.extend_from_slice(b",\"iids_duplicates\":");
    json::int(line, m.iids_duplicates);
    line.extend_from_slice(b",\"producers\":[");
    for (i, p) in m.producers().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"pid\":");
        json::bytes(line, &p.pid);
        line.extend_from_slice(b",\"entries\":[");
        for (j, e) in p.entries().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"iid\":");
            json::bytes(line, &e.iid);
            line.extend_from_slice(b",\"id\":");
            id(line, e.id);
            line.push(b'}');
        }
        line.extend_from_slice(b"]}");
    }
    line.extend_from_slice(b"]}");
}

fn write_stream(line: &mut Line<'_, '_>, s: &Stream<'_>) -> Result<(), rdb_parser::Error> {
    line.extend_from_slice(b"{\"length\":");
    json::int(line, s.length);
    line.extend_from_slice(b",\"last_id\":");
    id(line, s.last_id);
    line.extend_from_slice(b",\"first_id\":");
    opt_id(line, s.first_id);
    line.extend_from_slice(b",\"max_deleted_id\":");
    opt_id(line, s.max_deleted_id);
    line.extend_from_slice(b",\"entries_added\":");
    json::opt_int(line, s.entries_added);
    if let Some(idmp) = &s.idmp {
        write_idmp(line, idmp);
    }
    line.extend_from_slice(b",\"entries\":[");
    let mut entries = s.entries();
    let mut first = true;
    while let Some(entry) = entries.next_entry() {
        let entry = entry?;
        if !std::mem::take(&mut first) {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"id\":");
        id(line, entry.id);
        line.extend_from_slice(b",\"fields\":[");
        for (j, (f, v)) in entry.fields.iter().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.push(b'[');
            element(line, f);
            line.push(b',');
            element(line, v);
            line.push(b']');
        }
        line.extend_from_slice(b"]}");
        if line.spill() {
            break;
        }
    }
    line.extend_from_slice(b"],\"groups\":[");
    for (i, g) in s.groups().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"name\":");
        json::bytes(line, &g.name);
        line.extend_from_slice(b",\"last_id\":");
        id(line, g.last_id);
        line.extend_from_slice(b",\"entries_read\":");
        json::opt_int(line, g.entries_read.filter(|&n| n != u64::MAX));
        line.extend_from_slice(b",\"pending\":[");
        let owner: HashMap<rdb_parser::StreamId, std::borrow::Cow<'_, [u8]>> = g
            .consumers()
            .flat_map(|c| c.pending().map(move |id| (id, c.name.clone())))
            .collect();
        for (j, p) in g.pending().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"id\":");
            id(line, p.id);
            line.extend_from_slice(b",\"consumer\":");
            match owner.get(&p.id) {
                Some(name) => json::bytes(line, name),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b",\"delivery_time_ms\":");
            json::int(line, p.delivery_time_ms);
            line.extend_from_slice(b",\"delivery_count\":");
            json::int(line, p.delivery_count);
            line.push(b'}');
            if line.spill() {
                break;
            }
        }
        line.extend_from_slice(b"],\"consumers\":[");
        for (j, c) in g.consumers().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"name\":");
            json::bytes(line, &c.name);
            line.extend_from_slice(b",\"seen_time_ms\":");
            json::int(line, c.seen_time_ms);
            line.extend_from_slice(b",\"active_time_ms\":");
            json::opt_int(line, c.active_time_ms);
            line.extend_from_slice(b",\"pending\":[");
            for (k, p) in c.pending().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                id(line, p);
            }
            line.extend_from_slice(b"]}");
            if line.spill() {
                break;
            }
        }
        line.extend_from_slice(b"]}");
    }
    line.extend_from_slice(b"]}");
    Ok(())
}
