//! `shippy auth init`: an nkey for every role of [`shared::roles`], made once and kept.
//!
//! Layout of the output directory, one subdirectory per reader, so that each can be
//! handed to exactly the process that needs it (docker-compose.yml mounts each into
//! one container):
//!
//! ```text
//! DIR/server/users.conf      public keys only, as the variables nats.conf refers to
//! DIR/<role>/nkey            the role's seed (its secret), mode 0600, for NATS_NKEY
//! DIR/api/token              the gateway's API token (a secret), mode 0600, for its callers
//! DIR/gateway/api-tokens     the token's SHA-256 hash, for the gateway's GATEWAY_TOKENS_FILE
//! ```
//!
//! Seeds and the token already there are kept, so running it again changes nothing;
//! `--rotate` replaces the named roles' seeds (`api`: the token). `users.conf` is always written anew from the
//! seeds, so the server learns a rotated key when it reloads its configuration.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use nkeys::KeyPair;
use serde::Serialize;
use shared::{
    api_token,
    roles::{self, Role},
};

/// The directory of the server's file, and that file.
pub const SERVER_DIR: &str = "server";
pub const USERS_FILE: &str = "users.conf";
/// The seed file in each role's directory.
pub const SEED_FILE: &str = "nkey";

/// What became of one role's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Kept,
    Rotated,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Kept => "kept",
            Self::Rotated => "rotated",
        })
    }
}

/// One role's key after `init`.
#[derive(Debug, Clone, Serialize)]
pub struct Key {
    pub role: &'static str,
    pub public_key: String,
    pub status: Status,
    /// Where its seed is.
    pub seed_file: PathBuf,
}

/// Makes (or keeps) a seed for every role in `dir` and writes the server's
/// `users.conf`; `rotate` names roles whose seed is replaced, and `owner` (uid, gid)
/// is given the role directories and seeds, for processes that run as another user.
pub fn init(dir: &Path, rotate: &[String], owner: Option<(u32, u32)>) -> anyhow::Result<Vec<Key>> {
    for name in rotate {
        if roles::named(name).is_none() && name != api_token::OPERATOR_DIR {
            bail!("no role {name}; the roles are {}", role_names());
        }
    }
    let mut keys = Vec::new();
    for role in roles::ALL {
        let role_dir = dir.join(role.name);
        create_dir(&role_dir, 0o700, owner)?;
        let seed_file = role_dir.join(SEED_FILE);
        // A rotated seed is replaced unread, so rotating also repairs a damaged one.
        let (pair, status) = if rotate.iter().any(|name| name == role.name) {
            (new_seed(&seed_file, owner)?, Status::Rotated)
        } else if let Some(pair) = read_seed(&seed_file)? {
            (pair, Status::Kept)
        } else {
            (new_seed(&seed_file, owner)?, Status::Created)
        };
        keys.push(Key { role: role.name, public_key: pair.public_key(), status, seed_file });
    }
    let server_dir = dir.join(SERVER_DIR);
    create_dir(&server_dir, 0o755, None)?;
    write_atomically(&server_dir.join(USERS_FILE), users_conf(&keys).as_bytes(), 0o644, None)?;
    keys.push(api_token(dir, rotate.iter().any(|name| name == api_token::OPERATOR_DIR), owner)?);
    Ok(keys)
}

/// Makes (or keeps) the gateway's API token in `DIR/api/token` and writes its hash
/// for the gateway; listed as the `api` entry, its hash in place of a public key.
fn api_token(dir: &Path, rotate: bool, owner: Option<(u32, u32)>) -> anyhow::Result<Key> {
    let operator_dir = dir.join(api_token::OPERATOR_DIR);
    create_dir(&operator_dir, 0o700, owner)?;
    let token_file = operator_dir.join(api_token::TOKEN_FILE);
    let kept = if rotate { None } else { read_token(&token_file)? };
    let (token, status) = if let Some(token) = kept {
        (token, Status::Kept)
    } else {
        let token = api_token::generate();
        write_atomically(&token_file, format!("{token}\n").as_bytes(), 0o600, owner)?;
        (token, if rotate { Status::Rotated } else { Status::Created })
    };
    let hash = api_token::hash_line(&token);
    let hashes = format!("# Made by `shippy auth init`: SHA-256 hashes of the gateway's API tokens.\n{hash}\n");
    let gateway_dir = dir.join(roles::GATEWAY.name);
    write_atomically(&gateway_dir.join(api_token::HASHES_FILE), hashes.as_bytes(), 0o644, owner)?;
    Ok(Key { role: api_token::OPERATOR_DIR, public_key: hash, status, seed_file: token_file })
}

/// The token in `path`, or `None` if there is no file (or it is empty).
fn read_token(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|token| !token.is_empty())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The gateway API token `init` made in `dir`, for `shippy auth token`.
pub fn token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(api_token::OPERATOR_DIR).join(api_token::TOKEN_FILE);
    read_token(&path)?.with_context(|| format!("no token in {}: run `shippy auth init` first", path.display()))
}

