//! The terminal report.

use std::io::{Result, Write};

use super::collect::{SizeHistogram, Stats, TopKey, TTL_BUCKETS, TYPES};

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

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
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

fn top(out: &mut dyn Write, title: &str, keys: &[TopKey]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}")?;
    writeln!(
        out,
        "  {:>3} {:<48} {:<7} {:<12} {:>10} {:>10} {:>11}",
        "db", "key", "type", "encoding", "bytes", "elements", "memory"
    )?;
    for k in keys {
        writeln!(
            out,
            "  {:>3} {:<48} {:<7} {:<12} {:>10} {:>10} {:>11}",
            k.db,
            shown_key(&k.key),
            k.type_name,
            k.encoding,
            k.bytes,
            k.elements,
            human_bytes(k.memory)
        )?;
    }
    Ok(())
}

/// Writes the whole report.
pub fn write(s: &Stats, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "file       {} ({})",
        human_bytes(s.file_bytes),
        s.file_bytes
    )?;
    writeln!(out, "format     {} version {}", s.magic, s.rdb_version)?;
    writeln!(out, "checksum   {}", s.checksum)?;
    for (k, v) in &s.aux {
        let v = shown_key(v);
        writeln!(out, "  aux {:<14} {v}", shown_key(k))?;
    }
    let total_bytes = s.bytes();
    let total_mem = s.memory();
    writeln!(
        out,
        "keys       {}   serialized {}   estimated memory {} ({:?}, {:?})",
        s.keys,
        human_bytes(total_bytes),
        human_bytes(total_mem),
        s.model.layout,
        s.model.allocator
    )?;
    writeln!(out, "now        {} ms ({})", s.now_ms, s.now_source)?;
    writeln!(out, "\ndatabases")?;
    for (n, d) in &s.dbs {
        writeln!(
            out,
            "  db{n:<4} {:>10} keys  {:>10} with expiry  {:>8} expired  {:>10}  mem {:>10}",
            d.keys,
            d.expires,
            d.expired,
            human_bytes(d.bytes),
            human_bytes(d.memory)
        )?;
    }
    writeln!(out, "\ntypes and encodings")?;
    writeln!(
        out,
        "  {:<22} {:>10} {:>7} {:>12} {:>11} {:>7} {:>11} {:>7}",
        "", "keys", "", "elements", "bytes", "", "memory", ""
    )?;
    for t in TYPES {
        let Some(tot) = s.types.get(t) else { continue };
        writeln!(
            out,
            "  {t:<22} {:>10} {:>7} {:>12} {:>11} {:>7} {:>11} {:>7}",
            tot.keys,
            pct(tot.keys, s.keys),
            tot.elements,
            human_bytes(tot.bytes),
            pct(tot.bytes, total_bytes),
            human_bytes(tot.memory),
            pct(tot.memory, total_mem)
        )?;
        for ((_, e), et) in s.encodings.iter().filter(|((ty, _), _)| *ty == t) {
            writeln!(
                out,
                "    {e:<20} {:>10} {:>7} {:>12} {:>11} {:>7} {:>11}",
                et.keys,
                "",
                et.elements,
                human_bytes(et.bytes),
                "",
                human_bytes(et.memory)
            )?;
        }
    }
    writeln!(out, "\nsizes (bytes; quantiles within 12.5%)")?;
    sizes(out, "key", &s.key_sizes)?;
    sizes(out, "value (file)", &s.value_sizes)?;
    sizes(out, "memory", &s.memory_sizes)?;
    sizes(out, "elements", &s.elements)?;
    top(
        out,
        "biggest keys by bytes in the file",
        &s.top_bytes.sorted(),
    )?;
    top(out, "biggest keys by elements", &s.top_elements.sorted())?;
    top(
        out,
        "biggest keys by estimated memory",
        &s.top_memory.sorted(),
    )?;
    writeln!(
        out,
        "\nkey prefixes (separators {:?}, depth {})",
        String::from_utf8_lossy(&s.options.separators),
        s.options.depth
    )?;
    for (depth, p, t) in s.prefixes.biggest(s.options.top.max(10)) {
        let indent = "  ".repeat(depth);
        let name = format!("{indent}{}", shown_key(&p));
        writeln!(
            out,
            "  {name:<50} {:>10} keys {:>7}  {:>11} {:>7}",
            t.keys,
            pct(t.keys, s.keys),
            human_bytes(t.bytes),
            pct(t.bytes, total_bytes)
        )?;
    }
    if s.prefixes.overflowed > 0 {
        writeln!(
            out,
            "  ({} keys past the {}-node or {}-children cap are under \"(other)\")",
            s.prefixes.overflowed,
            super::collect::MAX_PREFIX_NODES,
            super::collect::MAX_CHILDREN
        )?;
    }
    writeln!(out, "\nTTL")?;
    for (name, n) in TTL_BUCKETS.iter().zip(s.ttl.iter()) {
        writeln!(out, "  {name:<8} {n:>10} {:>7}", pct(*n, s.keys))?;
    }
    let used = s.slot_keys.iter().filter(|&&k| k > 0).count();
    writeln!(out, "\nhash slots: {used} of 16384 hold keys")?;
    for (slot, k, b) in s.hottest_slots(5) {
        writeln!(out, "  slot {slot:<6} {k:>10} keys  {:>11}", human_bytes(b))?;
    }
    if s.tagged_keys > 0 {
        writeln!(
            out,
            "  {} keys carry a {{tag}} ({} distinct)",
            s.tagged_keys,
            s.tags.len()
        )?;
        for (t, k, b) in s.top_tags(5) {
            writeln!(
                out,
                "    {{{}}} {k:>10} keys  {:>11}",
                shown_key(&t),
                human_bytes(b)
            )?;
        }
    }
    if let Some(b) = s.shard_balance(s.options.shards) {
        writeln!(
            out,
            "\nsplit into {} shards (even slot ranges): max/mean keys {:.3}, bytes {:.3}, memory {:.3}",
            b.keys.len(),
            b.keys_ratio,
            b.bytes_ratio,
            b.memory_ratio
        )?;
        for (i, r) in b.ranges.iter().enumerate() {
            let ranges: Vec<String> = r.iter().map(|(a, z)| format!("{a}-{z}")).collect();
            writeln!(
                out,
                "  shard {i:<3} {:<14} {:>10} keys  {:>11}  mem {:>11}",
                ranges.join("+"),
                b.keys.get(i).copied().unwrap_or(0),
                human_bytes(b.bytes.get(i).copied().unwrap_or(0)),
                human_bytes(b.memory.get(i).copied().unwrap_or(0))
            )?;
        }
    }
    if !s.modules.is_empty() || !s.module_aux.is_empty() {
        writeln!(out, "\nmodules")?;
        for (m, n) in &s.modules {
            writeln!(out, "  {m:<12} {n:>10} keys")?;
        }
        if !s.module_aux.is_empty() {
            writeln!(out, "  aux records: {}", s.module_aux.join(", "))?;
        }
    }
    if !s.functions.is_empty() {
        writeln!(
            out,
            "\nfunctions: {} libraries ({})",
            s.functions.len(),
            s.functions.join(", ")
        )?;
    }
    if s.field_ttl_keys > 0 {
        writeln!(
            out,
            "\nhash field TTLs: {} keys, {} fields with a TTL",
            s.field_ttl_keys, s.field_ttl_fields
        )?;
    }
    if s.streams.keys > 0 {
        let st = &s.streams;
        writeln!(
            out,
            "\nstreams: {} keys, {} entries, {} groups, {} consumers, {} pending (max {} in one group)",
            st.keys, st.entries, st.groups, st.consumers, st.pending, st.max_pending
        )?;
    }
    Ok(())
}
