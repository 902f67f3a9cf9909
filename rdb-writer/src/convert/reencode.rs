//! How one key's value reaches the target: copied as stored, re-encoded into a type the
//! target loads, or dropped under a policy, each type by its own function.

use std::borrow::Cow;
use std::io;

use rdb_parser::format::{type_id, Magic, Version};
use rdb_parser::{Element, Entry, Hash, List, Set, Stream, Value, ZSet};

use super::{
    pieces, unrepresentable, ConvertError, ConvertOptions, ConvertSummary, Encoded, FieldTtlPolicy,
    Loss, LossKind, StreamIdmpPolicy,
};
use crate::encode::{self, Compression};
use crate::profile::is_valkey;
use crate::{value, ListpackBuilder, ZiplistBuilder};

/// The key being re-encoded, for errors that name it.
struct KeyCx<'a, 'e> {
    entry: &'a Entry<'e>,
    opts: &'a ConvertOptions,
    offset: u64,
}

impl KeyCx<'_, '_> {
    fn fail(&self, reason: String, kind: LossKind) -> ConvertError {
        unrepresentable(
            Some(self.entry.db),
            Some(&self.entry.key),
            self.offset as usize,
            reason,
            kind,
        )
    }

    fn in_key(&self, e: rdb_parser::Error) -> ConvertError {
        ConvertError::Parse(e.in_key(self.entry.db, &self.entry.key))
    }
}

/// Decides how one key reaches the target. `in_pieces`: a list too large to hold
/// re-encoded may be left to the writing thread ([`Encoded::ListInPieces`]); without it,
/// every re-encoded value is returned whole.
pub(super) fn encode_entry(
    entry: &Entry<'_>,
    source: Version,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    offset: u64,
    in_pieces: bool,
) -> Result<Encoded, ConvertError> {
    let cx = KeyCx {
        entry,
        opts,
        offset,
    };
    let target = &opts.target;
    if entry.value.is_empty_collection() {
        // Read only with --allow-empty-keys: no server writes these, 7.0+ skip them on
        // load and 6.x refuse or crash on them.
        return Ok(Encoded::Dropped(
            LossKind::EmptyKey,
            format!(
                "an empty {}: servers skip or refuse such keys",
                entry.value.type_name()
            ),
        ));
    }
    match &entry.value {
        Value::Module(m) => module_value(&cx, m),
        Value::Hash(h) if h.has_field_ttls() => {
            // Valkey's HASH_2 shares type 22 with a Redis 7.4 RC type: same magic, same meaning.
            let same = if source.magic == Magic::Valkey {
                is_valkey(target.version)
            } else {
                target.loads_type(entry.type_id)
            };
            if same {
                return Ok(Encoded::Same);
            }
            let fail = |reason: String, kind: LossKind| cx.fail(reason, kind);
            hash_with_ttls(entry, h, opts, summary, on_loss, &fail).map_err(|e| match e {
                HashErr::Convert(c) => c,
                HashErr::Parse(p) => cx.in_key(p),
            })
        }
        _ if target.loads_type(entry.type_id) => Ok(Encoded::Same),
        Value::Hash(h) => hash_for_target(&cx, h),
        Value::ZSet(z) => zset_for_target(&cx, z),
        Value::List(l) => list_for_target(&cx, l, in_pieces),
        Value::Set(s) => set_for_target(&cx, s),
        Value::Stream(s) => stream_for_target(&cx, s, summary, on_loss),
        Value::String(_) => Err(cx.fail(
            format!("type {} is not loadable by {}", entry.type_id, target.name),
            LossKind::Type,
        )),
    }
}

