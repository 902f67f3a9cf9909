//! The Blob service requests `rdbkit upload` makes, with a SAS and nothing else:
//!
//! ```text
//! PUT  {blob}?comp=block&blockid=ID      Put Block       (Content-MD5 of the block)
//! GET  {blob}?comp=blocklist&blocklisttype=all           (resume: what is staged already)
//! PUT  {blob}?comp=blocklist             Put Block List  <BlockList><Latest>ID</Latest>...
//! PUT  {blob}  x-ms-blob-type: PageBlob  Put Blob        (page blob of a 512-aligned size)
//! PUT  {blob}?comp=page  x-ms-range      Put Page        (<= 4 MiB, 512-aligned)
//! HEAD {blob}                            Get Blob Properties (verification)
//! ```

use base64::Engine;
use md5::{Digest, Md5};
use percent_encoding::utf8_percent_encode;

use super::http::{Http, HttpError, Reply};
use super::sas::{self, redact, SasUrl, QUERY_VALUE};

/// Pinned service version: >= 2019-12-12 allows 4000 MiB blocks.
pub const X_MS_VERSION: &str = "2023-11-03";
/// Largest Put Block at [`X_MS_VERSION`].
pub const MAX_BLOCK: u64 = 4000 << 20;
/// Most committed blocks in one blob.
pub const MAX_BLOCKS: u64 = 50_000;
/// Largest Put Page.
pub const MAX_PAGE_WRITE: u64 = 4 << 20;
/// Page blob granularity.
pub const PAGE: u64 = 512;

/// One blob, addressed with its SAS.
pub struct Blob<'a> {
    pub url: &'a SasUrl,
    pub http: &'a Http,
    /// Hears about retries: (what, attempt, reason).
    pub on_retry: &'a (dyn Fn(&str, u32, &str) + Sync),
}

/// A block already staged or committed: its ID (base64) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlock {
    pub id: String,
    pub size: u64,
}

impl std::fmt::Debug for Blob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({})", self.url)
    }
}

impl Blob<'_> {
    fn call(
        &self,
        what: &str,
        send: &dyn Fn(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, BlobError> {
        self.http
            .call(send, &|n, why| (self.on_retry)(what, n, why))
            .map_err(|e| BlobError::new(what, self.url, e))
    }

    /// Put Block: stages `data`, whose MD5 is `md5`, as block `id`.
    pub fn put_block(&self, id: &str, data: &[u8], md5: &[u8; 16]) -> Result<(), BlobError> {
        let url = self.url.request_url(&format!(
            "comp=block&blockid={}",
            utf8_percent_encode(id, QUERY_VALUE)
        ));
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5);
        self.call("Put Block", &|agent| {
            agent
                .put(&url)
                .header("x-ms-version", X_MS_VERSION)
                .header("Content-MD5", &md5)
                .send(data)
        })
        .map(drop)
    }

    /// Get Block List (committed and uncommitted). A blob that does not exist yet has
    /// none.
    pub fn block_list(&self) -> Result<Vec<StagedBlock>, BlobError> {
        let url = self.url.request_url("comp=blocklist&blocklisttype=all");
        match self.call("Get Block List", &|agent| {
            agent.get(&url).header("x-ms-version", X_MS_VERSION).call()
        }) {
            Ok(reply) => Ok(parse_block_list(&reply.text())),
            Err(e) if e.status == Some(404) && e.code.as_deref() == Some("BlobNotFound") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Put Block List: commits `ids` in order as the blob's content.
    pub fn put_block_list(&self, ids: &[String]) -> Result<(), BlobError> {
        let mut xml = String::with_capacity(64 + ids.len() * 60);
        xml.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>\n");
        for id in ids {
            xml.push_str("  <Latest>");
            xml.push_str(id);
            xml.push_str("</Latest>\n");
        }
        xml.push_str("</BlockList>\n");
        let url = self.url.request_url("comp=blocklist");
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(xml.as_bytes()));
        self.call("Put Block List", &|agent| {
            agent
                .put(&url)
                .header("x-ms-version", X_MS_VERSION)
                .header("Content-MD5", &md5)
                .header("Content-Type", "application/xml")
                .header("x-ms-blob-content-type", "application/octet-stream")
                .send(xml.as_bytes())
        })
        .map(drop)
    }

    /// Put Blob of an empty page blob of `size` bytes (a multiple of 512).
    pub fn create_page_blob(&self, size: u64) -> Result<(), BlobError> {
        let url = self.url.request_url("");
        let size = size.to_string();
        self.call("Put Blob (page blob)", &|agent| {
            agent
                .put(&url)
                .header("x-ms-version", X_MS_VERSION)
                .header("x-ms-blob-type", "PageBlob")
                .header("x-ms-blob-content-length", &size)
                .header("x-ms-blob-content-type", "application/octet-stream")
                .send(&[][..])
        })
        .map(drop)
    }

    /// Put Page: writes `data` (512-aligned length) at `offset`.
    pub fn put_page(&self, offset: u64, data: &[u8]) -> Result<(), BlobError> {
        let url = self.url.request_url("comp=page");
        let range = format!("bytes={offset}-{}", offset + data.len() as u64 - 1);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(data));
        self.call("Put Page", &|agent| {
            agent
                .put(&url)
                .header("x-ms-version", X_MS_VERSION)
                .header("x-ms-page-write", "update")
                .header("x-ms-range", &range)
                .header("Content-MD5", &md5)
                .send(data)
        })
        .map(drop)
    }

    /// Get Blob Properties: (Content-Length, x-ms-blob-type).
    pub fn properties(&self) -> Result<(u64, String), BlobError> {
        let url = self.url.request_url("");
        let reply = self.call("Get Blob Properties", &|agent| {
            agent.head(&url).header("x-ms-version", X_MS_VERSION).call()
        })?;
        let len = reply
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let kind = reply.header("x-ms-blob-type").unwrap_or("?").to_string();
        Ok((len, kind))
    }
}

