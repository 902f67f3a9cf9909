//! The checks of one item: each value walked with the parser's decoders, and what a
//! loader's deep sanitization checks on top of them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rdb_parser::format::{quicklist_container, type_id};
use rdb_parser::raw::{QuicklistNodes, LENGTH_ERROR_MARKER};
use rdb_parser::{Element, Entry, Error, Item, RdbString, Stream, Value};

use super::report::{Check, Problem};
use super::walk::{key_hash, Checked};

/// The largest field expiry a server accepts (it keeps 48 bits).
const MAX_FIELD_EXPIRE: i64 = (1 << 48) - 1;
/// Duplicates named per collection before the rest are only counted.
const DUPLICATES_NAMED: usize = 3;
/// The length of a cluster node name, which a Valkey slot import job is named by.
const CLUSTER_NAME_LEN: usize = 40;

/// Checks one item, which starts at file offset `start`.
pub(super) fn check_item(item: &Item<'_>, start: u64, data: &[u8]) -> Checked {
    let mut problems = Vec::new();
    // Lengths a loader compares against its error marker, where the parser exposes them.
    let mut marked = |what: &str, values: &[u64]| {
        if values.contains(&LENGTH_ERROR_MARKER) {
            problems.push(Problem::at(
                start,
                Check::LengthMarker,
                format!(
                    "the {what} is 2^64-1, the value loaders read as a failed length \
                     (RDB_LENERR): they stop here"
                ),
            ));
        }
    };
    match item {
        Item::Key(entry) => {
            if let Some(idle) = entry.idle_s {
                marked("IDLE time", &[idle]);
            }
            let mut checked = check_value(entry, data);
            // Findings of the key name it.
            for p in &mut problems {
                p.db = Some(entry.db);
                p.key = Some(entry.key.to_vec());
            }
            problems.append(&mut checked);
            return Checked {
                problems,
                key_hash: Some(key_hash(&entry.key, entry.db)),
            };
        }
        Item::SelectDb(db) => marked("SELECTDB database number", &[*db]),
        Item::ResizeDb {
            db_size,
            expires_size,
        } => marked("RESIZEDB size hint", &[*db_size, *expires_size]),
        Item::SlotInfo {
            slot,
            keys,
            expires,
        } => marked("SLOT_INFO field", &[*slot, *keys, *expires]),
        Item::SlotImport(import) => {
            let bounds: Vec<u64> = import.ranges.iter().flat_map(|&(a, b)| [a, b]).collect();
            marked("SLOT_IMPORT slot range", &bounds);
            if import.name.len() != CLUSTER_NAME_LEN {
                problems.push(Problem::at(
                    start,
                    Check::SlotImport,
                    format!(
                        "the slot import job name is {} bytes; Valkey writes and requires \
                         {CLUSTER_NAME_LEN} (a cluster node name)",
                        import.name.len()
                    ),
                ));
            }
        }
        _ => {}
    }
    Checked {
        problems,
        key_hash: None,
    }
}

/// Every check of one key's value.
pub fn check_value(entry: &Entry<'_>, data: &[u8]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if entry.value.is_empty_collection() {
        problems.push(Problem::in_entry(
            entry,
            Check::EmptyCollection,
            format!(
                "empty {}: no server writes one; servers skip (7.0+) or mis-load (6.x) it",
                entry.value.type_name()
            ),
        ));
    }
    let result = match &entry.value {
        Value::String(s) => {
            if let RdbString::Lzf {
                compressed,
                original_len,
            } = s.stored()
            {
                check_lzf_string(entry, compressed, original_len, data, &mut problems);
            }
            Ok(())
        }
        Value::List(l) => {
            check_quicklist_nodes(entry, &mut problems);
            l.iter().try_for_each(|e| e.map(|_| ()))
        }
        Value::Set(s) => check_set(entry, s, &mut problems),
        Value::ZSet(z) => check_zset(entry, z, &mut problems),
        Value::Hash(h) => check_hash(entry, h, &mut problems),
        Value::Stream(s) => check_stream(entry, s, &mut problems),
        // Vector sets are decoded and their graph checked; other modules are opaque.
        Value::Module(_) => entry.value.decode_all().map(|_| ()),
    };
    if let Err(e) = result {
        problems.push(Problem::from_error(&e, Some(entry)));
    }
    problems
}