/// A module value: kept as stored, dropped, or refused, as the module policy says.
fn module_value(cx: &KeyCx<'_, '_>, m: &rdb_parser::Module<'_>) -> Result<Encoded, ConvertError> {
    if m.is_vector_set() {
        use crate::vectorset::{plan, VectorSetStep};
        return match plan(m, cx.opts.modules, &cx.opts.target).map_err(|e| cx.in_key(e))? {
            VectorSetStep::Keep => Ok(Encoded::Same),
            VectorSetStep::Rewrite(bytes) => Ok(Encoded::New(cx.entry.type_id, bytes)),
            VectorSetStep::Drop(reason) => Ok(Encoded::Dropped(LossKind::ModuleValue, reason)),
            VectorSetStep::Refuse(reason) => Err(cx.fail(reason, LossKind::ModuleValue)),
        };
    }
    match cx.opts.keep_modules() {
        Some(true) => Ok(Encoded::Same),
        Some(false) => Ok(Encoded::Dropped(
            LossKind::ModuleValue,
            format!("module value of type {}", m.id.name()),
        )),
        None => Err(cx.fail(
            format!(
                "a module value of type {}, and {} loads it only with that module",
                m.id.name(),
                cx.opts.target.name
            ),
            LossKind::ModuleValue,
        )),
    }
}

/// A hash without field TTLs in an encoding the target lacks (a listpack for RDB 9):
/// its fields as decoded, borrowed from the input where they are stored plain.
fn hash_for_target(cx: &KeyCx<'_, '_>, h: &Hash<'_>) -> Result<Encoded, ConvertError> {
    let pairs: Vec<(Element<'_>, Element<'_>)> = h
        .iter()
        .map(|f| f.map(|f| (f.field, f.value)))
        .collect::<Result<_, _>>()
        .map_err(|e| cx.in_key(e))?;
    plain_hash(&pairs, cx.opts.target.version, cx.opts.compression)
}

