//! The terminal report.

use std::io::{Result, Write};

use super::collect::{SizeHistogram, Stats, TopKey, TTL_BUCKETS, TYPES};
use super::whole::{ranges_text, PartStats, Report};

/// `1234567` -> `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B")),
    }
}

/// A key for a terminal: printable ASCII kept, everything else as `\xNN`, cut at 60.
/// A top list's key; a shortened one ends with its length and digest (the tail `fit`
/// keeps).
pub fn top_key(k: &TopKey) -> String {
    match k.key_digest {
        Some(d) => format!(
            "{}... (shortened: {} bytes, xxh3 {d:032x})",
            shown_key(k.key.get(..60).unwrap_or(&k.key)),
            k.key_len
        ),
        None => shown_key(&k.key),
    }
}

pub fn shown_key(k: &[u8]) -> String {
    let mut s = String::new();
    for &b in k.iter().take(60) {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if k.len() > 60 {
        s.push_str("...");
    }
    s
}

/// Unix milliseconds as `2023-11-14 22:13:20 UTC` (proleptic Gregorian calendar).
pub fn utc(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|d| d.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

/// The report fits an 80-column terminal: lines stay within this many columns.
pub const WIDTH: usize = 79;

/// `s` cut to `width` columns by taking out its middle (`user:4...:name`): the start
/// and the end of a key name are what tell keys apart. `s` is ASCII ([`shown_key`]).
pub fn fit(s: &str, width: usize) -> String {
    if s.len() <= width || width < 5 {
        return s.to_owned();
    }
    let head = (width - 3).div_ceil(2);
    let tail = width - 3 - head;
    let (a, b) = (s.get(..head), s.get(s.len() - tail..));
    match (a, b) {
        (Some(a), Some(b)) => format!("{a}...{b}"),
        _ => s.chars().take(width).collect(),
    }
}

/// At most 5 columns: `100%` only for the whole, `99.9%` for anything short of it.
fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else if part >= whole {
        "100%".into()
    } else {
        format!("{:.1}%", (part as f64 * 100.0 / whole as f64).min(99.9))
    }
}

/// At most 8 columns (`1023 KiB`), for the top-key tables.
fn compact_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    match unit {
        0 => format!("{n} B"),
        _ if v < 9.95 => format!("{v:.1} {name}"),
        _ => format!("{v:.0} {name}"),
    }
}

/// Words joined by ", " and wrapped at [`WIDTH`], each line after the first indented.
fn wrapped(out: &mut dyn Write, first: &str, words: &[String]) -> Result<()> {
    let mut line = first.to_owned();
    for (i, w) in words.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if i > 0 && line.len() + sep.len() + w.len() > WIDTH {
            writeln!(out, "{line},")?;
            line = format!("    {w}");
        } else {
            line.push_str(sep);
            line.push_str(w);
        }
    }
    writeln!(out, "{line}")
}

fn sizes(out: &mut dyn Write, name: &str, h: &SizeHistogram) -> Result<()> {
    writeln!(
        out,
        "  {name:<14} avg {:>10.1}  p50 {:>10}  p99 {:>10}  max {:>10}",
        h.mean(),
        h.quantile(0.5),
        h.quantile(0.99),
        h.max
    )
}

/// Columns before the key in the top-key tables; the key gets the rest of [`WIDTH`].
const TOP_COLUMNS: usize = 2 + 2 + 1 + 6 + 1 + 11 + 1 + 8 + 1 + 9 + 1 + 8 + 2;

fn top(out: &mut dyn Write, title: &str, keys: &[TopKey]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}")?;
    writeln!(
        out,
        "  {:>2} {:<6} {:<11} {:>8} {:>9} {:>8}  key",
        "db", "type", "encoding", "bytes", "elements", "memory"
    )?;
    for k in keys {
        writeln!(
            out,
            "  {:>2} {:<6} {:<11} {:>8} {:>9} {:>8}  {}",
            k.db,
            k.type_name,
            k.encoding,
            compact_bytes(k.bytes),
            k.elements,
            compact_bytes(k.memory),
            fit(&top_key(k), WIDTH - TOP_COLUMNS)
        )?;
    }
    Ok(())
}