/// A string value stored LZF-compressed expands to exactly its declared length. Declared
/// 0, Redis 6.2+ and Valkey load it as the empty string whatever follows (they compare
/// the decompressed length, 0 on any failure, with the declared one); Redis 6.0 and older
/// refuse it.
fn check_lzf_string(
    entry: &Entry<'_>,
    compressed: &[u8],
    declared: usize,
    data: &[u8],
    problems: &mut Vec<Problem>,
) {
    let offset = (compressed.as_ptr() as usize).saturating_sub(data.as_ptr() as usize) as u64;
    let problem = |message: String| {
        let mut p = Problem::in_entry(entry, Check::Lzf, message);
        p.offset = offset;
        p
    };
    if declared == 0 {
        problems.push(
            problem(format!(
                "compressed string of {} bytes declares length 0: Redis 6.2+ and Valkey load \
                 an empty string, Redis 6.0 and older refuse it",
                compressed.len()
            ))
            .warning(),
        );
    } else if let Err(why) = rdb_parser::lzf::validate(compressed, declared) {
        problems.push(problem(format!(
            "compressed string of {} bytes does not expand to its declared {declared} \
             bytes: {why}",
            compressed.len()
        )));
    }
}

/// The bytes an element stands for, borrowed when it is stored as bytes.
fn element_bytes(e: Element<'_>) -> Cow<'_, [u8]> {
    match e {
        Element::Bytes(b) => b,
        Element::Int(v) => Cow::Owned(v.to_string().into_bytes()),
    }
}

/// The hash of the bytes an element stands for (an integer hashes as its decimal form, as
/// a loader compares them).
fn element_hash(e: &Element<'_>) -> u64 {
    match e {
        Element::Bytes(b) => xxhash_rust::xxh3::xxh3_64(b),
        Element::Int(v) => xxhash_rust::xxh3::xxh3_64(itoa::Buffer::new().format(*v).as_bytes()),
    }
}

/// Finds members seen twice: a hash per member, compared after the walk. Only when two
/// hashes meet are the members themselves collected, compared and named
/// ([`name_duplicates`]), so a clean collection allocates no copy of an integer member and
/// sorts words instead of byte strings.
struct Duplicates {
    hashes: Vec<u64>,
}

impl Duplicates {
    fn new() -> Self {
        Duplicates { hashes: Vec::new() }
    }

    fn add(&mut self, member: &Element<'_>) {
        self.hashes.push(element_hash(member));
    }

    /// Whether two members may be equal.
    fn suspected(&mut self) -> bool {
        let h = &mut self.hashes;
        if h.len() <= 16 {
            h.iter()
                .enumerate()
                .any(|(i, x)| h.iter().take(i).any(|y| y == x))
        } else {
            h.sort_unstable();
            h.windows(2).any(|w| w.first() == w.last())
        }
    }
}

/// Reports the members of `members` seen twice, naming the first few.
fn name_duplicates<'a>(
    members: impl Iterator<Item = Result<Cow<'a, [u8]>, Error>>,
    entry: &Entry<'_>,
    what: &str,
    problems: &mut Vec<Problem>,
) {
    // The walk already succeeded once; a second one meets the same bytes.
    let mut m: Vec<Cow<'a, [u8]>> = members.filter_map(Result::ok).collect();
    m.sort_unstable();
    let mut named: Vec<&[u8]> = Vec::new();
    let mut count = 0u64;
    for pair in m.windows(2) {
        if let [x, y] = pair {
            if x == y {
                count += 1;
                if named.len() < DUPLICATES_NAMED {
                    named.push(y);
                }
            }
        }
    }
    if count == 0 {
        return;
    }
    let mut names = String::new();
    for (i, n) in named.iter().enumerate() {
        names.push_str(if i == 0 { "\"" } else { ", \"" });
        let _ = rdb_parser::error::write_escaped(&mut names, n);
        names.push('"');
    }
    let more = count - named.len() as u64;
    if more > 0 {
        names.push_str(&format!(" and {more} more"));
    }
    problems.push(Problem::in_entry(
        entry,
        Check::DuplicateMember,
        format!("{count} duplicate {what}: {names}"),
    ));
}

