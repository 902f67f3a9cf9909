//! The HTML report: one self-contained page (inline CSS and SVG, one small inline script
//! that paints the slot heat map), nothing fetched from the network.
//!
//! Chart ids (the Chromium test looks for them): `chart-types`, `chart-encodings`,
//! `chart-key-sizes`, `chart-value-sizes`, `chart-ttl`, `chart-slots`, `chart-prefixes`,
//! `chart-shards`, `chart-memory-sizes`; tables `table-dbs`, `table-top` (by bytes),
//! `table-top-elements`, `table-top-memory`; panels `table-modules`, `table-functions`,
//! `table-streams`, `table-field-ttls`; with several files `table-parts`.

use std::fmt::Write as _;
use std::io::{Result, Write};

use super::collect::{SizeHistogram, Stats, TopKey, Totals, TTL_BUCKETS, TYPES};
use super::text::{human_bytes, shown_key, utc};
use super::whole::{ranges_text, PartStats, Report};

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn color(i: usize) -> &'static str {
    PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#888")
}

/// The colour of a type (its place in [`TYPES`]), so both stacked bars agree.
fn type_color(t: &str) -> String {
    color(TYPES.iter().position(|x| *x == t).unwrap_or(TYPES.len())).to_owned()
}

/// `hex` mixed with white by `t` (0..1): the encodings of one type in shades of its
/// colour, no two parts alike.
fn tint(hex: &str, t: f64) -> String {
    let channel = |i: usize| {
        let v = hex
            .get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(136);
        (f64::from(v) + (255.0 - f64::from(v)) * t).round() as u8
    };
    format!("#{:02x}{:02x}{:02x}", channel(1), channel(3), channel(5))
}

/// A key for the page: UTF-8 text as it is (a browser shows any script), anything
/// else, or text with control characters, as the terminal shows it (`\xNN`). Cut at
/// 200 characters. The caller escapes it for HTML.
fn page_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if !s.chars().any(char::is_control) => truncate(s, 200),
        _ => shown_key(k),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal stacked bar of labelled parts `(name, value, colour)`, with a legend.
