//! Key verification on a warm cache, with 1,000 and with 1,000,000 active keys in the database
//! and in the cache. The two medians should match: a verification is one HMAC, one CRC32 and
//! one hash-map probe, whatever the number of keys.
//!
//! Run: `cargo bench -p tessera-server --bench verify`. Setting up a million keys (insert,
//! then warm the cache through the real verification path) takes a minute or two.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use tessera_domain::api_key::{KeyHasher, KeyKind, PlainApiKey};
use tessera_domain::secret::ServerSecret;
use tessera_domain::time::{Clock, SystemClock};
use tessera_server::auth::Verifier;
use tessera_server::auth::last_used::LastUsedBuffer;
use tessera_server::metrics::Metrics;
use tessera_store::{Store, StoreOptions};

const SIZES: [usize; 2] = [1_000, 1_000_000];
const KEYS_PER_ACCOUNT: usize = 10;

struct Fixture {
    verifier: Verifier,
    keys: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Inserts `n_keys` live service-account keys (10 per account) straight into a SQLite store,
/// then verifies each once so the cache holds all of them.
fn fixture(runtime: &tokio::runtime::Runtime, n_keys: usize) -> Fixture {
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        let secret = ServerSecret::generate();
        let store = Store::open(&StoreOptions { url: url.clone(), max_connections: 4 }, &secret).await.expect("store");
        let hasher = KeyHasher::new(&secret.api_key_digest_key());
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("pool");
        let mut tx = pool.begin().await.expect("tx");
        sqlx::query("insert into teams (id, name, plan, created_at, updated_at) values ('team_000000000000000000000000000000be', 'Bench', 'enterprise', 0, 0)")
            .execute(&mut *tx)
            .await
            .expect("team");
        let mut keys = Vec::with_capacity(n_keys);
        for account_idx in 0..n_keys.div_ceil(KEYS_PER_ACCOUNT) {
            let account = format!("sa_{account_idx:032x}");
            sqlx::query("insert into service_accounts (id, team_id, name, created_by, created_at, updated_at) values ($1, 'team_000000000000000000000000000000be', $2, 'bench', 0, 0)")
                .bind(&account)
                .bind(format!("Account {account_idx}"))
                .execute(&mut *tx)
                .await
                .expect("account");
            for key_idx in 0..KEYS_PER_ACCOUNT.min(n_keys - keys.len()) {
                let plain = PlainApiKey::generate(KeyKind::ServiceAccount);
                sqlx::query("insert into api_keys (id, team_id, service_account_id, name, digest, masked, created_by, created_at) values ($1, 'team_000000000000000000000000000000be', $2, 'bench', $3, $4, 'bench', 0)")
                    .bind(format!("key_{:032x}", account_idx * KEYS_PER_ACCOUNT + key_idx))
                    .bind(&account)
                    .bind(hasher.digest_plain(&plain).as_bytes().to_vec())
                    .bind(plain.masked())
                    .execute(&mut *tx)
                    .await
                    .expect("key");
                keys.push(plain.expose_secret().to_owned());
            }
        }
        tx.commit().await.expect("commit");
        pool.close().await;
        let verifier = Verifier::new(
            store,
            hasher,
            Duration::from_secs(3600),
            2 * n_keys + 64,
            Arc::new(Metrics::default()),
            Arc::new(LastUsedBuffer::default()),
        );
        let now = SystemClock.now();
        for key in &keys {
            verifier.verify(key, now).await.expect("warm");
        }
        Fixture { verifier, keys, _dir: dir }
    })
}

/// `n` keys picked at random (xorshift, fixed seed), concatenated.
fn sample_keys(keys: &[String], n: usize) -> String {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut sample = String::with_capacity(n * keys[0].len());
    for _ in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        sample.push_str(&keys[(state % keys.len() as u64) as usize]);
    }
    sample
}

/// Polls a future once; on a warm cache verification never waits, so it must be ready.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification went to the database on a warm cache"),
    }
}

fn verification(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("verify_warm_cache");
    for n_keys in SIZES {
        let fixture = fixture(&runtime, n_keys);
        let now = SystemClock.now();
        // Requests arrive with the key in a fresh buffer, not scattered over a million strings:
        // copy a random sample of keys into one contiguous buffer and cycle through it.
        let sample = sample_keys(&fixture.keys, 65_536);
        let key_len = fixture.keys[0].len();
        let mut idx = 0usize;
        let _guard = runtime.enter();
        group.bench_with_input(BenchmarkId::from_parameter(n_keys), &n_keys, |b, _| {
            b.iter(|| {
                idx = (idx + 1) % (sample.len() / key_len);
                let key = &sample[idx * key_len..(idx + 1) * key_len];
                let verified = ready(fixture.verifier.verify(black_box(key), now)).expect("valid");
                black_box(verified);
            });
        });
    }
    let fixture = fixture(&runtime, 10);
    let _guard = runtime.enter();
    group.bench_function("rejected_by_checksum", |b| {
        let now = SystemClock.now();
        let look_alike = format!("{}x", &fixture.keys[0][..fixture.keys[0].len() - 1]);
        b.iter(|| black_box(ready(fixture.verifier.verify(black_box(&look_alike), now)).is_err()));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = verification
}
criterion_main!(benches);