fn check_set(
    entry: &Entry<'_>,
    set: &rdb_parser::Set<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let intset = entry.type_id == type_id::SET_INTSET;
    let mut dups = Duplicates::new();
    let mut previous: Option<i64> = None;
    let mut order_reported = false;
    for member in set.iter() {
        let member = member?;
        if intset {
            if let Element::Int(v) = member {
                if previous.is_some_and(|p| p >= v) && !order_reported {
                    order_reported = true;
                    problems.push(Problem::in_entry(
                        entry,
                        Check::IntsetOrder,
                        format!(
                            "intset values must be strictly ascending: {} then {v}",
                            previous.unwrap_or_default()
                        ),
                    ));
                }
                previous = Some(v);
            }
            // Strictly ascending values are distinct; a broken order is reported above.
            continue;
        }
        dups.add(&member);
    }
    if dups.suspected() {
        let members = set.iter().map(|m| m.map(element_bytes));
        name_duplicates(members, entry, "members", problems);
    }
    Ok(())
}

fn check_zset(
    entry: &Entry<'_>,
    zset: &rdb_parser::ZSet<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut dups = Duplicates::new();
    let mut nan_reported = false;
    for pair in zset.iter() {
        let (member, score) = pair?;
        if score.is_nan() && !nan_reported {
            nan_reported = true;
            let mut m = String::new();
            let _ = rdb_parser::error::write_escaped(&mut m, &member.to_bytes());
            problems.push(Problem::in_entry(
                entry,
                Check::NanScore,
                format!("member \"{m}\" has a NaN score"),
            ));
        }
        dups.add(&member);
    }
    if dups.suspected() {
        let members = zset.iter().map(|p| p.map(|(m, _)| element_bytes(m)));
        name_duplicates(members, entry, "members", problems);
    }
    Ok(())
}

fn check_hash(
    entry: &Entry<'_>,
    hash: &rdb_parser::Hash<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut dups = Duplicates::new();
    // Redis' listpack form keeps fields with a TTL first, by ascending expiry.
    let ordered = matches!(
        entry.type_id,
        type_id::HASH_LISTPACK_EX | type_id::HASH_LISTPACK_EX_PRE_GA
    );
    let mut last_ttl: Option<Option<i64>> = None;
    let (mut bad_ttl, mut bad_order) = (None, false);
    for field in hash.iter() {
        let field = field?;
        if let Some(t) = field.expire_ms {
            if !(0..=MAX_FIELD_EXPIRE).contains(&t) && bad_ttl.is_none() {
                bad_ttl = Some(t);
            }
        }
        if ordered {
            bad_order |= match (last_ttl, field.expire_ms) {
                (Some(None), Some(_)) => true,
                (Some(Some(prev)), Some(t)) => t < prev,
                _ => false,
            };
            last_ttl = Some(field.expire_ms);
        }
        dups.add(&field.field);
    }
    if entry.type_id == type_id::HASH_ZIPMAP {
        check_zipmap_count(entry, dups.hashes.len(), problems);
    }
    if dups.suspected() {
        let fields = hash.iter().map(|f| f.map(|f| element_bytes(f.field)));
        name_duplicates(fields, entry, "fields", problems);
    }
    if let Some(t) = bad_ttl {
        problems.push(Problem::in_entry(
            entry,
            Check::HashFieldTtl,
            format!("a field expires at {t}, outside 0..=2^48-1 ms"),
        ));
    }
    if bad_order {
        problems.push(Problem::in_entry(
            entry,
            Check::HashFieldTtl,
            "fields with a TTL must come first, by ascending expiry".into(),
        ));
    }
    Ok(())
}

/// A zipmap's first byte counts its pairs (254 and up: "count by walking"); Redis 6.2+
/// refuses a zipmap whose count disagrees with its pairs.
fn check_zipmap_count(entry: &Entry<'_>, pairs: usize, problems: &mut Vec<Problem>) {
    const BIGLEN: u8 = 254;
    let Some(blob) = RdbString::read(entry.raw_value).and_then(|(s, _)| s.to_bytes().ok()) else {
        return;
    };
    match blob.first() {
        Some(&count) if count < BIGLEN && usize::from(count) != pairs => {
            problems.push(Problem::in_entry(
                entry,
                Check::Zipmap,
                format!("the zipmap's header counts {count} pairs, it holds {pairs}"),
            ));
        }
        _ => {}
    }
}