/// The `<Block><Name>..</Name><Size>..</Size></Block>` entries of a block list.
pub fn parse_block_list(xml: &str) -> Vec<StagedBlock> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Block>") {
        let Some(after) = rest.get(start + 7..) else {
            break;
        };
        let end = after.find("</Block>").unwrap_or(after.len());
        let block = after.get(..end).unwrap_or_default();
        if let (Some(id), Some(size)) = (tag(block, "Name"), tag(block, "Size")) {
            if let Ok(size) = size.trim().parse() {
                out.push(StagedBlock {
                    id: id.trim().to_string(),
                    size,
                });
            }
        }
        rest = after.get(end..).unwrap_or_default();
    }
    out
}

/// The text inside the first `<name>...</name>`.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml.get(start..)?.find(&close)?;
    xml.get(start..start + len)
}

/// A failed Blob request, explained.
#[derive(Debug, Clone)]
pub struct BlobError {
    pub what: String,
    pub status: Option<u16>,
    /// The service's error code (`x-ms-error-code` / `<Code>`).
    pub code: Option<String>,
    /// The explanation shown to the user (redacted).
    pub message: String,
}

impl std::fmt::Display for BlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.message))
    }
}

impl std::error::Error for BlobError {}

impl BlobError {
    fn new(what: &str, url: &SasUrl, e: HttpError) -> BlobError {
        let blob = url.without_token();
        match e {
            HttpError::Transport(text) => BlobError {
                what: what.into(),
                status: None,
                code: None,
                message: format!(
                    "{what} {blob}: no answer from the storage service ({text}); check the URL, \
                     the network, and that the account allows public network access"
                ),
            },
            HttpError::Status(reply) => {
                let text = reply.text();
                let code = reply
                    .header("x-ms-error-code")
                    .map(str::to_string)
                    .or_else(|| tag(&text, "Code").map(str::to_string));
                let service_msg = tag(&text, "Message")
                    .and_then(|m| m.lines().next())
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string();
                let request_id = reply
                    .header("x-ms-request-id")
                    .map(|id| format!(" (x-ms-request-id {id})"))
                    .unwrap_or_default();
                // Azurite answers a bad signature with AuthorizationFailure and
                // "Server failed to authenticate the request"; Azure with AuthenticationFailed.
                let code = match code {
                    Some(c)
                        if c == "AuthorizationFailure"
                            && service_msg.contains("failed to authenticate") =>
                    {
                        Some("AuthenticationFailed".to_string())
                    }
                    other => other,
                };
                let explained = explain(reply.status, code.as_deref(), url);
                let code_text = code.as_deref().unwrap_or("no error code");
                let mut message = format!(
                    "{what} {blob}: HTTP {} {code_text}: {explained}",
                    reply.status
                );
                if !service_msg.is_empty() {
                    message.push_str(&format!("; the service said: {service_msg}"));
                }
                message.push_str(&request_id);
                BlobError {
                    what: what.into(),
                    status: Some(reply.status),
                    code,
                    message: redact(&message),
                }
            }
        }
    }
}

