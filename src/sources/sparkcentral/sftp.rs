//! SFTP access to Sparkcentral's drop tree (russh + russh-sftp): one SSH connection per run,
//! shared by every window; the server's host key checked against a known_hosts file before any
//! credential is sent, as OpenSSH does (an unknown or changed key is refused, with its
//! fingerprint); password or key authentication; directory listings and streamed downloads.
//! A connection that breaks is opened again, and the call retried, a few times.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::StatusCode;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use crate::sources::http::Secret;

/// How many times a listing or download is tried when the connection breaks.
const ATTEMPTS: u32 = 3;
/// Time allowed for the TCP connection and SSH handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for one SFTP reply.
const REPLY_TIMEOUT_SECS: u64 = 60;

/// Why the drop tree could not be read over SFTP. Messages never carry the password.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The server's host key is unknown or changed: nothing was sent to it.
    #[error("{0}")]
    HostKey(String),
    /// The server refused the password or key.
    #[error("{0}")]
    Auth(String),
    /// The export root is missing or unreadable on the server.
    #[error("{0}")]
    Missing(String),
    /// The network, the SSH session or an SFTP request failed (retried before it surfaces).
    #[error("{0}")]
    Transfer(String),
    /// A local file (the spool) could not be written.
    #[error("{0}")]
    Local(String),
}

/// `sftp://USER@HOST[:PORT]/path`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The export tree's path on the server (`/export`), without a trailing slash.
    pub root: String,
}