/// A new user key, its seed written to `path`.
fn new_seed(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<KeyPair> {
    let pair = KeyPair::new_user();
    let seed = pair.seed().context("a new user key has a seed")?;
    write_atomically(path, format!("{seed}\n").as_bytes(), 0o600, owner)?;
    Ok(pair)
}

/// `users.conf`: each role's public key as the variable `nats.conf` refers to.
fn users_conf(keys: &[Key]) -> String {
    let header = "# Made by `shippy auth init`; nats.conf includes it. Public keys only: the seeds\n\
                  # stay with the processes that log in with them. Run it again to change a key.\n";
    let lines = roles::ALL
        .iter()
        .zip(keys)
        .map(|(Role { nkey_variable, .. }, key)| format!("{nkey_variable}: \"{}\"\n", key.public_key));
    std::iter::once(header.to_owned()).chain(lines).collect()
}

/// The user key in `path`, or `None` if there is no file.
fn read_seed(path: &Path) -> anyhow::Result<Option<KeyPair>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let pair = KeyPair::from_seed(text.trim())
        .ok()
        .filter(|pair| pair.public_key().starts_with('U'))
        .with_context(|| format!("{} holds no user nkey seed; delete it, or rotate the role", path.display()))?;
    Ok(Some(pair))
}

fn create_dir(dir: &Path, mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    chown(dir, owner)
}

/// Writes `contents` to a new file beside `path` and renames it over `path`, so a
/// reader sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let temporary = path.with_extension("new");
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().with_context(|| format!("cannot write {}", temporary.display()))?;
    chown(&temporary, owner)?;
    fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let Some((uid, gid)) = owner else { return Ok(()) };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("cannot give {} to {uid}:{gid}", path.display()))
}

fn role_names() -> String {
    format!(
        "{} (and {} for the gateway's API token)",
        roles::ALL.map(|role| role.name).join(", "),
        api_token::OPERATOR_DIR
    )
}

/// Parses `UID:GID`.
pub fn parse_owner(text: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = text.split_once(':').ok_or("expected UID:GID, such as 65532:65532")?;
    let number = |part: &str| part.parse::<u32>().map_err(|_| format!("{part} is not a numeric id"));
    Ok((number(uid)?, number(gid)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_keeps_every_key_and_a_rotation_replaces_one() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let first = init(dir, &[], None).unwrap();
        assert!(first.iter().all(|key| key.status == Status::Created));
        let again = init(dir, &[], None).unwrap();
        assert!(again.iter().all(|key| key.status == Status::Kept));
        assert_eq!(
            first.iter().map(|k| &k.public_key).collect::<Vec<_>>(),
            again.iter().map(|k| &k.public_key).collect::<Vec<_>>()
        );

        let rotated = init(dir, &["client".to_owned()], None).unwrap();
        assert_eq!(rotated.last().unwrap().status, Status::Kept);
        for (before, after) in first.iter().zip(&rotated) {
            assert_eq!(after.status == Status::Rotated, before.role == "client");
            assert_eq!(after.public_key != before.public_key, before.role == "client");
        }
        let users = fs::read_to_string(dir.join(SERVER_DIR).join(USERS_FILE)).unwrap();
        for (role, key) in roles::ALL.iter().zip(&rotated) {
            assert!(users.contains(&format!("{}: \"{}\"", role.nkey_variable, key.public_key)), "{users}");
        }
        // Seeds are secrets: readable by their owner only; the server file holds no seed.
        let mode = fs::metadata(&rotated[0].seed_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        for key in &rotated {
            let seed = fs::read_to_string(&key.seed_file).unwrap();
            assert!(!users.contains(seed.trim()), "{}'s seed leaked into users.conf", key.role);
        }
    }

    #[test]
    fn the_api_token_is_kept_and_only_its_hash_is_the_gateways() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let first = init(dir, &[], None).unwrap();
        let api = first.last().unwrap();
        assert_eq!((api.role, api.status), (api_token::OPERATOR_DIR, Status::Created));
        let secret = token(dir).unwrap();
        assert_eq!(fs::metadata(&api.seed_file).unwrap().permissions().mode() & 0o777, 0o600);
        let gateway_dir = dir.join(roles::GATEWAY.name);
        let hashes = fs::read_to_string(gateway_dir.join(api_token::HASHES_FILE)).unwrap();
        assert!(hashes.lines().any(|line| line == api_token::hash_line(&secret)), "{hashes}");
        for entry in fs::read_dir(&gateway_dir).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(&secret), "the token rests in the gateway's directory");
        }
        assert_eq!(init(dir, &[], None).unwrap().last().unwrap().status, Status::Kept);
        assert_eq!(token(dir).unwrap(), secret);
        let rotated = init(dir, &["api".to_owned()], None).unwrap();
        assert_eq!(rotated.last().unwrap().status, Status::Rotated);
        assert_ne!(token(dir).unwrap(), secret);
    }

    #[test]
    fn unknown_roles_and_damaged_seeds_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        assert!(init(dir, &["root".to_owned()], None).unwrap_err().to_string().contains("no role root"));
        init(dir, &[], None).unwrap();
        fs::write(dir.join("monitor").join(SEED_FILE), "not a seed").unwrap();
        assert!(init(dir, &[], None).unwrap_err().to_string().contains("holds no user nkey seed"));
        // Rotating the damaged role repairs it.
        init(dir, &["monitor".to_owned()], None).unwrap();
    }

    #[test]
    fn owners_parse() {
        assert_eq!(parse_owner("65532:65532"), Ok((65532, 65532)));
        assert!(parse_owner("65532").is_err());
        assert!(parse_owner("a:b").is_err());
    }
}
