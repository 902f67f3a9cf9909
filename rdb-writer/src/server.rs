//! A server's product and version, read from where rdbkit meets one: a snapshot's AUX
//! fields (`redis-ver`, `valkey-ver`) or a live server's `INFO server`. One type, so
//! that restore's choice of profile and the memory model read versions the same way.

use std::fmt;

use crate::profile::TargetProfile;

/// Which server wrote a snapshot or answers a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    Redis,
    Valkey,
}

/// `major.minor.patch` of a Redis or Valkey server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerVersion {
    pub product: Product,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServerVersion {
    /// `7.4.1` as `product` writes it; a missing or non-numeric part counts as 0.
    pub fn parse(product: Product, text: &str) -> ServerVersion {
        let mut parts = text
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        ServerVersion {
            product,
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
            patch: parts.next().unwrap_or(0),
        }
    }

    /// As a snapshot's AUX fields name it: `valkey-ver`, else `redis-ver` (a Valkey
    /// server writes both, and a VALKEY-magic file is Valkey's whichever it has).
    /// `None` when the file names no version.
    pub fn from_aux(
        valkey_magic: bool,
        valkey_ver: Option<&str>,
        redis_ver: Option<&str>,
    ) -> Option<ServerVersion> {
        match (valkey_ver, redis_ver) {
            (Some(v), _) => Some(ServerVersion::parse(Product::Valkey, v)),
            (None, Some(v)) if valkey_magic => Some(ServerVersion::parse(Product::Valkey, v)),
            (None, Some(v)) => Some(ServerVersion::parse(Product::Redis, v)),
            (None, None) => None,
        }
    }

    /// As `INFO server` says: `valkey_version`, or `redis_version` with
    /// `server_name:valkey` (Valkey 7.2), else `redis_version`. `None` without either.
    pub fn from_info(info: &str) -> Option<ServerVersion> {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        match (
            field("valkey_version"),
            field("server_name"),
            field("redis_version"),
        ) {
            (Some(v), _, _) | (None, Some("valkey"), Some(v)) => {
                Some(ServerVersion::parse(Product::Valkey, v))
            }
            (None, _, Some(v)) => Some(ServerVersion::parse(Product::Redis, v)),
            (None, _, None) => None,
        }
    }

    pub fn is_valkey(&self) -> bool {
        self.product == Product::Valkey
    }

    /// The named profile of this server: the newest one it is at or past. `None` for
    /// Redis before 5.0, which no profile covers.
    pub fn profile(&self) -> Option<&'static TargetProfile> {
        let name = match (self.product, self.major, self.minor) {
            (Product::Valkey, 9.., _) => "valkey-9.0",
            (Product::Valkey, 8, 1..) => "valkey-8.1",
            (Product::Valkey, 8, _) => "valkey-8.0",
            (Product::Valkey, _, _) => "valkey-7.2",
            (Product::Redis, 9.., _) | (Product::Redis, 8, 6..) => "redis-8.6",
            (Product::Redis, 8, _) => "redis-8.0",
            (Product::Redis, 7, 4..) => "redis-7.4",
            (Product::Redis, 7, 2..) => "redis-7.2",
            (Product::Redis, 7, _) => "redis-7.0",
            (Product::Redis, 6, 2..) => "redis-6.2",
            (Product::Redis, 6, _) => "redis-6.0",
            (Product::Redis, 5, _) => "redis-5.0",
            (Product::Redis, _, _) => return None,
        };
        TargetProfile::named(name)
    }
}

/// `redis 7.4.1`, `valkey 8.0.2`.
impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let product = match self.product {
            Product::Redis => "redis",
            Product::Valkey => "valkey",
        };
        write!(f, "{product} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_of(info: &str) -> Option<&'static str> {
        ServerVersion::from_info(info)
            .and_then(|v| v.profile())
            .map(|p| p.name)
    }

    #[test]
    fn info_server_names_the_product_and_its_profile() {
        assert_eq!(profile_of("redis_version:5.0.7\r\n"), Some("redis-5.0"));
        assert_eq!(profile_of("redis_version:6.2.5\r\n"), Some("redis-6.2"));
        assert_eq!(profile_of("redis_version:7.2.4\r\n"), Some("redis-7.2"));
        assert_eq!(profile_of("redis_version:8.6.3\r\n"), Some("redis-8.6"));
        assert_eq!(profile_of("redis_version:4.0.9\r\n"), None);
        assert_eq!(
            profile_of("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"),
            Some("valkey-8.0")
        );
        assert_eq!(
            profile_of("redis_version:7.2.4\r\nserver_name:valkey\r\n"),
            Some("valkey-7.2")
        );
        assert_eq!(profile_of("server_name:valkey\r\n"), None);
        let v = ServerVersion::from_info("redis_version:7.2.4\r\nvalkey_version:9.1.2\r\n");
        assert_eq!(v.map(|v| v.to_string()).as_deref(), Some("valkey 9.1.2"));
    }

    #[test]
    fn aux_fields_name_the_product() {
        let v = ServerVersion::from_aux(false, Some("8.1.0"), Some("7.2.4"));
        assert_eq!(
            v.map(|v| (v.is_valkey(), v.major, v.minor)),
            Some((true, 8, 1))
        );
        let v = ServerVersion::from_aux(true, None, Some("7.2.4"));
        assert_eq!(v.map(|v| v.is_valkey()), Some(true));
        let v = ServerVersion::from_aux(false, None, Some("7.4.x"));
        assert_eq!(
            v.map(|v| (v.is_valkey(), v.major, v.minor, v.patch)),
            Some((false, 7, 4, 0))
        );
        assert_eq!(ServerVersion::from_aux(true, None, None), None);
    }
}
