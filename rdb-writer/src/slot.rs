//! Cluster hash slots and how they are spread over shards.
//!
//! ```text
//! slot = CRC16-XMODEM(tag or key) mod 16384
//! tag  = bytes between the first '{' and the first '}' after it, when not empty
//! ```

/// The number of cluster hash slots.
pub const SLOTS: usize = 16384;

// Slice-by-16: a 16-byte key is one step of 16 independent lookups, not 16 dependent ones
// (8 KiB of tables; stats spent 8% of its CPU here byte by byte).
const XMODEM: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_XMODEM);

/// The cluster hash slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    (crc16(hash_tag(key)) as usize % SLOTS) as u16
}

/// CRC16-XMODEM starts from 0 and zero bytes leave a 0 register at 0, so zeros put in
/// front change nothing: a short key padded to whole 16-byte blocks takes one or two
/// steps of the slice-by-16 tables instead of a dependent lookup per byte.
fn crc16(bytes: &[u8]) -> u16 {
    const PADDED: usize = 64;
    let len = bytes.len();
    if len == 0 || len > PADDED || len % 16 == 0 {
        return XMODEM.checksum(bytes);
    }
    let mut block = [0u8; PADDED];
    let from = PADDED - len.next_multiple_of(16);
    match block.get_mut(PADDED - len..) {
        Some(tail) => tail.copy_from_slice(bytes),
        None => return XMODEM.checksum(bytes),
    }
    XMODEM.checksum(block.get(from..).unwrap_or(bytes))
}

/// The part of the key that is hashed: its first non-empty `{tag}`, or the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = key.get(open + 1..).unwrap_or_default();
    match after.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => after.get(..close).unwrap_or(key),
        _ => key,
    }
}

/// An inclusive range of slots.
pub type SlotRange = (u16, u16);

/// Which shard owns each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// The ranges of each shard, in shard order.
    pub shards: Vec<Vec<SlotRange>>,
    owner: Vec<u16>,
}

/// Marks a slot no shard owns.
const NOBODY: u16 = u16::MAX;

impl SlotMap {
    /// Builds the map from each shard's ranges. Every slot must belong to exactly one shard.
    pub fn new(shards: Vec<Vec<SlotRange>>) -> Result<SlotMap, String> {
        if shards.is_empty() || shards.len() >= NOBODY as usize {
            return Err(format!("{} shards: give between 1 and 16384", shards.len()));
        }
        let mut owner = vec![NOBODY; SLOTS];
        for (i, ranges) in shards.iter().enumerate() {
            for &(a, b) in ranges {
                if a > b || b as usize >= SLOTS {
                    return Err(format!("slot range {a}-{b} is not within 0-16383"));
                }
                for slot in a..=b {
                    let cell = owner.get_mut(slot as usize).ok_or("slot out of range")?;
                    if *cell != NOBODY {
                        return Err(format!("slot {slot} is given to shards {} and {i}", *cell));
                    }
                    *cell = i as u16;
                }
            }
        }
        if let Some(missing) = owner.iter().position(|&o| o == NOBODY) {
            return Err(format!(
                "slot {missing} belongs to no shard; every slot 0-16383 needs an owner"
            ));
        }
        Ok(SlotMap { shards, owner })
    }