/// A listpack sorted set for RDB 9: a ziplist of the same entries in the same order up
/// to 128 members (the server's default limit), `ZSET_2` beyond.
fn zset_for_target(cx: &KeyCx<'_, '_>, z: &ZSet<'_>) -> Result<Encoded, ConvertError> {
    let c = cx.opts.compression;
    let members: Vec<(Element<'_>, f64)> = z
        .iter()
        .collect::<Result<_, _>>()
        .map_err(|e| cx.in_key(e))?;
    if members.len() <= 128 {
        let mut zl = ZiplistBuilder::new();
        let mut score = String::new();
        for (member, s) in &members {
            zl.push_element(member);
            encode::score_text_into(&mut score, *s);
            zl.push(score.as_bytes());
        }
        let mut out = Vec::new();
        encode::string(&mut out, &zl.finish()?, c);
        return Ok(Encoded::New(type_id::ZSET_ZIPLIST, out));
    }
    let members: Vec<(Cow<'_, [u8]>, f64)> =
        members.iter().map(|(m, s)| (m.to_bytes(), *s)).collect();
    Ok(Encoded::New(type_id::ZSET_2, value::zset_2(&members, c)))
}

/// A quicklist 2 list for RDB 9: each node becomes one ziplist node ([`pieces`]); a list
/// stored in other forms is re-packed element by element.
fn list_for_target<'e>(
    cx: &KeyCx<'_, 'e>,
    l: &List<'e>,
    in_pieces: bool,
) -> Result<Encoded, ConvertError> {
    let c = cx.opts.compression;
    if l.nodes().is_some() {
        if in_pieces && cx.entry.raw_value.len() > pieces::IN_PIECES_ABOVE {
            return Ok(Encoded::ListInPieces);
        }
        let (db, key) = (cx.entry.db, &*cx.entry.key);
        let stored = (cx.entry.type_id, cx.entry.raw_value);
        let bytes = pieces::quicklist(l, stored, c, &|e| ConvertError::Parse(e.in_key(db, key)))?;
        return Ok(Encoded::New(type_id::LIST_QUICKLIST, bytes));
    }
    let mut b = value::QuicklistBuilder::new(c);
    for e in l.iter() {
        b.push(&e.map_err(|e| cx.in_key(e))?.to_bytes())?;
    }
    Ok(Encoded::New(type_id::LIST_QUICKLIST, b.finish()?))
}

/// A listpack set for RDB 9 or 10: an intset when every member is an integer and there
/// are at most 512 of them, else a plain set.
fn set_for_target(cx: &KeyCx<'_, '_>, s: &Set<'_>) -> Result<Encoded, ConvertError> {
    let c = cx.opts.compression;
    let members: Vec<Element<'_>> = s
        .iter()
        .collect::<Result<_, _>>()
        .map_err(|e| cx.in_key(e))?;
    let ints: Option<Vec<i64>> = members.iter().map(Element::as_int).collect();
    Ok(match ints {
        Some(ints) if ints.len() <= 512 => {
            Encoded::New(type_id::SET_INTSET, value::set_intset(&ints, c)?)
        }
        _ => {
            let bytes: Vec<Cow<'_, [u8]>> = members.iter().map(Element::to_bytes).collect();
            Encoded::New(type_id::SET, value::set_plain(&bytes, c))
        }
    })
}

/// A stream for an older stream type; IDMP state the target lacks follows its policy.
fn stream_for_target(
    cx: &KeyCx<'_, '_>,
    s: &Stream<'_>,
    summary: &mut ConvertSummary,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
) -> Result<Encoded, ConvertError> {
    let target = &cx.opts.target;
    if let Some(what) = s.idmp.as_ref().and_then(idmp_state) {
        match cx.opts.stream_idmp {
            StreamIdmpPolicy::Error => {
                return Err(cx.fail(
                    format!(
                        "a stream with IDMP state ({what}), and {} has none",
                        target.name
                    ),
                    LossKind::StreamIdmp,
                ))
            }
            StreamIdmpPolicy::Drop => {
                summary.streams_idmp_dropped += 1;
                on_loss(&Loss {
                    kind: LossKind::StreamIdmp,
                    db: Some(cx.entry.db),
                    key: Some(&cx.entry.key),
                    action: "stream_idmp_dropped",
                    reason: format!("IDMP state: {what}"),
                    payload: None,
                })?;
            }
        }
    }
    let (t, bytes) = stream(s, target.version);
    Ok(Encoded::New(t, bytes))
}

pub(super) enum HashErr {
    Convert(ConvertError),
    Parse(rdb_parser::Error),
}

type Field = (Vec<u8>, Vec<u8>, Option<i64>);

fn hash_fields(h: &Hash<'_>) -> Result<Vec<Field>, rdb_parser::Error> {
    h.iter()
        .map(|f| {
            f.map(|f| {
                (
                    f.field.to_bytes().into_owned(),
                    f.value.to_bytes().into_owned(),
                    f.expire_ms,
                )
            })
        })
        .collect()
}

/// A hash whose fields may carry TTLs, for a target that stores them differently or not
/// at all.
pub(super) fn hash_with_ttls(
    entry: &Entry<'_>,
    h: &Hash<'_>,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    fail: &dyn Fn(String, LossKind) -> ConvertError,
) -> Result<Encoded, HashErr> {
    let target = &opts.target;
    let mut fields = hash_fields(h).map_err(HashErr::Parse)?;
    let with_ttl = fields.iter().filter(|f| f.2.is_some()).count();
    if target.field_ttls() {
        return field_ttl_hash(&fields, target.version, opts.compression, fail)
            .map_err(HashErr::Convert);
    }
    if with_ttl > 0 {
        let loss = |kind: LossKind, action: &'static str, reason: String| Loss {
            db: Some(entry.db),
            key: Some(&entry.key),
            kind,
            action,
            reason,
            payload: None,
        };
        match opts.field_ttls {
            FieldTtlPolicy::Error => {
                return Err(HashErr::Convert(fail(
                    format!(
                        "{with_ttl} hash fields have their own TTL, and {} cannot store field TTLs",
                        target.name
                    ),
                    LossKind::FieldTtls,
                )))
            }
            FieldTtlPolicy::Drop => {}
            FieldTtlPolicy::DropExpired => {
                let before = fields.len();
                let now = opts.now_ms;
                fields.retain(|f| f.2.is_none_or(|t| t > now));
                let gone = (before - fields.len()) as u64;
                if gone > 0 {
                    summary.fields_dropped += gone;
                    on_loss(&loss(
                        LossKind::ExpiredFields,
                        "expired_fields_dropped",
                        format!("{gone} fields had expired at {now}"),
                    ))
                    .map_err(|e| HashErr::Convert(e.into()))?;
                }
                if fields.is_empty() {
                    return Ok(Encoded::Dropped(
                        LossKind::ExpiredFields,
                        "every field had expired".into(),
                    ));
                }
            }
        }
        summary.keys_with_field_ttls_dropped += 1;
        on_loss(&loss(
            LossKind::FieldTtls,
            "field_ttls_dropped",
            format!(
                "{} fields made persistent",
                fields.iter().filter(|f| f.2.is_some()).count()
            ),
        ))
        .map_err(|e| HashErr::Convert(e.into()))?;
    }
    let pairs: Vec<(Element<'_>, Element<'_>)> = fields
        .iter()
        .map(|(f, v, _)| (Element::Bytes(f.into()), Element::Bytes(v.into())))
        .collect();
    plain_hash(&pairs, target.version, opts.compression).map_err(HashErr::Convert)
}

