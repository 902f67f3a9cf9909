//! The in-order half of a conversion pass: each item, with the outcome the cores computed
//! for it, is written to the outputs (or dropped, with its loss reported) in file order.

use std::collections::HashSet;
use std::io::{self, Write};

use rdb_parser::{Entry, Function, Item, ModuleAux};
use rdb_pipeline::{self as pipeline, Spanned};

use super::{
    pieces, unrepresentable, write_key_opcodes, ConflictPolicy, ConvertError, ConvertOptions,
    Encoded, FunctionPolicy, InputRole, KeyOutcome, KeyStep, Loss, LossKind, Outputs, SpanRuns,
};
use crate::profile::is_valkey;
use crate::slot::SlotMap;

/// What the writing thread holds while it takes one input's items in order.
pub(super) struct InputSink<'s, 'data, W: Write> {
    pub(super) opts: &'s ConvertOptions,
    pub(super) slots: Option<&'s SlotMap>,
    pub(super) role: &'s InputRole<'s>,
    pub(super) eof_seen: &'s pipeline::EofSeen,
    pub(super) outputs: &'s mut Outputs<W>,
    pub(super) on_loss: &'s mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    pub(super) progress: &'s mut dyn FnMut(u64),
    /// Bytes copied as stored are mostly adjacent in the input: each output gathers a
    /// run of them and writes it in one piece (no copy through its buffer; one CRC call).
    pub(super) runs: SpanRuns<'data>,
    /// A Redis 8.6 KEY_META waiting for its key: written right before that key's type
    /// byte (where a loader expects it) if the key is written at all.
    pub(super) pending_meta: Option<&'data [u8]>,
    /// The database of the keys read now.
    pub(super) db: u64,
    /// SELECTDB, RESIZEDB and slot hints are copied as stored (see [`InputRole`]); filters
    /// may empty a database, so they turn this off.
    pub(super) as_stored: bool,
}