/// Writes the report of a run: the parts first when there are several, then the whole.
pub fn write_report(r: &Report, out: &mut dyn Write) -> Result<()> {
    if !r.parts.is_empty() {
        parts(&r.parts, out)?;
        writeln!(out)?;
    }
    write(&r.whole, out)
}

/// Columns of the parts table before the slots; these get the rest of [`WIDTH`].
const PART_COLUMNS: usize = 2 + 3 + 1 + 24 + 10 + 12 + 12 + 2;

/// The parts table, then each part's keys outside its manifest's slots.
fn parts(parts: &[PartStats], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "parts      {} files, reported as one below",
        parts.len()
    )?;
    writeln!(
        out,
        "  {:<3} {:<24}{:>10}{:>12}{:>12}  slots holding keys",
        "#", "file", "keys", "serialized", "memory"
    )?;
    for (i, p) in parts.iter().enumerate() {
        writeln!(
            out,
            "  {i:<3} {:<24}{:>10}{:>12}{:>12}  {}",
            fit(&shown_key(p.name.as_bytes()), 24),
            p.keys,
            human_bytes(p.bytes),
            human_bytes(p.memory),
            fit(&ranges_text(&p.slots), WIDTH - PART_COLUMNS)
        )?;
    }
    let checked: Vec<&PartStats> = parts
        .iter()
        .filter(|p| p.manifest_slots.is_some())
        .collect();
    if checked.is_empty() {
        return Ok(());
    }
    let outside: u64 = checked.iter().map(|p| p.outside.keys).sum();
    if outside == 0 {
        return writeln!(out, "  every key is in a slot its file's manifest gives it");
    }
    for p in checked.iter().filter(|p| p.outside.keys > 0) {
        let ranges = ranges_text(p.manifest_slots.as_deref().unwrap_or_default());
        writeln!(
            out,
            "  {}: {} keys outside its manifest's slots {}",
            fit(&shown_key(p.name.as_bytes()), 30),
            p.outside.keys,
            fit(&ranges, 20)
        )?;
        for (db, key, slot) in &p.outside.examples {
            writeln!(
                out,
                "    db{db} slot {slot:<6} {}",
                fit(&shown_key(key), WIDTH - 22)
            )?;
        }
    }
    Ok(())
}

/// Writes the whole report, section by section.
pub fn write(s: &Stats, out: &mut dyn Write) -> Result<()> {
    header(s, out)?;
    databases(s, out)?;
    types(s, out)?;
    sizes_and_top_keys(s, out)?;
    prefixes(s, out)?;
    ttl_and_slots(s, out)?;
    shard_split(s, out)?;
    modules_and_more(s, out)
}

/// The file, its format, checksum and AUX fields, and the totals.
fn header(s: &Stats, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "file       {} ({} bytes)",
        human_bytes(s.file_bytes),
        s.file_bytes
    )?;
    writeln!(out, "format     {} version {}", s.magic, s.rdb_version)?;
    writeln!(out, "checksum   {}", s.checksum)?;
    for (k, v) in &s.aux {
        let k = fit(&shown_key(k), 14);
        writeln!(out, "  aux {k:<14} {}", fit(&shown_key(v), WIDTH - 21))?;
    }
    let total_bytes = s.bytes();
    let total_mem = s.memory();
    writeln!(
        out,
        "keys       {}, {} serialized",
        s.keys,
        human_bytes(total_bytes)
    )?;
    writeln!(
        out,
        "memory     {} estimated ({:?} layout, {:?}; docs/memory-model.md)",
        human_bytes(total_mem),
        s.model.layout,
        s.model.allocator
    )?;
    writeln!(
        out,
        "now        {} ({} ms, from {})",
        utc(s.now_ms),
        s.now_ms,
        s.now_source
    )?;
    Ok(())
}

/// The rows of keys per database.
fn databases(s: &Stats, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "\ndatabases")?;
    writeln!(
        out,
        "  {:<6}{:>11}{:>11}{:>11}{:>13}{:>13}",
        "db", "keys", "expires", "expired", "serialized", "memory"
    )?;
    for (n, d) in s.sections.dbs.iter() {
        writeln!(
            out,
            "  {:<6}{:>11}{:>11}{:>11}{:>13}{:>13}",
            format!("db{n}"),
            d.keys,
            d.expires,
            d.expired,
            human_bytes(d.bytes),
            human_bytes(d.memory)
        )?;
    }
    Ok(())
}