/// A hash without field TTLs in the encoding the target's own server would choose.
fn plain_hash(
    pairs: &[(Element<'_>, Element<'_>)],
    v: Version,
    c: Compression,
) -> Result<Encoded, ConvertError> {
    let small = pairs.len() <= 512 && pairs.iter().all(|(f, x)| f.len() <= 64 && x.len() <= 64);
    Ok(if !small {
        let mut out = Vec::new();
        encode::length(&mut out, pairs.len() as u64);
        for (f, x) in pairs {
            encode::string(&mut out, &f.to_bytes(), c);
            encode::string(&mut out, &x.to_bytes(), c);
        }
        Encoded::New(type_id::HASH, out)
    } else if is_valkey(v) || v.number >= 10 {
        let mut lp = ListpackBuilder::new();
        for (f, x) in pairs {
            lp.push(&f.to_bytes());
            lp.push(&x.to_bytes());
        }
        Encoded::New(type_id::HASH_LISTPACK, value::string(&lp.finish()?, c))
    } else {
        let mut zl = ZiplistBuilder::new();
        for (f, x) in pairs {
            zl.push_element(f);
            zl.push_element(x);
        }
        Encoded::New(type_id::HASH_ZIPLIST, value::string(&zl.finish()?, c))
    })
}

/// A hash with field TTLs for a target that stores them: Valkey's HASH_2 or Redis 7.4's
/// HASH_METADATA.
fn field_ttl_hash(
    fields: &[Field],
    v: Version,
    c: Compression,
    fail: &dyn Fn(String, LossKind) -> ConvertError,
) -> Result<Encoded, ConvertError> {
    let mut out = Vec::new();
    if is_valkey(v) {
        // len n, n x (field, value, i64 LE expire or -1)
        encode::length(&mut out, fields.len() as u64);
        for (f, x, t) in fields {
            encode::string(&mut out, f, c);
            encode::string(&mut out, x, c);
            encode::ms_time(&mut out, t.unwrap_or(-1));
        }
        return Ok(Encoded::New(type_id::HASH_2, out));
    }
    // u64 LE min_expire, len n, n x (len ttl, field, value); ttl = expire - min + 1, 0 = none.
    let min = fields.iter().filter_map(|f| f.2).min().unwrap_or(0);
    encode::ms_time(&mut out, min);
    encode::length(&mut out, fields.len() as u64);
    for (f, x, t) in fields {
        // Relative TTLs must fit the i64 range readers accept (found by fuzzing: expiries
        // near both ends of i64 overflowed the subtraction).
        let ttl = match *t {
            None => 0,
            Some(t) => u64::try_from(i128::from(t) - i128::from(min) + 1)
                .ok()
                .filter(|&d| i64::try_from(d).is_ok())
                .ok_or_else(|| {
                    fail(
                        format!(
                            "field expiries {min} and {t} ms are too far apart for the relative field TTLs of RDB {}",
                            v.number
                        ),
                        LossKind::FieldExpiryRange,
                    )
                })?,
        };
        encode::length(&mut out, ttl);
        encode::string(&mut out, f, c);
        encode::string(&mut out, x, c);
    }
    Ok(Encoded::New(type_id::HASH_METADATA, out))
}