fn check_stream(
    entry: &Entry<'_>,
    stream: &Stream<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut previous: Option<rdb_parser::StreamId> = None;
    let mut live = 0u64;
    let mut first = None;
    let mut order_reported = false;
    let mut entries = stream.entries();
    while let Some(e) = entries.next_entry() {
        let e = e?;
        live += 1;
        first.get_or_insert(e.id);
        if previous.is_some_and(|p| p >= e.id) && !order_reported {
            order_reported = true;
            problems.push(Problem::in_entry(
                entry,
                Check::StreamIdOrder,
                format!(
                    "entry IDs must ascend: {} then {}",
                    previous.unwrap_or_default(),
                    e.id
                ),
            ));
        }
        previous = Some(e.id);
    }
    if live != stream.length {
        problems.push(Problem::in_entry(
            entry,
            Check::StreamLength,
            format!(
                "the stream says {} entries, its nodes hold {live}",
                stream.length
            ),
        ));
    }
    if let Some(last) = previous {
        if last > stream.last_id {
            problems.push(Problem::in_entry(
                entry,
                Check::StreamLastId,
                format!(
                    "entry {last} is beyond the stream's last ID {}",
                    stream.last_id
                ),
            ));
        }
    }
    if let (Some(declared), Some(found)) = (stream.first_id, first) {
        if declared != found && declared != rdb_parser::StreamId::default() {
            problems.push(
                Problem::in_entry(
                    entry,
                    Check::StreamFirstId,
                    format!("the stream's first ID says {declared}, the first entry is {found}"),
                )
                .warning(),
            );
        }
    }
    if let Some(max_deleted) = stream.max_deleted_id {
        if max_deleted > stream.last_id {
            problems.push(Problem::in_entry(
                entry,
                Check::StreamLastId,
                format!(
                    "the max deleted ID {max_deleted} is beyond the last ID {}",
                    stream.last_id
                ),
            ));
        }
    }
    let mut group_names = Repeats::new(|| stream.groups().map(|g| g.name), stream.group_count());
    for group in stream.groups() {
        if group_names.repeated(&group.name) {
            let mut gname = String::new();
            let _ = rdb_parser::error::write_escaped(&mut gname, &group.name);
            problems.push(Problem::in_entry(
                entry,
                Check::StreamGroup,
                format!("consumer group \"{gname}\" appears twice"),
            ));
        }
        check_group(entry, stream, &group, problems);
    }
    Ok(())
}

/// Finds the names given more than once among a stream's groups or a group's consumers,
/// in memory bounded by their number, not their size (a file may hold millions): none
/// when they come sorted, as servers write them (from a radix tree); else an 8-byte hash
/// a name, and only the names whose hash repeats are kept, to be compared exactly.
#[derive(Default)]
struct Repeats {
    suspects: HashSet<u64>,
    seen: HashSet<Vec<u8>>,
}

impl Repeats {
    fn new<'a, I: Iterator<Item = Cow<'a, [u8]>>>(names: impl Fn() -> I, count: u64) -> Self {
        let mut previous: Option<Cow<'a, [u8]>> = None;
        let sorted = names().all(|n| {
            let increasing = previous.as_deref().is_none_or(|p| p < n.as_ref());
            previous = Some(n);
            increasing
        });
        if sorted {
            return Repeats::default();
        }
        // The count was checked against the bytes left: this is of the order of the file.
        let mut hashes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        hashes.extend(names().map(|n| xxhash_rust::xxh3::xxh3_64(&n)));
        hashes.sort_unstable();
        let suspects = hashes
            .windows(2)
            .filter_map(|w| match w {
                [a, b] if a == b => Some(*a),
                _ => None,
            })
            .collect();
        Repeats {
            suspects,
            seen: HashSet::new(),
        }
    }

    /// Whether `name`, the next one of the walk, was given before in it.
    fn repeated(&mut self, name: &[u8]) -> bool {
        !self.suspects.is_empty()
            && self.suspects.contains(&xxhash_rust::xxh3::xxh3_64(name))
            && !self.seen.insert(name.to_vec())
    }
}