/// Keys, elements, bytes and memory per type, and per encoding under each.
fn types(s: &Stats, out: &mut dyn Write) -> Result<()> {
    let total_bytes = s.bytes();
    let total_mem = s.memory();
    writeln!(out, "\ntypes and encodings")?;
    writeln!(
        out,
        "  {:<13}{:>11}{:>6}{:>12}{:>11}{:>6}{:>11}{:>6}",
        "", "keys", "%", "elements", "serialized", "%", "memory", "%"
    )?;
    for t in TYPES {
        let Some(tot) = s.sections.kinds.types.get(t) else {
            continue;
        };
        writeln!(
            out,
            "  {t:<13}{:>11}{:>6}{:>12}{:>11}{:>6}{:>11}{:>6}",
            tot.keys,
            pct(tot.keys, s.keys),
            tot.elements,
            human_bytes(tot.bytes),
            pct(tot.bytes, total_bytes),
            human_bytes(tot.memory),
            pct(tot.memory, total_mem)
        )?;
        for ((_, e), et) in s
            .sections
            .kinds
            .encodings
            .iter()
            .filter(|((ty, _), _)| *ty == t)
        {
            writeln!(
                out,
                "    {:<11}{:>11}{:>6}{:>12}{:>11}{:>6}{:>11}",
                fit(e, 11),
                et.keys,
                "",
                et.elements,
                human_bytes(et.bytes),
                "",
                human_bytes(et.memory)
            )?;
        }
    }
    Ok(())
}

/// The size distributions and the biggest keys three ways.
fn sizes_and_top_keys(s: &Stats, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "\nsizes in bytes (p50, p99: at most 12.5% above the exact value; avg, max exact)"
    )?;
    sizes(out, "key", &s.sections.sizes.keys)?;
    sizes(out, "value (file)", &s.sections.sizes.values)?;
    sizes(out, "memory", &s.sections.sizes.memory)?;
    sizes(out, "elements", &s.sections.sizes.elements)?;
    top(
        out,
        "biggest keys by bytes in the file (long keys cut; --json has them whole)",
        &s.sections.top.bytes.sorted(),
    )?;
    top(
        out,
        "biggest keys by elements",
        &s.sections.top.elements.sorted(),
    )?;
    top(
        out,
        "biggest keys by estimated memory",
        &s.sections.top.memory.sorted(),
    )?;
    Ok(())
}

/// The prefix breakdown, and what the caps left out of it.
fn prefixes(s: &Stats, out: &mut dyn Write) -> Result<()> {
    let total_bytes = s.bytes();
    writeln!(
        out,
        "\nkey prefixes (separators {:?}, depth {})",
        String::from_utf8_lossy(&s.options.separators),
        s.options.depth
    )?;
    writeln!(
        out,
        "  {:<38}{:>11}{:>6}{:>11}{:>6}",
        "prefix", "keys", "%", "serialized", "%"
    )?;
    for (depth, p, t) in s.sections.prefixes.biggest(s.options.top.max(10)) {
        let indent = "  ".repeat(depth.saturating_sub(1));
        let name = format!("{indent}{}", fit(&shown_key(&p), 38 - indent.len().min(30)));
        writeln!(
            out,
            "  {name:<38}{:>11}{:>6}{:>11}{:>6}",
            t.keys,
            pct(t.keys, s.keys),
            human_bytes(t.bytes),
            pct(t.bytes, total_bytes)
        )?;
    }
    if s.sections.prefixes.collapsed_keys > 0 {
        writeln!(
            out,
            "  ({} keys go on past a prefix of more than {} distinct next segments:\n   summed under that prefix's \"*\")",
            s.sections.prefixes.collapsed_keys,
            super::collect::MAX_CHILDREN
        )?;
    }
    if s.sections.prefixes.overflowed > 0 {
        writeln!(
            out,
            "  ({} keys met a new prefix once the breakdown held {} prefixes:\n   counted up to their parent only)",
            s.sections.prefixes.overflowed,
            super::collect::MAX_PREFIX_NODES
        )?;
    }
    Ok(())
}