fn stacked_bar(
    id: &str,
    title: &str,
    parts: &[(String, u64, String)],
    fmt: fn(u64) -> String,
) -> String {
    let total: u64 = parts.iter().map(|p| p.1).sum();
    let (w, h) = (1200.0, 36.0);
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {w} {}\" width=\"100%\" role=\"img\">",
        esc(title),
        h + 30.0 + 22.0 * parts.len().div_ceil(4) as f64
    );
    let mut x = 0.0;
    for (name, v, fill) in parts {
        let pw = if total == 0 {
            0.0
        } else {
            *v as f64 / total as f64 * w
        };
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{pw:.1}\" height=\"{h}\" fill=\"{fill}\">\
             <title>{}: {} ({:.1}%)</title></rect>",
            esc(name),
            fmt(*v),
            pct(*v, total)
        );
        // Only a label that fits inside its part (about 8 px a character): a longer
        // one would run under the next part.
        let room = ((pw - 12.0) / 8.0).max(0.0) as usize;
        if room >= 4 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"23\" class=\"in\">{}</text>",
                x + 6.0,
                esc(&truncate(name, room))
            );
        }
        x += pw;
    }
    for (i, (name, v, fill)) in parts.iter().enumerate() {
        let (lx, ly) = ((i % 4) as f64 * 300.0, h + 24.0 + (i / 4) as f64 * 22.0);
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{fill}\"/>\
             <text x=\"{}\" y=\"{}\">{} {} ({:.1}%)</text>",
            ly - 11.0,
            lx + 18.0,
            ly,
            esc(&truncate(name, 30)),
            fmt(*v),
            pct(*v, total)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn count(v: u64) -> String {
    v.to_string()
}

/// Vertical bars with a label under each.
fn bars(
    id: &str,
    title: &str,
    bars: &[(String, u64)],
    fill: &str,
    fmt: fn(u64) -> String,
) -> String {
    let (w, h, top, bottom) = (560.0, 252.0, 18.0, 52.0);
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let n = bars.len().max(1) as f64;
    let bw = (w - 20.0) / n;
    let mut svg = format!(
        "<figure class=\"chart half\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\">\
         <line x1=\"10\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>",
        esc(title),
        h - bottom,
        w - 10.0,
        h - bottom
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = *v as f64 / max as f64 * (h - top - bottom);
        let x = 10.0 + i as f64 * bw;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{fill}\">\
             <title>{}: {}</title></rect>",
            x + 2.0,
            h - bottom - bh,
            (bw - 4.0).max(1.0),
            esc(label),
            fmt(*v)
        );
        if *v > 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"val\">{}</text>",
                x + bw / 2.0,
                h - bottom - bh - 4.0,
                fmt(*v)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\" transform=\"rotate(-35 {:.1} {:.1})\">{}</text>",
            x + bw / 2.0,
            h - bottom + 14.0,
            x + bw / 2.0,
            h - bottom + 14.0,
            esc(label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn size_bars(id: &str, title: &str, h: &SizeHistogram, fill: &str) -> String {
    let octaves = h.octaves();
    let data: Vec<(String, u64)> = octaves
        .iter()
        .map(|&(lo, hi, n)| (size_label(lo, hi), n))
        .collect();
    // Ranges in units stop short of their upper bound: say so once, where they appear.
    let title = if octaves.iter().any(|o| o.1 >= 1024) {
        format!("{title} · 1K–2K is 1024 to 2047")
    } else {
        title.to_owned()
    };
    bars(id, &title, &data, fill, count)
}

/// The axis label of the size bucket `lo..=hi`. Exact bounds below 1 KiB (`4–7`, or one
/// value when `lo == hi`); above, powers of two read as the half-open range from the
/// bucket's low to the next bucket's low (`1K–2K`), since `hi` itself (2047) would
/// print as `1K` again.
fn size_label(lo: u64, hi: u64) -> String {
    if lo >= hi {
        short(lo)
    } else if hi < 1024 {
        format!("{lo}–{hi}")
    } else {
        // The last octave's top is u64::MAX - 1 (its bound saturates): open-ended.
        match hi.checked_add(2) {
            Some(_) => format!("{}–{}", short(lo), short(hi + 1)),
            None => format!("≥{}", short(lo)),
        }
    }
}

/// `v` in K/M/G/T/P/E when it is an exact multiple of that unit, else in the largest
/// unit it is a whole multiple of: no rounding, so two different bounds never print
/// alike.
fn short(v: u64) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let (mut v, mut unit) = (v, 0);
    while v >= 1024 && v % 1024 == 0 && unit + 1 < UNITS.len() {
        v /= 1024;
        unit += 1;
    }
    format!("{v}{}", UNITS.get(unit).copied().unwrap_or(""))
}

/// Squarified-enough treemap: slice-and-dice by alternating direction per depth.
fn treemap(s: &Stats) -> String {
    let (w, h) = (1200.0, 420.0);
    let mut svg = format!(
        "<figure class=\"chart\" id=\"chart-prefixes\"><figcaption>Key prefixes by bytes \
         (separators {}, depth {}; hover for numbers)</figcaption>\
         <svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\">",
        esc(&format!(
            "{:?}",
            String::from_utf8_lossy(&s.options.separators)
        )),
        s.options.depth
    );
    let total = s
        .sections
        .prefixes
        .nodes
        .first()
        .map_or(0, |r| r.totals.bytes);
    let mut color_index = 0;
    cell(
        s,
        0,
        0.0,
        0.0,
        w,
        h,
        true,
        total,
        &mut svg,
        &mut color_index,
        "",
        0,
    );
    svg.push_str("</svg></figure>");
    svg
}

#[allow(clippy::too_many_arguments)]
fn cell(
    s: &Stats,
    node: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    horizontal: bool,
    total: u64,
    svg: &mut String,
    color_index: &mut usize,
    prefix: &str,
    depth: usize,
) {
    let Some(n) = s.sections.prefixes.nodes.get(node) else {
        return;
    };
    let mut kids: Vec<(usize, Totals, &[u8])> = n
        .children
        .values()
        .filter_map(|&c| {
            s.sections
                .prefixes
                .nodes
                .get(c)
                .map(|k| (c, k.totals, k.segment.as_slice()))
        })
        .collect();
    kids.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then_with(|| a.2.cmp(b.2)));
    kids.truncate(24);
    let in_kids: u64 = kids.iter().map(|k| k.1.bytes).sum();
    let rest = n.totals.bytes.saturating_sub(in_kids);
    let sum = n.totals.bytes.max(1) as f64;
    let mut offset = 0.0;
    let mut parts: Vec<(Option<usize>, String, Totals)> = kids
        .iter()
        .map(|(c, t, seg)| (Some(*c), format!("{prefix}{}", page_key(seg)), *t))
        .collect();
    if rest > 0 {
        let label = if depth == 0 {
            "(no prefix)".to_owned()
        } else {
            format!("{prefix}*")
        };
        parts.push((
            None,
            label,
            Totals {
                bytes: rest,
                ..Totals::default()
            },
        ));
    }
    for (child, label, t) in parts {
        let share = t.bytes as f64 / sum;
        let (cx, cy, cw, ch) = if horizontal {
            (x + offset * w, y, share * w, h)
        } else {
            (x, y + offset * h, w, share * h)
        };
        offset += share;
        if cw < 1.0 || ch < 1.0 {
            continue;
        }
        let recurse = child.is_some_and(|c| {
            s.sections
                .prefixes
                .nodes
                .get(c)
                .is_some_and(|k| !k.children.is_empty())
        }) && cw > 60.0
            && ch > 40.0;
        if depth == 0 {
            *color_index += 1;
        }
        let fill = color(*color_index);
        let opacity = 1.0 - 0.22 * depth as f64;
        let _ = write!(
            svg,
            "<g><rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{cw:.1}\" height=\"{ch:.1}\" \
             fill=\"{fill}\" fill-opacity=\"{opacity:.2}\" class=\"tm\">\
             <title>{}: {} keys, {} ({:.1}% of bytes)</title></rect>",
            esc(&label),
            t.keys,
            human_bytes(t.bytes),
            pct(t.bytes, total)
        );
        if cw > 50.0 && ch > 16.0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tml\">{}</text>",
                cx + 4.0,
                cy + 14.0,
                esc(&truncate(&label, (cw / 7.5) as usize))
            );
        }
        svg.push_str("</g>");
        if let (true, Some(c)) = (recurse, child) {
            cell(
                s,
                c,
                cx + 2.0,
                cy + 18.0,
                cw - 4.0,
                ch - 20.0,
                !horizontal,
                total,
                svg,
                color_index,
                &label,
                depth + 1,
            );
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn slot_map(s: &Stats) -> String {
    // Bytes per slot, painted by the inline script: 128 rows of 128 slots.
    let mut data = String::with_capacity(s.sections.slots.bytes.len() * 3);
    data.push('[');
    for (i, b) in s.sections.slots.bytes.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        let _ = write!(data, "{b}");
    }
    data.push(']');
    let used = s.sections.slots.keys.iter().filter(|&&k| k > 0).count();
    let hot: Vec<String> = s
        .hottest_slots(5)
        .iter()
        .map(|(slot, k, b)| format!("slot {slot}: {k} keys, {}", human_bytes(*b)))
        .collect();
    format!(
        "<figure class=\"chart half\" id=\"chart-slots\"><figcaption>Hash slots: bytes per slot \
         (128×128, slot 0 top left; {used} of 16384 used)</figcaption>\
         <canvas id=\"slot-canvas\" width=\"512\" height=\"512\"></canvas>\
         <p class=\"note\">Colour: bytes in the slot, from pale (few) to dark red (the \
         most, {} in one slot); grey: no keys. Hottest: {}</p>\
         <script>\n(function () {{\n  var bytes = {data};\n  var c = document.getElementById('slot-canvas');\n  var g = c.getContext('2d');\n  var max = 1;\n  for (var i = 0; i < bytes.length; i++) {{ if (bytes[i] > max) max = bytes[i]; }}\n  g.fillStyle = '#f4f4f6';\n  g.fillRect(0, 0, 512, 512);\n  for (var s = 0; s < bytes.length; s++) {{\n    if (!bytes[s]) continue;\n    var t = Math.sqrt(bytes[s] / max);\n    var r = Math.round(255 - t * 30), gr = Math.round(220 - t * 190), b = Math.round(120 - t * 100);\n    g.fillStyle = 'rgb(' + r + ',' + gr + ',' + b + ')';\n    g.fillRect((s % 128) * 4, Math.floor(s / 128) * 4, 4, 4);\n  }}\n  c.setAttribute('data-painted', 'yes');\n}})();\n</script></figure>",
        human_bytes(s.sections.slots.bytes.iter().copied().max().unwrap_or(0)),
        esc(&hot.join("; "))
    )
}

/// The key cell of a top list: the name for the page, and for a name the list keeps
/// only the start of, a mark that it is cut with the full length and digest (as the
/// text report shows it).
fn top_key_cell(k: &TopKey) -> String {
    let mut name = page_key(&k.key);
    match k.key_digest {
        Some(d) => {
            if !name.ends_with('…') && !name.ends_with("...") {
                name.push('…');
            }
            format!(
                "{}<span class=\"cut\"> (shortened: {} bytes, xxh3 {d:032x})</span>",
                esc(&name),
                k.key_len
            )
        }
        None => esc(&name),
    }
}

/// One top list: `rank` names the column it is ranked by, shown in bold.
fn top_table(id: &str, title: &str, keys: &[TopKey], rank: &str) -> String {
    let head = |name: &str, label: &str| {
        let class = if name == rank { "r rank" } else { "r" };
        format!("<th class=\"{class}\">{label}</th>")
    };
    let mut t = format!(
        "<section id=\"{id}\"><h2>{}</h2><table>\
         <thead><tr><th>#</th><th>db</th><th>key</th><th>type</th><th>encoding</th>{}{}{}\
         </tr></thead><tbody>",
        esc(title),
        head("bytes", "bytes"),
        head("elements", "elements"),
        head("memory", "est. memory")
    );
    let cell = |name: &str, v: String| {
        let class = if name == rank { "r rank" } else { "r" };
        format!("<td class=\"{class}\">{v}</td>")
    };
    for (i, k) in keys.iter().enumerate() {
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td class=\"k\">{}</td><td>{}</td><td>{}</td>{}{}{}</tr>",
            i + 1,
            k.db,
            top_key_cell(k),
            k.type_name,
            k.encoding,
            cell("bytes", k.bytes.to_string()),
            cell("elements", k.elements.to_string()),
            cell("memory", esc(&human_bytes(k.memory)))
        );
    }
    if keys.is_empty() {
        t.push_str("<tr><td colspan=\"8\" class=\"note\">No keys.</td></tr>");
    }
    t.push_str("</tbody></table></section>");
    t
}