/// What a target without IDMP would lose of a stream's IDMP state, or `None` when it is
/// what every stream has untouched: no producers, zero counters, the server's built-in
/// settings (100 s, 100 iids).
pub(super) fn idmp_state(m: &rdb_parser::Idmp<'_>) -> Option<String> {
    let iids = m.iid_count();
    let untouched = m.producer_count() == 0
        && m.iids_added == 0
        && m.iids_duplicates == 0
        && (m.duration_s, m.max_entries) == (100, 100);
    (!untouched).then(|| {
        format!(
            "{} producers, {iids} iids, duration {} s, max {} iids, {} added, {} duplicates",
            m.producer_count(),
            m.duration_s,
            m.max_entries,
            m.iids_added,
            m.iids_duplicates
        )
    })
}

/// A stream for an older stream type: node listpacks are copied, metadata the target
/// version does not store is left out (its server derives it on load).
pub(super) fn stream(s: &Stream<'_>, v: Version) -> (u8, Vec<u8>) {
    let out_type = if is_valkey(v) || v.number >= 11 {
        type_id::STREAM_LISTPACKS_3
    } else if v.number >= 10 {
        type_id::STREAM_LISTPACKS_2
    } else {
        type_id::STREAM_LISTPACKS
    };
    let v2 = out_type >= type_id::STREAM_LISTPACKS_2;
    let v3 = out_type >= type_id::STREAM_LISTPACKS_3;
    let mut out = Vec::with_capacity(s.nodes_raw().len() + 64);
    encode::length(&mut out, s.node_count());
    out.extend_from_slice(s.nodes_raw());
    encode::length(&mut out, s.length);
    encode::stream_id_lens(&mut out, s.last_id);
    if v2 {
        encode::stream_id_lens(&mut out, s.first_id.unwrap_or_default());
        encode::stream_id_lens(&mut out, s.max_deleted_id.unwrap_or_default());
        encode::length(&mut out, s.entries_added.unwrap_or(s.length));
    }
    encode::length(&mut out, s.group_count());
    for g in s.groups() {
        encode::string(&mut out, &g.name, Compression::None);
        encode::stream_id_lens(&mut out, g.last_id);
        if v2 {
            encode::length(&mut out, g.entries_read.unwrap_or(u64::MAX));
        }
        encode::length(&mut out, g.pending_count());
        for p in g.pending() {
            encode::stream_id_raw(&mut out, p.id);
            encode::ms_time(&mut out, p.delivery_time_ms);
            encode::length(&mut out, p.delivery_count);
        }
        encode::length(&mut out, g.consumer_count());
        for cons in g.consumers() {
            encode::string(&mut out, &cons.name, Compression::None);
            encode::ms_time(&mut out, cons.seen_time_ms);
            if v3 {
                encode::ms_time(&mut out, cons.active_time_ms.unwrap_or(cons.seen_time_ms));
            }
            encode::length(&mut out, cons.pending_count());
            for id in cons.pending() {
                encode::stream_id_raw(&mut out, id);
            }
        }
    }
    (out_type, out)
}