/// What a user should do about an error status.
fn explain(status: u16, code: Option<&str>, url: &SasUrl) -> String {
    let sp = url.permissions().unwrap_or("?");
    match (status, code.unwrap_or_default()) {
        (403, "AuthenticationFailed") => match url.time_problem(sas::now()) {
            Some(why) => why,
            None => "the SAS signature is not valid: the URL was changed or truncated, it was \
                     signed with another key, or the key was rotated; generate a new SAS"
                .into(),
        },
        (403, "AuthorizationPermissionMismatch") => format!(
            "the SAS does not grant this operation (sp={sp}); upload needs w (and c), resume \
             needs r, import needs r"
        ),
        (403, "AuthorizationFailure") => "the storage account refused the request: its \
            firewall or disabled public network access blocks this machine (or sip= in the SAS \
            excludes its address)"
            .into(),
        (403, "AuthorizationProtocolMismatch") => {
            "the SAS allows https only (spr=https); use the https:// URL".into()
        }
        (403, "AuthorizationSourceIPMismatch") => {
            "this machine's address is outside the SAS's allowed IPs (sip=)".into()
        }
        (403, _) => "access denied: check the SAS (permissions, expiry) and the account's \
            network rules"
            .into(),
        (404, "ContainerNotFound") => {
            "the container does not exist; create it first (az storage container create)".into()
        }
        (404, "BlobNotFound") => "the blob does not exist".into(),
        (404, "ResourceNotFound") | (404, _) => {
            "not found: check the account and container in the URL".into()
        }
        (409, "BlobAlreadyExists") => "the blob already exists".into(),
        (409, "InvalidBlobType") => {
            "a blob of the other kind (block/page) already has this name; delete it or use \
             --name"
                .into()
        }
        (409, "LeaseIdMissing") => "the blob is leased; break the lease first".into(),
        (413, _) | (400, "RequestBodyTooLarge") => {
            "the request is too large for this service version; use a smaller --block-size".into()
        }
        (400, "Md5Mismatch") => "the block's bytes are not those hashed before the upload \
            (Content-MD5 mismatch): the file changed while it was uploaded, or the data was \
            damaged in transit; run again once the file is final"
            .into(),
        (400, "InvalidBlobOrBlock") => {
            "the service rejected a block (a block-ID length clash with earlier uncommitted \
             blocks of another tool: delete the blob or use --name)"
                .into()
        }
        (409, "BlockCountExceedsLimit") => "too many uncommitted blocks on this blob; delete it \
            (uncommitted blocks expire after 7 days)"
            .into(),
        (s, _) if s >= 500 => "the storage service failed; retries were used up".into(),
        (300..=399, _) => "the storage service does not redirect, and rdbkit does not follow \
            redirects: check the account's blob endpoint in the URL"
            .into(),
        _ => "the request was refused".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn block_list_parses_committed_and_uncommitted() {
        let xml = "<?xml version=\"1.0\"?><BlockList><CommittedBlocks><Block><Name>QUFB</Name><Size>5</Size></Block></CommittedBlocks>\
                   <UncommittedBlocks><Block><Name>QkJC</Name><Size>1024</Size></Block></UncommittedBlocks></BlockList>";
        assert_eq!(
            parse_block_list(xml),
            vec![
                StagedBlock {
                    id: "QUFB".into(),
                    size: 5
                },
                StagedBlock {
                    id: "QkJC".into(),
                    size: 1024
                }
            ]
        );
        assert!(parse_block_list("<BlockList/>").is_empty());
    }

    #[test]
    fn errors_explain_and_never_show_the_signature() {
        let url = SasUrl::parse(
            "https://a.blob.core.windows.net/c/d.rdb?sr=b&sp=c&se=2001-01-01T00:00:00Z&sig=verysecretsig",
        )
        .unwrap();
        let reply = |code: &str| {
            Reply {
            status: 403,
            headers: vec![("x-ms-error-code".into(), code.into())],
            body: format!("<Error><Code>{code}</Code><Message>for https://a/c?sig=verysecretsig\nTime:x</Message></Error>").into_bytes(),
        }
        };
        let e = BlobError::new(
            "Put Block",
            &url,
            HttpError::Status(reply("AuthenticationFailed")),
        );
        assert!(
            e.to_string().contains("expired at 2001-01-01T00:00:00Z"),
            "{e}"
        );
        assert!(!e.to_string().contains("verysecretsig"), "{e}");
        let e = BlobError::new(
            "Put Block",
            &url,
            HttpError::Status(reply("AuthorizationPermissionMismatch")),
        );
        assert!(e.to_string().contains("sp=c"), "{e}");
        let e = BlobError::new(
            "Put Block",
            &url,
            HttpError::Status(reply("AuthorizationFailure")),
        );
        assert!(e.to_string().contains("firewall"), "{e}");
    }
}