impl<'data, W: Write> InputSink<'_, 'data, W> {
    /// Takes the next item of the input with its outcome.
    pub(super) fn item(
        &mut self,
        s: Spanned<'data>,
        outcome: Option<KeyOutcome>,
    ) -> Result<(), ConvertError> {
        let (span, start) = (s.span, s.offset as usize);
        let target = &self.opts.target;
        match s.item {
            Item::Header(_) => {}
            Item::Eof(eof) => self.eof_seen.set(eof),
            Item::Aux(_) | Item::ModuleAux(_) if !self.role.file_level => {}
            Item::Aux(_) => self.copy_to_all(span)?,
            Item::ModuleAux(m) => self.module_aux(&m, span, start)?,
            Item::Function(f) => self.function(&f, span, start)?,
            Item::SelectDb(n) => self.select_db(n, span, start)?,
            Item::ResizeDb { .. } => {
                // Size hints stay true only while databases stay as they are.
                if self.as_stored {
                    self.copy_to_all(span)?;
                }
            }
            Item::SlotInfo { .. } => {
                if self.as_stored && !is_valkey(target.version) && target.version.number >= 12 {
                    self.copy_to_all(span)?;
                } else {
                    self.outputs.summary.hints_dropped += 1;
                }
            }
            Item::SlotImport(_) => {
                if self.as_stored && is_valkey(target.version) {
                    self.copy_to_all(span)?;
                } else {
                    self.outputs.summary.hints_dropped += 1;
                }
            }
            Item::KeyMeta(_) if target.version.has_key_meta() => self.pending_meta = Some(span),
            Item::KeyMeta(m) => {
                self.outputs.summary.key_meta_dropped += 1;
                (self.on_loss)(&Loss {
                    kind: LossKind::KeyMeta,
                    db: None,
                    key: None,
                    action: "key_meta_dropped",
                    reason: format!(
                        "module key metadata ({} classes) of the next key, which {} cannot load",
                        m.classes.len(),
                        target.name
                    ),
                    payload: None,
                })?
            }
            Item::Key(entry) => self.key(&entry, span, start, outcome)?,
        }
        Ok(())
    }

    /// Writes what was queued; call after the last item.
    pub(super) fn finish(&mut self) -> io::Result<()> {
        for (i, w) in self.outputs.writers.iter_mut().enumerate() {
            self.runs.flush(i, w)?;
        }
        Ok(())
    }

    /// Copies `bytes` (a span of the input) to every output.
    fn copy_to_all(&mut self, bytes: &'data [u8]) -> io::Result<()> {
        let runs = &mut self.runs;
        self.outputs
            .writers
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, w)| runs.copy(i, w, bytes))
    }

    fn module_aux(
        &mut self,
        m: &ModuleAux<'_>,
        span: &'data [u8],
        start: usize,
    ) -> Result<(), ConvertError> {
        match self.opts.keep_modules() {
            Some(true) => self.copy_to_all(span)?,
            Some(false) => {
                self.outputs.summary.module_aux_dropped += 1;
                (self.on_loss)(&Loss {
                    db: None,
                    key: None,
                    kind: LossKind::ModuleAux,
                    action: "module_aux_dropped",
                    reason: format!("module aux data of {}", m.id.name()),
                    payload: None,
                })?;
            }
            None => {
                return Err(unrepresentable(
                    None,
                    None,
                    start,
                    format!(
                        "module aux data of {}, and {} loads it only with that module",
                        m.id.name(),
                        self.opts.target.name
                    ),
                    LossKind::ModuleAux,
                ))
            }
        }
        Ok(())
    }

    /// A function library: written once (a merge meets it in every input), dropped or
    /// refused on a target without functions.
    fn function(
        &mut self,
        f: &Function<'_>,
        span: &'data [u8],
        start: usize,
    ) -> Result<(), ConvertError> {
        let target = &self.opts.target;
        let code = match f {
            Function::Library { code } => code.to_vec(),
            // 7.0 GA and later refuse the RC form; its parts make a FUNCTION2 library.
            Function::PreGa {
                name, engine, code, ..
            } => {
                let mut c = format!(
                    "#!{} name={}\n",
                    String::from_utf8_lossy(engine).to_lowercase(),
                    String::from_utf8_lossy(name)
                )
                .into_bytes();
                c.extend_from_slice(code);
                c
            }
        };
        if !self.outputs.functions_seen.insert(code.clone()) {
            // The same library from another input of a merge.
        } else if target.functions() {
            for (i, w) in self.outputs.writers.iter_mut().enumerate() {
                self.runs.flush(i, w)?;
                match f {
                    Function::Library { .. } => w.raw(span)?,
                    Function::PreGa { .. } => w.function(&code)?,
                }
            }
        } else if self.opts.functions == FunctionPolicy::Drop {
            self.outputs.summary.functions_dropped += 1;
            (self.on_loss)(&Loss {
                db: None,
                key: None,
                kind: LossKind::Functions,
                action: "function_dropped",
                reason: format!("{} has no functions", target.name),
                payload: Some(&code),
            })?;
        } else {
            return Err(unrepresentable(
                None,
                None,
                start,
                format!(
                    "a function library, and {} has no functions (Redis < 7.0)",
                    target.name
                ),
                LossKind::Functions,
            ));
        }
        Ok(())
    }

    fn select_db(&mut self, n: u64, span: &'data [u8], start: usize) -> Result<(), ConvertError> {
        self.db = n;
        if !self.as_stored {
            return Ok(());
        }
        let target = &self.opts.target;
        if let Some(max) = target.databases.filter(|&max| n >= max) {
            return Err(unrepresentable(
                Some(n),
                None,
                start,
                format!(
                    "database {n}, and {} keeps databases 0 to {}",
                    target.name,
                    max - 1
                ),
                LossKind::Databases,
            ));
        }
        self.copy_to_all(span)?;
        Ok(())
    }

    /// A key: counted, then admitted to an output db (or dropped), then written.
    fn key(
        &mut self,
        entry: &Entry<'data>,
        span: &'data [u8],
        start: usize,
        outcome: Option<KeyOutcome>,
    ) -> Result<(), ConvertError> {
        let summary = &mut self.outputs.summary;
        summary.keys_read += 1;
        (self.progress)(start as u64);
        // Goes with the key: dropped with it, written only right before it.
        let meta = self.pending_meta.take();
        let db = self.db;
        let step = match outcome {
            Some(KeyOutcome::Step(step)) => step,
            Some(KeyOutcome::Filtered) => {
                summary.keys_filtered += 1;
                return Ok(());
            }
            Some(KeyOutcome::DbDropped) | None => {
                summary.keys_dropped += 1;
                (self.on_loss)(&Loss {
                    db: Some(db),
                    key: Some(&entry.key),
                    kind: LossKind::Databases,
                    action: "dropped",
                    reason: format!("database {db} is not kept"),
                    payload: None,
                })?;
                return Ok(());
            }
        };
        let Some(tdb) = self.admit(entry, start)? else {
            return Ok(());
        };
        self.outputs.summary.absorb(&step.delta);
        for l in &step.losses {
            (self.on_loss)(&Loss {
                db: Some(db),
                key: Some(&entry.key),
                kind: l.kind,
                action: l.action,
                reason: l.reason.clone(),
                payload: None,
            })?;
        }
        self.write_key(entry, span, meta, step, tdb)
    }

    /// The output db of a key, or `None` when it is dropped as another copy of a key
    /// (that loss reported); an error where the target cannot hold its db or the
    /// conflict policy refuses a second copy.
    fn admit(&mut self, entry: &Entry<'data>, start: usize) -> Result<Option<u64>, ConvertError> {
        let (db, target, role) = (self.db, &self.opts.target, self.role);
        let tdb = self.opts.output_db(db).unwrap_or(0);
        if let Some(max) = target.databases.filter(|_| self.slots.is_none()) {
            if tdb >= max {
                return Err(unrepresentable(
                    Some(db),
                    Some(&entry.key),
                    start,
                    format!(
                        "database {tdb}, and {} keeps databases 0 to {}",
                        target.name,
                        max - 1
                    ),
                    LossKind::Databases,
                ));
            }
        }
        if self.slots.is_some() && tdb != 0 {
            return Err(unrepresentable(
                Some(db),
                Some(&entry.key),
                start,
                format!("database {tdb}, and a cluster keeps only db 0"),
                LossKind::ClusterDatabases,
            ));
        }
        let superseded = role.last_owner.is_some_and(|o| {
            o.get(&(tdb, entry.key.to_vec())) != Some(&(role.index, entry.offset))
        });
        let seen: &mut Option<HashSet<(u64, Vec<u8>)>> = &mut self.outputs.seen;
        let duplicate = !superseded
            && seen
                .as_mut()
                .is_some_and(|seen| !seen.insert((tdb, entry.key.to_vec())));
        if duplicate && role.conflict == ConflictPolicy::Error {
            return Err(unrepresentable(
                Some(db),
                Some(&entry.key),
                start,
                format!("the key is in more than one input or database, all written to db {tdb}"),
                LossKind::DuplicateKey,
            ));
        }
        if superseded || duplicate {
            self.outputs.summary.keys_dropped += 1;
            let which = if superseded { "a later" } else { "an earlier" };
            let which = format!("{which} copy (in this or another input)");
            (self.on_loss)(&Loss {
                db: Some(db),
                key: Some(&entry.key),
                kind: LossKind::DuplicateKey,
                action: "dropped",
                reason: format!("{which} is the one kept"),
                payload: None,
            })?;
            return Ok(None);
        }
        Ok(Some(tdb))
    }

    /// Writes an admitted key to its output: copied as stored, or its new encoding.
    fn write_key(
        &mut self,
        entry: &Entry<'data>,
        span: &'data [u8],
        meta: Option<&'data [u8]>,
        step: KeyStep,
        tdb: u64,
    ) -> Result<(), ConvertError> {
        let db = self.db;
        if let Encoded::Dropped(kind, reason) = step.encoded {
            self.outputs.summary.keys_dropped += 1;
            (self.on_loss)(&Loss {
                db: Some(db),
                key: Some(&entry.key),
                kind,
                action: "dropped",
                reason,
                payload: None,
            })?;
            return Ok(());
        }
        let i = self.slots.map_or(0, |m| m.shard_of(&entry.key));
        let outputs = &mut *self.outputs;
        let (Some(w), Some(current)) = (outputs.writers.get_mut(i), outputs.out_db.get_mut(i))
        else {
            return Ok(());
        };
        let runs = &mut self.runs;
        if !self.as_stored && *current != Some(tdb) {
            runs.flush(i, w)?;
            w.select_db(tdb)?;
            *current = Some(tdb);
        }
        // A re-encoded value: opcodes, metadata, type byte and key, then the value.
        let mut new_head = |type_id: u8, w: &mut crate::Writer<W>| -> io::Result<()> {
            runs.flush(i, w)?;
            write_key_opcodes(w, entry)?;
            if let Some(m) = meta {
                runs.copy(i, w, m)?;
                runs.flush(i, w)?;
            }
            let mut head = Vec::with_capacity(entry.raw_key.len() + 1);
            head.push(type_id);
            head.extend_from_slice(entry.raw_key);
            w.raw(&head)
        };
        match step.encoded {
            Encoded::Same => {
                outputs.summary.passed_through += 1;
                if !entry.opcodes_in_span {
                    runs.flush(i, w)?;
                    write_key_opcodes(w, entry)?;
                }
                if let Some(m) = meta {
                    runs.copy(i, w, m)?;
                }
                runs.copy(i, w, span)?;
            }
            Encoded::New(type_id, bytes) => {
                outputs.summary.transcoded += 1;
                new_head(type_id, w)?;
                w.raw(&bytes)?;
            }
            Encoded::ListInPieces => {
                outputs.summary.transcoded += 1;
                new_head(rdb_parser::format::type_id::LIST_QUICKLIST, w)?;
                let rdb_parser::Value::List(list) = &entry.value else {
                    return Err(ConvertError::Io(io::Error::other(
                        "a value other than a list was left to the list encoder",
                    )));
                };
                let (db, key) = (entry.db, &*entry.key);
                let in_key = |e: rdb_parser::Error| ConvertError::Parse(e.in_key(db, key));
                let stored = (entry.type_id, entry.raw_value);
                pieces::write_quicklist(list, stored, self.opts.compression, &in_key, &mut |b| {
                    w.raw(b)
                })?;
            }
            Encoded::Dropped(..) => {}
        }
        if let Some(stats) = outputs.summary.outputs.get_mut(i) {
            stats.keys += 1;
        }
        outputs.summary.keys_written += 1;
        Ok(())
    }
}