impl SftpTarget {
    pub fn parse(text: &str) -> Result<SftpTarget, String> {
        let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not an sftp:// URL: {e}"))?;
        if url.scheme() != "sftp" {
            return Err(format!("`{text}` is not an sftp:// URL"));
        }
        if url.password().is_some() {
            return Err("the sftp:// URL carries a password; remove it (it would show in process lists and logs) and set SPARKCENTRAL_SFTP_PASSWORD or pass --identity-file".into());
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        if user.is_empty() {
            return Err(format!("`{text}` names no user: write sftp://USER@HOST/export"));
        }
        let host =
            url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{text}` names no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let root = decode(url.path());
        let root = match root.trim_end_matches('/') {
            "" => ".".to_string(),
            path => path.to_string(),
        };
        Ok(SftpTarget { user, host, port: url.port().unwrap_or(22), root })
    }

    /// The server as known_hosts and messages name it: `host` on port 22, `[host]:port` otherwise.
    pub fn host_port(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for SftpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sftp://{}@{}:{}{}", self.user, self.host, self.port, self.root)
    }
}

/// How cxlake logs in.
#[derive(Debug, Clone)]
pub enum Credential {
    Password(Secret),
    Key(Arc<PrivateKey>),
}

impl Credential {
    /// Reads a private key file (OpenSSH or PEM format; an encrypted one with `passphrase`).
    pub fn key_file(path: &Path, passphrase: Option<&Secret>) -> Result<Credential, String> {
        let key =
            russh::keys::load_secret_key(path, passphrase.map(|p| p.expose())).map_err(|e| match e {
                russh::keys::Error::KeyIsEncrypted => format!(
                    "--identity-file {} is encrypted: set SPARKCENTRAL_SFTP_KEY_PASSPHRASE",
                    path.display()
                ),
                e => format!("cannot read --identity-file {}: {e}", path.display()),
            })?;
        Ok(Credential::Key(Arc::new(key)))
    }
}

#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub target: SftpTarget,
    pub credential: Credential,
    pub known_hosts: PathBuf,
}

/// One entry of a remote directory.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    pub name: String,
    pub is_file: bool,
    pub size: u64,
    pub modified: SystemTime,
}

impl RemoteEntry {
    /// An entry from the SFTP attributes the server sent (times have second resolution).
    fn from_attributes(
        name: String,
        is_file: bool,
        attributes: &russh_sftp::protocol::FileAttributes,
    ) -> RemoteEntry {
        RemoteEntry {
            name,
            is_file,
            size: attributes.size.unwrap_or(0),
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(attributes.mtime.unwrap_or(0))),
        }
    }
}

/// The drop tree on an SFTP server, with its connection opened on first use.
pub struct SftpDrop {
    config: SftpConfig,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for SftpDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpDrop").field("target", &self.config.target).finish_non_exhaustive()
    }
}

struct Connection {
    // Kept so that the SSH session lives as long as its SFTP channel.
    ssh: russh::client::Handle<HostKeyCheck>,
    sftp: SftpSession,
}

impl SftpDrop {
    pub fn new(config: SftpConfig) -> SftpDrop {
        SftpDrop { config, connection: Mutex::new(None) }
    }

    pub fn target(&self) -> &SftpTarget {
        &self.config.target
    }

    /// The path of `relative` (`folder/name`; empty: the root itself) under the export root.
    pub fn remote_path(&self, relative: &str) -> String {
        match relative {
            "" => self.config.target.root.clone(),
            relative => format!("{}/{relative}", self.config.target.root),
        }
    }

    /// The entries of `relative` under the root; `None` when the directory does not exist.
    pub async fn list(&self, relative: &str) -> Result<Option<Vec<RemoteEntry>>, SftpError> {
        let path = &self.remote_path(relative);
        self.retry(&format!("listing {path}"), |c| async move {
            match c.sftp.read_dir(path.as_str()).await {
                Ok(entries) => Ok(Some(
                    entries
                        .map(|entry| {
                            RemoteEntry::from_attributes(entry.file_name(), entry.file_type().is_file(), &entry.metadata())
                        })
                        .collect(),
                )),
                Err(e) if status_is(&e, &[StatusCode::NoSuchFile]) => Ok(None),
                Err(e) if status_is(&e, &[StatusCode::PermissionDenied]) => Err(SftpError::Missing(format!(
                    "the SFTP user may not list {path} ({e}); check --source and the user's rights on the server"
                ))),
                Err(e) => Err(transfer(&format!("listing {path}"), e)),
            }
        })
        .await
    }

    /// Downloads `relative` into `dest` (replacing it); returns its size and the file's
    /// attributes as the server gives them after the last byte was read.
    pub async fn download(&self, relative: &str, dest: &Path) -> Result<(u64, RemoteEntry), SftpError> {
        let path = &self.remote_path(relative);
        let what = &format!("downloading {path}");
        self.retry(what, |c| async move {
            let file = c.sftp.open(path.as_str()).await.map_err(|e| transfer(what, e))?;
            let local = |e: std::io::Error| SftpError::Local(format!("cannot write {}: {e}", dest.display()));
            let mut out = tokio::io::BufWriter::with_capacity(
                1 << 20,
                tokio::fs::File::create(dest).await.map_err(local)?,
            );
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let bytes = tokio::io::copy_buf(&mut reader, &mut out)
                .await
                .map_err(|e| SftpError::Transfer(format!("{what}: {e}")))?;
            out.flush().await.map_err(local)?;
            out.into_inner().sync_all().await.map_err(local)?;
            let meta = reader.into_inner().metadata().await.map_err(|e| transfer(what, e))?;
            let name = relative.rsplit('/').next().unwrap_or(relative).to_string();
            Ok((bytes, RemoteEntry::from_attributes(name, true, &meta)))
        })
        .await
    }

    /// Runs `op` on the connection, opening it (again) and retrying when the transfer fails.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, SftpError>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SftpError>> + Send,
    {
        let mut attempt = 1;
        loop {
            let result = match self.connection().await {
                Ok(connection) => op(connection).await,
                Err(e) => Err(e),
            };
            match result {
                Err(SftpError::Transfer(message)) if attempt < ATTEMPTS => {
                    tracing::warn!(attempt, error = %message, "SFTP {what} failed; reconnecting");
                    *self.connection.lock().await = None;
                    tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, SftpError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.ssh.is_closed()) {
            return Ok(connection.clone());
        }
        let connection = Arc::new(connect(&self.config).await?);
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

fn status_is(error: &russh_sftp::client::error::Error, codes: &[StatusCode]) -> bool {
    matches!(error, russh_sftp::client::error::Error::Status(s) if codes.contains(&s.status_code))
}

fn transfer(what: &str, error: impl std::fmt::Display) -> SftpError {
    SftpError::Transfer(format!("SFTP {what}: {error}"))
}

/// Connects, checks the host key, logs in and opens the SFTP subsystem.
async fn connect(config: &SftpConfig) -> Result<Connection, SftpError> {
    let target = &config.target;
    let ssh_config = russh::client::Config {
        inactivity_timeout: Some(Duration::from_secs(300)),
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    };
    let check = HostKeyCheck { target: target.clone(), known_hosts: config.known_hosts.clone() };
    let connecting = russh::client::connect(Arc::new(ssh_config), (target.host.as_str(), target.port), check);
    let mut ssh = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => {
            return Err(SftpError::Transfer(format!(
                "connecting to {}: no SSH handshake within {}s",
                target.host_port(),
                CONNECT_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(HandshakeError::HostKey(message))) => return Err(SftpError::HostKey(message)),
        Ok(Err(HandshakeError::Ssh(e))) => {
            return Err(SftpError::Transfer(format!("connecting to {}: {e}", target.host_port())))
        }
        Ok(Ok(ssh)) => ssh,
    };
    let ssh_error =
        |e: russh::Error| SftpError::Transfer(format!("SSH session with {}: {e}", target.host_port()));
    let (result, how) = match &config.credential {
        Credential::Password(password) => {
            (ssh.authenticate_password(&target.user, password.expose()).await.map_err(ssh_error)?, "password")
        }
        Credential::Key(key) => {
            let hash = ssh.best_supported_rsa_hash().await.map_err(ssh_error)?.flatten();
            let key = PrivateKeyWithHashAlg::new(key.clone(), hash);
            (ssh.authenticate_publickey(&target.user, key).await.map_err(ssh_error)?, "key")
        }
    };
    if !result.success() {
        let hint = match &config.credential {
            Credential::Password(_) => "check SPARKCENTRAL_SFTP_PASSWORD",
            Credential::Key(_) => "check --identity-file and that its public key is authorized on the server",
        };
        return Err(SftpError::Auth(format!(
            "the SFTP server {} refused the {how} of user `{}`: {hint}",
            target.host_port(),
            target.user
        )));
    }
    let channel = ssh.channel_open_session().await.map_err(ssh_error)?;
    channel.request_subsystem(true, "sftp").await.map_err(ssh_error)?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| SftpError::Transfer(format!("starting SFTP on {}: {e}", target.host_port())))?;
    sftp.set_timeout(REPLY_TIMEOUT_SECS);
    Ok(Connection { ssh, sftp })
}

#[derive(Debug)]
enum HandshakeError {
    Ssh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> HandshakeError {
        HandshakeError::Ssh(e)
    }
}

/// Checks the server's key against known_hosts, as OpenSSH's `StrictHostKeyChecking yes`.
struct HostKeyCheck {
    target: SftpTarget,
    known_hosts: PathBuf,
}

impl HostKeyCheck {
    fn verdict(&self, key: &PublicKey) -> Result<(), String> {
        let (name, host, port) = (self.target.host_port(), &self.target.host, self.target.port);
        let presented = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let file = self.known_hosts.display();
        match russh::keys::check_known_hosts_path(host, port, key, &self.known_hosts) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!(
                "the SFTP server {name} presented a host key that is not in {file} ({presented}); refused, nothing was sent to it. Check the fingerprint with Sparkcentral, then add the server's key to {file} (e.g. `ssh-keyscan -p {port} {host} >> {file}` after checking) or pass --known-hosts"
            )),
            Err(russh::keys::Error::KeyChanged { line }) => {
                let line = file_line(&self.known_hosts, line);
                Err(format!(
                "the host key of the SFTP server {name} has CHANGED: it presented {presented}, which differs from line {line} of {file}. Someone may be intercepting the connection, or the server's key was replaced; refused, nothing was sent to it. If Sparkcentral confirms the new key, replace line {line}"
                ))
            }
            Err(e) => Err(format!("cannot check the host key of {name} against {file}: {e}")),
        }
    }
}

/// The line number in `path` of its `nth` line that is not a comment (russh counts those only).
fn file_line(path: &Path, nth: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return nth };
    let mut counted = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if !line.starts_with('#') {
            counted += 1;
            if counted == nth {
                return index + 1;
            }
        }
    }
    nth
}

impl russh::client::Handler for HostKeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, HandshakeError> {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.verdict(key).map_err(HandshakeError::HostKey)?;
                Ok(true)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(HandshakeError::HostKey(format!(
                "the SFTP server {} presented a host certificate; cxlake checks plain host keys against known_hosts only",
                self.target.host_port()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sftp_urls() {
        let t = SftpTarget::parse("sftp://acme@sftp.sparkcentral.com/export").unwrap();
        assert_eq!(
            t,
            SftpTarget {
                user: "acme".into(),
                host: "sftp.sparkcentral.com".into(),
                port: 22,
                root: "/export".into()
            }
        );
        assert_eq!(t.host_port(), "sftp.sparkcentral.com");
        let t = SftpTarget::parse("sftp://a%40b@127.0.0.1:2222/data/export/").unwrap();
        assert_eq!((t.user.as_str(), t.port, t.root.as_str()), ("a@b", 2222, "/data/export"));
        assert_eq!(t.host_port(), "[127.0.0.1]:2222");
        assert_eq!(SftpTarget::parse("sftp://u@h").unwrap().root, ".");
    }

    #[test]
    fn known_hosts_lines_count_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "# a\nhost1 ssh-ed25519 AAAA\n# b\n# c\nhost2 ssh-ed25519 AAAA\n").unwrap();
        assert_eq!((file_line(&path, 1), file_line(&path, 2)), (2, 5));
    }

    #[test]
    fn refuses_bad_urls_and_inline_passwords() {
        let e = SftpTarget::parse("sftp://u:hunter2@h/export").unwrap_err();
        assert!(e.contains("SPARKCENTRAL_SFTP_PASSWORD") && !e.contains("hunter2"), "{e}");
        assert!(SftpTarget::parse("sftp://h/export").unwrap_err().contains("no user"));
        assert!(SftpTarget::parse("https://u@h/export").is_err());
    }
}
