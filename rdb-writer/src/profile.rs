//! Target profiles: what a destination server or managed service can load, named as users
//! name their targets. Facts: `shared/docs/azure-import.md` §7 and `rdb-format.md`.

use rdb_parser::format::Version;

/// Whether a target loads module values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleSupport {
    /// The service has no modules at all (classic Azure tiers, ElastiCache, Memorystore).
    None,
    /// Only the modules the operator loads (self-hosted servers): kept by default.
    Loaded,
    /// RedisJSON, RediSearch, RedisBloom, RedisTimeSeries as enabled at creation.
    Bundled,
}

/// What one target can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProfile {
    pub name: &'static str,
    /// The header the output is written with: the newest format the target reads.
    pub version: Version,
    pub description: &'static str,
    /// Databases the target keeps: `Some(1)` means db 0 only (cluster modes).
    pub databases: Option<u64>,
    pub modules: ModuleSupport,
    /// Vector sets (`VADD`), built into Redis 8.0+: the newest HNSW node serialization
    /// version the target's loader reads (0 for 8.0-8.4, 1 for 8.6), `None` without them.
    pub vector_sets: Option<u8>,
}

const fn profile(
    name: &'static str,
    version: Version,
    databases: Option<u64>,
    modules: ModuleSupport,
    description: &'static str,
) -> TargetProfile {
    TargetProfile {
        name,
        version,
        description,
        databases,
        modules,
        vector_sets: None,
    }
}

/// A profile of a Redis with vector sets built in, loading nodes up to `node_version`.
const fn with_vector_sets(mut p: TargetProfile, node_version: u8) -> TargetProfile {
    p.vector_sets = Some(node_version);
    p
}

use ModuleSupport::{Bundled, Loaded, None as NoModules};

/// Every named profile.
pub const PROFILES: &[TargetProfile] = &[
    profile("redis-5.0", Version::redis(9), Some(16), Loaded, "Redis 5.0 (RDB 9)"),
    profile("redis-6.0", Version::redis(9), Some(16), Loaded, "Redis 6.0 (RDB 9)"),
    profile("redis-6.2", Version::redis(9), Some(16), Loaded, "Redis 6.2 (RDB 9)"),
    profile("redis-7.0", Version::redis(10), Some(16), Loaded, "Redis 7.0 (RDB 10)"),
    profile("redis-7.2", Version::redis(11), Some(16), Loaded, "Redis 7.2 (RDB 11)"),
    profile("redis-7.4", Version::redis(12), Some(16), Loaded, "Redis 7.4 (RDB 12, hash-field TTLs)"),
    with_vector_sets(profile("redis-8.0", Version::redis(12), Some(16), Loaded, "Redis 8.0-8.4 (RDB 12, vector sets)"), 0),
    with_vector_sets(profile("redis-8.6", Version::redis(13), Some(16), Loaded, "Redis 8.6 (RDB 13, stream IDMP state, vector sets)"), 1),
    profile("valkey-7.2", Version::redis(11), Some(16), Loaded, "Valkey 7.2 (RDB 11)"),
    profile("valkey-8.0", Version::redis(11), Some(16), Loaded, "Valkey 8.0 (RDB 11)"),
    profile("valkey-8.1", Version::redis(11), Some(16), Loaded, "Valkey 8.1 (RDB 11)"),
    profile("valkey-9.0", Version::valkey(80), Some(16), Loaded, "Valkey 9.x (VALKEY080, hash-field TTLs)"),
    profile(
        "azure-cache-premium",
        Version::redis(9),
        Some(16),
        NoModules,
        "Azure Cache for Redis Premium, non-clustered (Redis 6.0, RDB 9)",
    ),
    profile(
        "azure-cache-premium-clustered",
        Version::redis(9),
        Some(1),
        NoModules,
        "Azure Cache for Redis Premium, clustered: db 0 only, others silently dropped by the service",
    ),
    profile(
        "azure-managed-redis",
        Version::redis(12),
        Some(1),
        Bundled,
        "Azure Managed Redis (Redis 7.4, RDB 12, db 0)",
    ),
    profile(
        "elasticache-6.2",
        Version::redis(9),
        Some(16),
        NoModules,
        "AWS ElastiCache Redis OSS 6.x (RDB 9; cluster mode needs db 0 only)",
    ),
    profile(
        "elasticache-7.1",
        Version::redis(10),
        Some(16),
        NoModules,
        "AWS ElastiCache Redis OSS 7.0/7.1 (RDB 10; cluster mode needs db 0 only)",
    ),
    profile(
        "elasticache-valkey-8",
        Version::redis(11),
        Some(16),
        NoModules,
        "AWS ElastiCache Valkey 7.2/8.x (RDB 11; cluster mode needs db 0 only)",
    ),
    profile(
        "memorystore-7.2",
        Version::redis(11),
        Some(16),
        NoModules,
        "GCP Memorystore for Redis 7.2 (RDB 11)",
    ),
];