/// A horizontal share bar for a table cell (a fraction of its column's whole).
fn share_cell(part: u64, whole: u64, fill: &str) -> String {
    format!(
        "<td class=\"share\"><div class=\"bar\"><div style=\"width:{:.1}%;background:{fill}\"></div></div>\
         <span>{:.1}%</span></td>",
        pct(part, whole),
        pct(part, whole)
    )
}

fn db_table(s: &Stats) -> String {
    let mut t = String::from(
        "<section id=\"table-dbs\"><h2>Databases</h2><table>\
         <thead><tr><th>db</th><th class=\"r\">keys</th><th class=\"r\">with expiry</th>\
         <th class=\"r\">expired</th><th class=\"r\">serialized</th>\
         <th class=\"r\">est. memory</th><th>share of memory</th></tr></thead><tbody>",
    );
    let total = s.memory();
    for (n, d) in s.sections.dbs.iter() {
        let _ = write!(
            t,
            "<tr><td>db{n}</td><td class=\"r\">{}</td><td class=\"r\">{}</td>\
             <td class=\"r\">{}</td><td class=\"r\">{}</td><td class=\"r\">{}</td>{}</tr>",
            d.keys,
            d.expires,
            d.expired,
            human_bytes(d.bytes),
            human_bytes(d.memory),
            share_cell(d.memory, total, "#4e79a7")
        );
    }
    if s.sections.dbs.is_empty() {
        t.push_str("<tr><td colspan=\"7\" class=\"note\">No keys in any database.</td></tr>");
    }
    t.push_str("</tbody></table></section>");
    t
}