/// Keys per time to live, the busiest hash slots and `{tag}`s.
fn ttl_and_slots(s: &Stats, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "\nTTL")?;
    for (name, n) in TTL_BUCKETS.iter().zip(s.sections.ttl.iter()) {
        writeln!(out, "  {name:<8} {n:>10} {:>6}", pct(*n, s.keys))?;
    }
    let used = s.sections.slots.keys.iter().filter(|&&k| k > 0).count();
    writeln!(out, "\nhash slots: {used} of 16384 hold keys")?;
    for (slot, k, b) in s.hottest_slots(5) {
        writeln!(out, "  slot {slot:<6} {k:>10} keys  {:>11}", human_bytes(b))?;
    }
    if s.sections.tags.tagged_keys > 0 {
        writeln!(
            out,
            "  {} keys carry a {{tag}} ({} distinct)",
            s.sections.tags.tagged_keys,
            s.sections.tags.map.len()
        )?;
        for (t, k, b) in s.top_tags(5) {
            let tag = format!("{{{}}}", fit(&shown_key(&t), 40));
            writeln!(out, "    {tag:<42} {k:>10} keys  {:>11}", human_bytes(b))?;
        }
    }
    Ok(())
}

/// How an even split into shards would balance.
fn shard_split(s: &Stats, out: &mut dyn Write) -> Result<()> {
    if let Some(b) = s.shard_balance(s.options.shards) {
        writeln!(
            out,
            "\nsplit into {} shards (even slot ranges, as redis-cli --cluster create)",
            b.keys.len()
        )?;
        writeln!(
            out,
            "  max/mean: keys {:.3}, bytes {:.3}, memory {:.3}",
            b.keys_ratio, b.bytes_ratio, b.memory_ratio
        )?;
        for (i, r) in b.ranges.iter().enumerate() {
            let ranges: Vec<String> = r.iter().map(|(a, z)| format!("{a}-{z}")).collect();
            writeln!(
                out,
                "  shard {i:<3} {:<14} {:>10} keys  {:>11}  mem {:>11}",
                fit(&ranges.join("+"), 14),
                b.keys.get(i).copied().unwrap_or(0),
                human_bytes(b.bytes.get(i).copied().unwrap_or(0)),
                human_bytes(b.memory.get(i).copied().unwrap_or(0))
            )?;
        }
    }
    Ok(())
}

/// Modules, function libraries, hash-field TTLs and streams, when the file has any.
fn modules_and_more(s: &Stats, out: &mut dyn Write) -> Result<()> {
    if !s.sections.modules.is_empty() || !s.module_aux.is_empty() {
        writeln!(out, "\nmodules")?;
        for (m, n) in s.sections.modules.iter() {
            writeln!(out, "  {:<12} {n:>10} keys", fit(m, 40))?;
        }
        if !s.module_aux.is_empty() {
            let names: Vec<String> = s.module_aux.iter().map(|m| fit(m, 40)).collect();
            wrapped(out, "  aux records: ", &names)?;
        }
    }
    if !s.functions.is_empty() {
        let names: Vec<String> = s
            .functions
            .iter()
            .map(|f| fit(&shown_key(f.as_bytes()), 40))
            .collect();
        wrapped(
            out,
            &format!("\nfunctions: {} libraries: ", s.functions.len()),
            &names,
        )?;
    }
    if s.sections.field_ttls.keys > 0 {
        writeln!(
            out,
            "\nhash field TTLs: {} keys, {} fields with a TTL",
            s.sections.field_ttls.keys, s.sections.field_ttls.fields
        )?;
    }
    if s.sections.streams.keys > 0 {
        let st = &s.sections.streams;
        writeln!(out, "\nstreams: {} keys, {} entries", st.keys, st.entries)?;
        writeln!(
            out,
            "  {} groups, {} consumers, {} pending (max {} in one group)",
            st.groups, st.consumers, st.pending, st.max_pending
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_102_444_800_000), "2100-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        let _ = (utc(i64::MAX), utc(i64::MIN));
    }

    #[test]
    fn fit_keeps_both_ends() {
        assert_eq!(fit("user:1234567890:name", 12), "user:...name");
        assert_eq!(fit("short", 12), "short");
    }
}