impl TargetProfile {
    /// Looks a profile up by name.
    pub fn named(name: &str) -> Option<&'static TargetProfile> {
        PROFILES.iter().find(|p| p.name == name)
    }

    /// A bare format version (`--rdb-version N`): 9 to 13, or 80 for `VALKEY080`.
    pub fn for_version(number: u32) -> Option<TargetProfile> {
        let version = match number {
            9..=13 => Version::redis(number),
            80 => Version::valkey(80),
            _ => return None,
        };
        Some(TargetProfile {
            name: "custom",
            version,
            description: "a bare RDB version",
            databases: None,
            modules: ModuleSupport::Loaded,
            // RDB 12 is also Redis 7.4's, which has no vector sets: the bare number is
            // taken as the Redis 8 that writes it, as with the modules its operator loads.
            vector_sets: match number {
                12 => Some(0),
                13 => Some(1),
                _ => None,
            },
        })
    }

    /// Whether the target can hold per-field hash TTLs.
    pub fn field_ttls(&self) -> bool {
        is_valkey(self.version) || self.version.number >= 12
    }

    /// Whether the target runs a server older than Redis 6.2 (Redis 5.0, 6.0, and Azure
    /// Cache Premium on 6.0): RDB 9 does not tell them from 6.2, their loaders and
    /// commands do (no XGROUP CREATECONSUMER; an LZF string declaring length 0 refused).
    pub fn before_redis_6_2(&self) -> bool {
        matches!(self.name, "redis-5.0" | "redis-6.0")
            || self.name.starts_with("azure-cache-premium")
            || (!is_valkey(self.version) && self.version.number < 9)
    }

    /// Whether the target can hold function libraries.
    pub fn functions(&self) -> bool {
        is_valkey(self.version) || self.version.number >= 10
    }

    /// Whether the target loads a value stored with `type_id` as is.
    pub fn loads_type(&self, type_id: u8) -> bool {
        use rdb_parser::format::type_id as t;
        let v = self.version.number;
        let valkey = is_valkey(self.version);
        match type_id {
            t::STRING | t::LIST | t::SET | t::ZSET | t::HASH => true,
            t::HASH_ZIPMAP | t::LIST_ZIPLIST | t::SET_INTSET | t::ZSET_ZIPLIST => v >= 2,
            t::HASH_ZIPLIST => v >= 4,
            t::LIST_QUICKLIST => v >= 7,
            t::ZSET_2 | t::MODULE_2 => v >= 8,
            t::STREAM_LISTPACKS => v >= 9,
            t::HASH_LISTPACK | t::ZSET_LISTPACK | t::LIST_QUICKLIST_2 | t::STREAM_LISTPACKS_2 => {
                v >= 10
            }
            t::SET_LISTPACK | t::STREAM_LISTPACKS_3 => v >= 11,
            // Redis 7.4 GA hash-field TTL types; Valkey reads none of 22..=25 from Redis.
            t::HASH_METADATA | t::HASH_LISTPACK_EX => !valkey && v >= 12,
            // Redis 8.6 streams with IDMP state; Valkey has no IDMP.
            t::STREAM_LISTPACKS_4 => !valkey && v >= 13,
            _ => false,
        }
    }
}

/// Whether a version is Valkey's own numbering (`VALKEY` magic).
pub fn is_valkey(v: Version) -> bool {
    v.magic == rdb_parser::Magic::Valkey
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdb_parser::format::type_id;

    #[test]
    fn names_are_unique_and_found() {
        for p in PROFILES {
            assert_eq!(TargetProfile::named(p.name).map(|x| x.name), Some(p.name));
        }
        assert!(TargetProfile::named("redis-9.9").is_none());
    }

    #[test]
    fn capabilities() {
        let r6 = TargetProfile::named("redis-6.2").cloned();
        let r6 = r6.as_ref();
        assert_eq!(
            r6.map(|p| p.loads_type(type_id::HASH_LISTPACK)),
            Some(false)
        );
        assert_eq!(
            r6.map(|p| p.loads_type(type_id::STREAM_LISTPACKS)),
            Some(true)
        );
        assert_eq!(r6.map(TargetProfile::functions), Some(false));
        let r86 = TargetProfile::named("redis-8.6");
        assert_eq!(
            r86.map(|p| (p.version.number, p.loads_type(type_id::STREAM_LISTPACKS_4))),
            Some((13, true))
        );
        let r80 = TargetProfile::named("redis-8.0");
        assert_eq!(
            r80.map(|p| p.loads_type(type_id::STREAM_LISTPACKS_4)),
            Some(false)
        );
        assert_eq!(r80.and_then(|p| p.vector_sets), Some(0));
        assert_eq!(r86.and_then(|p| p.vector_sets), Some(1));
        for name in ["redis-7.4", "valkey-9.0", "azure-managed-redis"] {
            assert_eq!(
                TargetProfile::named(name).map(|p| p.vector_sets),
                Some(None),
                "{name}"
            );
        }
        let v9 = TargetProfile::named("valkey-9.0");
        assert_eq!(
            v9.map(|p| p.loads_type(type_id::HASH_METADATA)),
            Some(false)
        );
        assert_eq!(v9.map(TargetProfile::field_ttls), Some(true));
        let r74 = TargetProfile::named("redis-7.4");
        assert_eq!(
            r74.map(|p| p.loads_type(type_id::HASH_LISTPACK_EX)),
            Some(true)
        );
    }
}