/// The most names a list on the page shows; the rest are counted.
const MAX_NAMES: usize = 100;

/// A panel of label/value rows, or `empty` when there are none.
fn panel(id: &str, title: &str, rows: &[(&str, String)], extra: &str, empty: &str) -> String {
    let mut t = format!(
        "<section class=\"panel\" id=\"{id}\"><h2>{}</h2>",
        esc(title)
    );
    if rows.is_empty() && extra.is_empty() {
        let _ = write!(t, "<p class=\"note\">{}</p>", esc(empty));
    }
    if !rows.is_empty() {
        t.push_str("<table><tbody>");
        for (label, v) in rows {
            let _ = write!(
                t,
                "<tr><th>{}</th><td class=\"r\">{}</td></tr>",
                esc(label),
                esc(v)
            );
        }
        t.push_str("</tbody></table>");
    }
    t.push_str(extra);
    t.push_str("</section>");
    t
}

/// Names with how often each occurs, most frequent first (then by name), at most
/// [`MAX_NAMES`] rows; with a `count` column, or without when `count` is `None` (a name
/// then seen more than once shows "×n").
fn name_table(names: &[(String, u64)], name: &str, count: Option<&str>) -> String {
    let mut sorted: Vec<&(String, u64)> = names.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut t = format!("<table><thead><tr><th>{}</th>", esc(name));
    if let Some(c) = count {
        let _ = write!(t, "<th class=\"r\">{}</th>", esc(c));
    }
    t.push_str("</tr></thead><tbody>");
    for (n, c) in sorted.iter().take(MAX_NAMES) {
        let shown = esc(&page_key(n.as_bytes()));
        match count {
            Some(_) => {
                let _ = write!(
                    t,
                    "<tr><td class=\"k\">{shown}</td><td class=\"r\">{c}</td></tr>"
                );
            }
            None if *c > 1 => {
                let _ = write!(t, "<tr><td class=\"k\">{shown} ×{c}</td></tr>");
            }
            None => {
                let _ = write!(t, "<tr><td class=\"k\">{shown}</td></tr>");
            }
        }
    }
    if sorted.len() > MAX_NAMES {
        let _ = write!(
            t,
            "<tr><td colspan=\"2\" class=\"note\">and {} more</td></tr>",
            sorted.len() - MAX_NAMES
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// How often each name occurs in `names`.
fn tally(names: &[String]) -> Vec<(String, u64)> {
    let mut m: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for n in names {
        *m.entry(n.as_str()).or_default() += 1;
    }
    m.into_iter().map(|(n, c)| (n.to_owned(), c)).collect()
}

/// Modules, functions, streams and hash-field TTLs: one panel each, saying so when the
/// file has none.
fn contents(s: &Stats) -> String {
    let mut html = String::from("<div class=\"grid\">");
    let module_keys: u64 = s.sections.modules.values().sum();
    let mut extra = String::new();
    if !s.sections.modules.is_empty() {
        let types: Vec<(String, u64)> = s
            .sections
            .modules
            .iter()
            .map(|(m, n)| (m.clone(), *n))
            .collect();
        extra.push_str(&name_table(&types, "module type", Some("keys")));
    }
    if !s.module_aux.is_empty() {
        extra.push_str(&name_table(
            &tally(&s.module_aux),
            "module aux record",
            Some("records"),
        ));
    }
    let mut rows = Vec::new();
    if !extra.is_empty() {
        rows.push(("module keys", module_keys.to_string()));
        rows.push(("module types", s.sections.modules.len().to_string()));
        rows.push(("module aux records", s.module_aux.len().to_string()));
    }
    html.push_str(&panel(
        "table-modules",
        "Modules",
        &rows,
        &extra,
        "No module keys or module aux records.",
    ));

    let (rows, extra) = if s.functions.is_empty() {
        (Vec::new(), String::new())
    } else {
        (
            vec![("libraries", s.functions.len().to_string())],
            name_table(&tally(&s.functions), "library", None),
        )
    };
    html.push_str(&panel(
        "table-functions",
        "Functions",
        &rows,
        &extra,
        "No function libraries.",
    ));

    let st = &s.sections.streams;
    let rows = if st.keys == 0 {
        Vec::new()
    } else {
        vec![
            ("stream keys", st.keys.to_string()),
            ("entries", st.entries.to_string()),
            ("consumer groups", st.groups.to_string()),
            ("consumers", st.consumers.to_string()),
            ("pending entries", st.pending.to_string()),
            ("most pending in one group", st.max_pending.to_string()),
        ]
    };
    html.push_str(&panel(
        "table-streams",
        "Streams",
        &rows,
        "",
        "No stream keys.",
    ));

    let rows =
        if s.sections.field_ttls.keys == 0 && s.sections.field_ttls.fields_in_capable_hashes == 0 {
            Vec::new()
        } else {
            vec![
                (
                    "hashes with field TTLs",
                    s.sections.field_ttls.keys.to_string(),
                ),
                (
                    "fields with a TTL",
                    s.sections.field_ttls.fields.to_string(),
                ),
                (
                    "fields in hashes of a field-TTL encoding",
                    s.sections.field_ttls.fields_in_capable_hashes.to_string(),
                ),
                (
                    "share of those fields with a TTL",
                    format!(
                        "{:.1}%",
                        pct(
                            s.sections.field_ttls.fields,
                            s.sections.field_ttls.fields_in_capable_hashes
                        )
                    ),
                ),
            ]
        };
    html.push_str(&panel(
        "table-field-ttls",
        "Hash field TTLs",
        &rows,
        "",
        "No hash fields with a TTL.",
    ));
    html.push_str("</div>");
    html
}

fn shards(s: &Stats) -> String {
    let Some(b) = s.shard_balance(s.options.shards) else {
        return String::new();
    };
    let data: Vec<(String, u64)> = b
        .bytes
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("shard {i}"), *v))
        .collect();
    let mut html = bars(
        "chart-shards",
        &format!(
            "Even split into {} shards: bytes per shard (max/mean bytes {:.3}, keys {:.3})",
            b.keys.len(),
            b.bytes_ratio,
            b.keys_ratio
        ),
        &data,
        "#59a14f",
        human_bytes,
    );
    html.insert_str(0, "");
    html
}

/// The parts side by side, a column each: what each file holds, its slots, and the keys
/// outside the slots its manifest gives it.
fn parts_table(s: &Stats, parts: &[PartStats]) -> String {
    let mut t = String::from(
        "<section id=\"table-parts\"><h2>Parts (the report below is of all of them)</h2>\
         <table><thead><tr><th></th>",
    );
    for p in parts {
        let _ = write!(t, "<th class=\"k\">{}</th>", esc(&p.name));
    }
    t.push_str("</tr></thead><tbody>");
    let row = |t: &mut String, label: &str, cells: Vec<String>| {
        let _ = write!(t, "<tr><th>{label}</th>");
        for c in cells {
            let _ = write!(t, "<td class=\"r\">{c}</td>");
        }
        t.push_str("</tr>");
    };
    let of = |f: &dyn Fn(&PartStats) -> String| parts.iter().map(f).collect::<Vec<_>>();
    row(
        &mut t,
        "format",
        of(&|p| format!("{} {}", p.magic, p.rdb_version)),
    );
    row(&mut t, "file size", of(&|p| human_bytes(p.file_bytes)));
    row(&mut t, "keys", of(&|p| p.keys.to_string()));
    row(
        &mut t,
        "share of keys",
        of(&|p| format!("{:.1}%", pct(p.keys, s.keys))),
    );
    row(&mut t, "serialized", of(&|p| human_bytes(p.bytes)));
    row(&mut t, "est. memory", of(&|p| human_bytes(p.memory)));
    row(&mut t, "checksum", of(&|p| esc(&p.checksum)));
    row(&mut t, "slots holding keys", of(&|p| ranges_text(&p.slots)));
    if parts.iter().any(|p| p.manifest_slots.is_some()) {
        row(
            &mut t,
            "manifest slots",
            of(&|p| p.manifest_slots.as_deref().map_or("-".into(), ranges_text)),
        );
        row(
            &mut t,
            "keys outside them",
            of(&|p| {
                let mut c = p.outside.keys.to_string();
                for (db, key, slot) in &p.outside.examples {
                    let _ = write!(
                        c,
                        "<br><span class=\"k\">db{db} slot {slot}: {}</span>",
                        esc(&truncate(&page_key(key), 80))
                    );
                }
                c
            }),
        );
    }
    t.push_str("</tbody></table></section>");
    t
}

/// The page's header line and its cards of headline numbers.
fn header_and_cards(s: &Stats, title: &str) -> String {
    let mut body = String::new();
    let total_mem = s.memory();
    let _ = write!(
        body,
        "<header><h1>rdbkit stats: {}</h1><p>{} {} · {} · {} keys · serialized {} · \
         estimated memory {} ({:?}, {:?}) · checksum {}</p></header>",
        esc(title),
        s.magic,
        s.rdb_version,
        human_bytes(s.file_bytes),
        s.keys,
        human_bytes(s.bytes()),
        human_bytes(total_mem),
        s.model.layout,
        s.model.allocator,
        esc(&s.checksum)
    );
    body.push_str("<section class=\"cards\">");
    for (label, value) in [
        ("keys", s.keys.to_string()),
        ("databases", s.sections.dbs.len().to_string()),
        (
            "with expiry",
            s.sections
                .dbs
                .values()
                .map(|d| d.expires)
                .sum::<u64>()
                .to_string(),
        ),
        (
            "expired",
            s.sections
                .dbs
                .values()
                .map(|d| d.expired)
                .sum::<u64>()
                .to_string(),
        ),
        ("est. memory", human_bytes(total_mem)),
        match s.aux_value("valkey-ver") {
            Some(v) => ("valkey-ver", v),
            None => (
                "redis-ver",
                s.aux_value("redis-ver").unwrap_or_else(|| "-".into()),
            ),
        },
    ] {
        let _ = write!(
            body,
            "<div class=\"card\"><b>{}</b><span>{label}</span></div>",
            esc(&value)
        );
    }
    body.push_str("</section>");
    body
}

/// Writes the page: the whole, and with several files the parts side by side.
pub fn write(r: &Report, title: &str, out: &mut dyn Write) -> Result<()> {
    let s = &r.whole;
    let mut body = header_and_cards(s, title);
    if !r.parts.is_empty() {
        body.push_str(&parts_table(s, &r.parts));
    }
    body.push_str(&db_table(s));
    let types: Vec<(String, u64, String)> = TYPES
        .iter()
        .filter_map(|t| {
            s.sections
                .kinds
                .types
                .get(t)
                .map(|x| ((*t).to_owned(), x.memory, type_color(t)))
        })
        .collect();
    body.push_str(&stacked_bar(
        "chart-types",
        "Estimated memory by type",
        &types,
        human_bytes,
    ));
    // Grouped by type in report order, each type's encodings in shades of its colour.
    let mut encodings: Vec<(String, u64, String)> = Vec::new();
    for t in TYPES {
        let own: Vec<_> = s
            .sections
            .kinds
            .encodings
            .iter()
            .filter(|((ty, _), _)| *ty == t)
            .collect();
        for (i, ((_, e), x)) in own.iter().enumerate() {
            let shade = i as f64 * 0.55 / own.len().max(1) as f64;
            encodings.push((format!("{t}/{e}"), x.keys, tint(&type_color(t), shade)));
        }
    }
    body.push_str(&stacked_bar(
        "chart-encodings",
        "Keys by type and encoding",
        &encodings,
        count,
    ));
    body.push_str("<div class=\"row\">");
    body.push_str(&size_bars(
        "chart-key-sizes",
        "Keys per key size (bytes)",
        &s.sections.sizes.keys,
        "#4e79a7",
    ));
    body.push_str(&size_bars(
        "chart-value-sizes",
        "Keys per value size in the file (bytes)",
        &s.sections.sizes.values,
        "#f28e2b",
    ));
    body.push_str("</div><div class=\"row\">");
    let ttl: Vec<(String, u64)> = TTL_BUCKETS
        .iter()
        .zip(s.sections.ttl.iter())
        .map(|(n, c)| ((*n).to_owned(), *c))
        .collect();
    body.push_str(&bars(
        "chart-ttl",
        &format!(
            "Keys per time to live (now = {}, from {})",
            utc(s.now_ms),
            s.now_source
        ),
        &ttl,
        "#b07aa1",
        count,
    ));
    body.push_str(&shards(s));
    body.push_str("</div><div class=\"row\">");
    body.push_str(&slot_map(s));
    body.push_str(&size_bars(
        "chart-memory-sizes",
        "Keys per estimated memory (bytes)",
        &s.sections.sizes.memory,
        "#76b7b2",
    ));
    body.push_str("</div>");
    body.push_str(&treemap(s));
    body.push_str(&contents(s));
    body.push_str(&top_table(
        "table-top",
        "Biggest keys by bytes in the file",
        &s.sections.top.bytes.sorted(),
        "bytes",
    ));
    body.push_str(&top_table(
        "table-top-elements",
        "Biggest keys by elements",
        &s.sections.top.elements.sorted(),
        "elements",
    ));
    body.push_str(&top_table(
        "table-top-memory",
        "Biggest keys by estimated memory",
        &s.sections.top.memory.sorted(),
        "memory",
    ));
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>rdbkit stats: {}</title><style>{CSS}</style></head><body>{body}\
         <footer>Generated by rdbkit stats. Memory is an estimate of MEMORY USAGE \
         (docs/memory-model.md).</footer></body></html>\n",
        esc(title)
    );
    out.write_all(page.as_bytes())
}