    /// `n` contiguous ranges, split as `redis-cli --cluster create` assigns them.
    pub fn even(n: usize) -> Result<SlotMap, String> {
        if n == 0 || n > SLOTS {
            return Err(format!("{n} shards: give between 1 and 16384"));
        }
        let per = SLOTS as f32 / n as f32;
        let (mut first, mut cursor) = (0i64, 0f32);
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let mut last = (cursor + per - 1.0).round() as i64;
            if last > SLOTS as i64 - 1 || i == n - 1 {
                last = SLOTS as i64 - 1;
            }
            last = last.max(first);
            shards.push(vec![(first as u16, last as u16)]);
            first = last + 1;
            cursor += per;
        }
        SlotMap::new(shards)
    }

    /// `0-5460,5461-10922,10923-16383`: shards separated by commas, several ranges of one
    /// shard joined by `+`, a single slot written alone.
    pub fn parse(spec: &str) -> Result<SlotMap, String> {
        let mut shards = Vec::new();
        for shard in spec.split(',') {
            let mut ranges = Vec::new();
            for part in shard.split('+') {
                ranges.push(parse_range(part.trim())?);
            }
            shards.push(ranges);
        }
        SlotMap::new(shards)
    }

    /// The masters' slots from the output of `CLUSTER NODES`, or of `CLUSTER SHARDS` as
    /// JSON (`[{"slots": [start, end, ...], ...}, ...]`), in the order the file lists them.
    pub fn from_cluster_nodes(text: &str) -> Result<SlotMap, String> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            return Self::from_cluster_shards_json(trimmed);
        }
        let mut shards = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2).copied().unwrap_or_default();
            if !flags.split(',').any(|f| f == "master") || fields.len() < 8 {
                continue;
            }
            let mut ranges = Vec::new();
            // Slots start at field 9; `[slot->-node]` entries are migrations in flight.
            for part in fields.iter().skip(8).filter(|p| !p.starts_with('[')) {
                ranges.push(parse_range(part)?);
            }
            if !ranges.is_empty() {
                shards.push(ranges);
            }
        }
        SlotMap::new(shards)
    }

    fn from_cluster_shards_json(text: &str) -> Result<SlotMap, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not CLUSTER SHARDS JSON: {e}"))?;
        let list = doc
            .as_array()
            .ok_or("CLUSTER SHARDS JSON must be a list of shards")?;
        let mut shards = Vec::new();
        for shard in list {
            let slots = shard
                .get("slots")
                .and_then(|s| s.as_array())
                .ok_or("a shard without a \"slots\" list")?;
            let nums: Vec<u64> = slots.iter().filter_map(|v| v.as_u64()).collect();
            let ranges: Vec<SlotRange> = nums
                .chunks(2)
                .filter_map(|c| match c {
                    [a, b] if *b < SLOTS as u64 => Some((*a as u16, *b as u16)),
                    _ => None,
                })
                .collect();
            if !ranges.is_empty() {
                shards.push(ranges);
            }
        }
        SlotMap::new(shards)
    }

    /// The shard owning `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        self.owner.get(slot as usize).copied().unwrap_or(0) as usize
    }

    /// The shard owning `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.owner(key_slot(key))
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

fn parse_range(part: &str) -> Result<SlotRange, String> {
    let num = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("{part:?} is not a slot or slot range (a-b)"))
    };
    match part.split_once('-') {
        Some((a, b)) => Ok((num(a)?, num(b)?)),
        None => num(part).map(|s| (s, s)),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        assert_eq!(XMODEM.checksum(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(hash_tag(b"{user1}.a"), b"user1");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(key_slot(b"{user1}.a"), key_slot(b"{user1}.b"));
    }

    /// Zeros in front of a short key change no CRC: every length, padded or not.
    #[test]
    fn padded_crc_is_the_crc() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..=bytes.len() {
            let b = &bytes[..len];
            assert_eq!(crc16(b), XMODEM.checksum(b), "length {len}");
        }
    }

    #[test]
    fn redis_cli_split() {
        let m = SlotMap::even(3).map(|m| m.shards);
        assert_eq!(
            m,
            Ok(vec![
                vec![(0, 5460)],
                vec![(5461, 10922)],
                vec![(10923, 16383)]
            ])
        );
        for n in [1, 2, 5, 7, 16, 1000] {
            assert!(SlotMap::even(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn parsing() {
        let m = SlotMap::parse("0-99+16000-16383,100-15999");
        assert_eq!(m.as_ref().map(|m| m.owner(16100)), Ok(0));
        assert_eq!(m.as_ref().map(|m| m.owner(100)), Ok(1));
        assert!(SlotMap::parse("0-100,100-16383").is_err(), "overlap");
        assert!(SlotMap::parse("0-100").is_err(), "gap");
        let nodes = "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                     67ed 127.0.0.1:30002@40002 master - 0 0 2 connected 5461-10922\n\
                     292f 127.0.0.1:30003@40003 master - 0 0 3 connected 10923-16383 [93->-67ed]\n\
                     6ec2 127.0.0.1:30004@40004 slave e7d1 0 0 1 connected\n";
        assert_eq!(SlotMap::from_cluster_nodes(nodes).map(|m| m.len()), Ok(3));
        let json = r#"[{"slots":[0,8191],"nodes":[]},{"slots":[8192,16383],"nodes":[]}]"#;
        assert_eq!(
            SlotMap::from_cluster_nodes(json).map(|m| m.owner(9000)),
            Ok(1)
        );
    }
}