/// One consumer group: its last-delivered ID, its PEL, and its consumers' PELs.
fn check_group(
    entry: &Entry<'_>,
    stream: &Stream<'_>,
    group: &rdb_parser::ConsumerGroup<'_>,
    problems: &mut Vec<Problem>,
) {
    let mut gname = String::new();
    let _ = rdb_parser::error::write_escaped(&mut gname, &group.name);
    if group.last_id > stream.last_id {
        problems.push(
            Problem::in_entry(
                entry,
                Check::StreamGroup,
                format!(
                    "group \"{gname}\" last-delivered ID {} is beyond the stream's last ID {}",
                    group.last_id, stream.last_id
                ),
            )
            .warning(),
        );
    }
    // The group PEL: unique IDs; each owned by exactly one consumer.
    let mut owners: HashMap<rdb_parser::StreamId, u32> = HashMap::new();
    let mut pel_dups = 0u64;
    for p in group.pending() {
        if owners.insert(p.id, 0).is_some() {
            pel_dups += 1;
        }
    }
    if pel_dups > 0 {
        problems.push(Problem::in_entry(
            entry,
            Check::StreamPel,
            format!("group \"{gname}\": {pel_dups} IDs appear twice in the PEL"),
        ));
    }
    let mut consumer_names =
        Repeats::new(|| group.consumers().map(|c| c.name), group.consumer_count());
    let mut missing = Vec::new();
    for c in group.consumers() {
        if consumer_names.repeated(&c.name) {
            let mut cname = String::new();
            let _ = rdb_parser::error::write_escaped(&mut cname, &c.name);
            problems.push(Problem::in_entry(
                entry,
                Check::StreamGroup,
                format!("group \"{gname}\": consumer \"{cname}\" appears twice"),
            ));
        }
        for id in c.pending() {
            match owners.get_mut(&id) {
                Some(n) => *n += 1,
                None => missing.push(id),
            }
        }
    }
    if let Some(id) = missing.first() {
        problems.push(Problem::in_entry(
            entry,
            Check::StreamPel,
            format!(
                "group \"{gname}\": {} consumer PEL entries (first {id}) are not in the \
                 group PEL",
                missing.len()
            ),
        ));
    }
    let mut unowned: Vec<_> = owners.iter().filter(|(_, &n)| n == 0).collect();
    let mut shared: Vec<_> = owners.iter().filter(|(_, &n)| n > 1).collect();
    unowned.sort();
    shared.sort();
    if let Some((id, _)) = unowned.first() {
        problems.push(Problem::in_entry(
            entry,
            Check::StreamPel,
            format!(
                "group \"{gname}\": {} PEL entries (first {id}) belong to no consumer",
                unowned.len()
            ),
        ));
    }
    if let Some((id, _)) = shared.first() {
        problems.push(Problem::in_entry(
            entry,
            Check::StreamPel,
            format!(
                "group \"{gname}\": {} PEL entries (first {id}) belong to more than one \
                 consumer",
                shared.len()
            ),
        ));
    }
}

/// Quicklist nodes, read again from the value's bytes: an empty PLAIN node (a loader
/// refuses a node of no bytes) is an error; empty packed nodes are a warning, since a
/// server skips them on load (and a list made only of them is an empty collection), but
/// none writes one.
fn check_quicklist_nodes(entry: &Entry<'_>, problems: &mut Vec<Problem>) {
    let Some(nodes) = QuicklistNodes::new(entry.type_id, entry.raw_value) else {
        return;
    };
    let (declared, v2) = (nodes.declared(), nodes.is_v2());
    let (mut empty, mut empty_plain) = (0u64, None);
    for (i, node) in nodes.enumerate() {
        if node.container == quicklist_container::PLAIN && node.data.is_empty() {
            empty_plain.get_or_insert(i);
        }
        if node.is_empty_packed(v2) == Some(true) {
            empty += 1;
        }
    }
    if let Some(i) = empty_plain {
        problems.push(Problem::in_entry(
            entry,
            Check::Quicklist,
            format!(
                "quicklist node {i} of {declared} is a PLAIN node of 0 bytes: loaders refuse \
                 an empty node"
            ),
        ));
    }
    if empty > 0 && !entry.value.is_empty_collection() {
        problems.push(
            Problem::in_entry(
                entry,
                Check::QuicklistNode,
                format!("{empty} of {declared} quicklist nodes are empty (servers skip them)"),
            )
            .warning(),
        );
    }
}

#[cfg(test)]
mod repeats_tests {
    use super::*;

    fn repeats(names: &[&'static [u8]]) -> Vec<usize> {
        let walk = || names.iter().map(|n| Cow::Borrowed(*n));
        let mut r = Repeats::new(walk, names.len() as u64);
        walk()
            .enumerate()
            .filter(|(_, n)| r.repeated(n))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn names_given_twice_are_found_sorted_or_not() {
        assert_eq!(repeats(&[b"a", b"b", b"c"]), Vec::<usize>::new());
        assert_eq!(repeats(&[b"c", b"a", b"b"]), Vec::<usize>::new());
        // Sorted but not strictly: the equal neighbours are found by the hashes.
        assert_eq!(repeats(&[b"a", b"b", b"b"]), [2]);
        assert_eq!(repeats(&[b"b", b"a", b"b", b"c", b"b"]), [2, 4]);
        assert_eq!(repeats(&[]), Vec::<usize>::new());
    }
}