const CSS: &str = "\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1280px;color:#222;background:#fff;padding:0 16px}\
h1{font-size:22px;margin:0 0 4px}header p{color:#555;margin:0 0 16px}\
h2{font-size:16px;margin:24px 0 8px}\
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}\
.card{border:1px solid #e3e3e8;border-radius:8px;padding:10px 16px;min-width:140px;background:#fafafc}\
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}\
.chart{margin:12px 0;border:1px solid #e3e3e8;border-radius:8px;padding:10px 12px;background:#fff}\
figcaption{font-weight:600;margin-bottom:6px}\
.row{display:flex;gap:16px}.row .half{flex:1;min-width:0}\
svg text{font-size:13px;fill:#333}svg text.in{fill:#fff;font-weight:600}\
svg text.val{font-size:11px;text-anchor:middle;fill:#444}svg text.lab{font-size:11px;text-anchor:end}\
.axis{stroke:#999}.tm{stroke:#fff;stroke-width:1}svg text.tml{font-size:12px;fill:#fff;font-weight:600}\
canvas{width:100%;max-width:512px;image-rendering:pixelated;border:1px solid #ddd}\
.note{color:#666;font-size:12px}\
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}\
th{background:#f4f4f6}td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.k{font-family:ui-monospace,monospace;word-break:break-all}\
th.rank,td.rank{font-weight:700}span.cut{color:#a33;font-family:system-ui,sans-serif;font-size:12px}\
td.share{width:180px;white-space:nowrap}.bar{display:inline-block;width:110px;height:10px;background:#eee;border-radius:3px;margin-right:8px;vertical-align:middle}\
.bar div{height:10px;border-radius:3px}td.share span{font-size:12px;color:#555}\
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin:12px 0}\
.panel{border:1px solid #e3e3e8;border-radius:8px;padding:10px 12px;min-width:0}.panel h2{margin:0 0 8px;font-size:14px}\
.panel table+table{margin-top:10px}.panel tbody th{background:none;font-weight:400;color:#555}\
footer{color:#888;font-size:12px;margin-top:24px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels_use_the_bucket_bounds() {
        assert_eq!(size_label(0, 0), "0");
        assert_eq!(size_label(1, 1), "1");
        assert_eq!(size_label(4, 7), "4–7");
        assert_eq!(size_label(512, 1023), "512–1023");
        assert_eq!(size_label(1024, 2047), "1K–2K");
        assert_eq!(size_label(1 << 19, (1 << 20) - 1), "512K–1M");
        assert_eq!(size_label(1 << 30, (1 << 31) - 1), "1G–2G");
        assert_eq!(size_label(1 << 63, u64::MAX - 1), "≥8E");
        assert_eq!(short(1536), "1536");
    }

    /// Every octave a histogram can hold gets its own label, and no range label has
    /// equal ends.
    #[test]
    fn every_octave_label_is_distinct() {
        let mut h = SizeHistogram::default();
        h.add(0);
        for bit in 0..64 {
            h.add(1u64 << bit);
            h.add((1u64 << bit).saturating_mul(2) - 1);
        }
        h.add(u64::MAX);
        let labels: Vec<String> = h
            .octaves()
            .iter()
            .map(|&(lo, hi, _)| size_label(lo, hi))
            .collect();
        assert_eq!(labels.len(), 65, "{labels:?}");
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
        for l in &labels {
            if let Some((a, b)) = l.split_once('–') {
                assert_ne!(a, b, "{l}");
            }
        }
    }
}
