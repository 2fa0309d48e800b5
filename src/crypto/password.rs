//! Password hashing with argon2id (the crate's defaults: m=19 MiB, t=2, p=1), on a small pool
//! of its own.
//!
//! Each hash needs 19 MiB of working memory. Run on tokio's blocking pool, a burst of signups
//! hashed fifty at once: about 1 GB, which the allocator then kept. Here at most `threads`
//! hashes run at once, each on a thread that owns its working memory for its whole life, so the
//! memory the hashing takes is `threads × 19 MiB`, whatever the load; callers beyond the queue's
//! capacity are refused at once ([`Busy`]) rather than piling up.

use std::sync::{Arc, LazyLock, Mutex, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use crate::domain::Password;

/// A hash to verify against when the email is unknown, so that a failed login takes the
/// same time whether or not the account exists.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut memory = Vec::new();
    let password = Password::parse("dummy password for unknown accounts").unwrap_or_else(|_| unreachable!());
    hash_with(&mut memory, password.expose()).unwrap_or_default()
});

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

/// Every hashing thread is busy and the queue is full: try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

enum Job {
    Hash(Password, oneshot::Sender<Result<String, HashError>>),
    Verify(String, Option<String>, oneshot::Sender<bool>),
}

/// The hashing pool. Cheap to share; its threads end when it is dropped.
pub struct PasswordHasher {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Admission: jobs running or queued. Beyond it, [`Busy`].
    admitted: Arc<Semaphore>,
}

impl PasswordHasher {
    /// `threads` hashes run at once; up to `queue` more wait for a thread.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snorq-hash-{n}"))
                .spawn(move || work(&rx));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        PasswordHasher {
            jobs: Mutex::new(tx),
            admitted: Arc::new(Semaphore::new(threads + queue)),
        }
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<Result<String, HashError>, Busy> {
        let (tx, rx) = oneshot::channel();
        self.run(Job::Hash(password, tx), rx)
            .await
            .map(|r| r.unwrap_or(Err(HashError)))
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no account,
    /// so both paths cost the same. True only for a real match.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool, Busy> {
        let (tx, rx) = oneshot::channel();
        self.run(Job::Verify(password.to_owned(), stored, tx), rx)
            .await
            .map(|r| r.unwrap_or(false))
    }

    async fn run<T>(&self, job: Job, rx: oneshot::Receiver<T>) -> Result<Option<T>, Busy> {
        let _permit = self.admitted.clone().try_acquire_owned().map_err(|_| Busy)?;
        let sent = self
            .jobs
            .lock()
            .map(|jobs| jobs.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return Ok(None);
        }
        Ok(rx.await.ok())
    }
}

/// A hashing thread: takes jobs until the pool is dropped, reusing one working memory.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash(password, reply)) => {
                let _ = reply.send(hash_with(&mut memory, password.expose()));
            }
            Ok(Job::Verify(password, stored, reply)) => {
                let _ = reply.send(verify_with(&mut memory, &password, stored.as_deref()));
            }
            Err(_) => return,
        }
    }
}

/// The working memory for `params`, grown once and kept.
fn blocks<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String, HashError> {
    let params = Params::default();
    let salt = Salt::new(&rand::random::<[u8; 16]>()).map_err(|_| HashError)?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            blocks(memory, &params),
        )
        .map_err(|_| HashError)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| HashError)?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|_| HashError)?),
    };
    Ok(phc.to_string())
}

fn verify_with(memory: &mut Vec<Block>, password: &str, stored: Option<&str>) -> bool {
    let target = stored.unwrap_or(DUMMY_HASH.as_str());
    let matched = recompute(memory, password, target).unwrap_or(false);
    matched && stored.is_some()
}

fn recompute(memory: &mut Vec<Block>, password: &str, target: &str) -> Option<bool> {
    let parsed = PasswordHash::new(target).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .ok()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).ok()?;
    let salt = parsed.salt?;
    let expected = parsed.hash?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut out,
            blocks(memory, &params),
        )
        .ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let pool = PasswordHasher::new(1, 4);
        let pw = Password::parse("correct horse battery").unwrap();
        let stored = pool.hash(pw).await.unwrap().unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        // The crate's own verifier agrees: the PHC string is standard.
        Argon2::default()
            .verify_password(b"correct horse battery", &PasswordHash::new(&stored).unwrap())
            .unwrap();
        assert!(
            pool.verify("correct horse battery", Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!pool.verify("wrong horse battery", Some(stored)).await.unwrap());
        assert!(!pool.verify("correct horse battery", None).await.unwrap());
        assert!(!pool.verify("x", Some("not a phc string".into())).await.unwrap());
    }

    #[test]
    fn hashes_made_by_the_crate_verify() {
        use argon2::PasswordHasher as _;
        let stored = Argon2::default()
            .hash_password(b"an older hash")
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, "an older hash", Some(&stored)));
        assert!(!verify_with(&mut memory, "another", Some(&stored)));
    }

    #[tokio::test]
    async fn beyond_the_queue_callers_are_refused_not_queued() {
        let pool = Arc::new(PasswordHasher::new(1, 1));
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.verify("guess", None).await })
            })
            .collect();
        let mut busy = 0;
        for call in calls {
            if call.await.unwrap().is_err() {
                busy += 1;
            }
        }
        assert!(
            busy >= 1,
            "six at once through a pool of one thread and one place: some refused"
        );
    }
}
