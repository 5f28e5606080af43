//! What only the PostgreSQL engine has: a database that goes away and comes back while a store
//! is open on it, and connection errors that name the server but never the password.
//!
//! Runs when the behaviour suite runs PostgreSQL (see `nullspace_testkit`): with
//! `NULLSPACE_TEST_STATE` naming `postgres` or `all`, or unset while the test server answers
//! or in CI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nullspace_core::{Labels, TenantName, VolumeName};
use nullspace_state::{ApiKey, PostgresStore, StateError, StateStore};
use nullspace_testkit::{Engine, FreshDatabase, Selection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Whether these tests run, saying why not when they don't.
fn selected() -> bool {
    Selection::from_env().runs(Engine::Postgres)
}

fn vol(s: &str) -> VolumeName {
    VolumeName::parse(s).unwrap()
}

/// A store on a fresh database with tenant `acme` and volume `data`; returns the tenant id.
async fn populated(url: &str) -> (PostgresStore, String) {
    let store = PostgresStore::connect(url).await.unwrap();
    store.bootstrap(None).await.unwrap();
    let (t, _) = store
        .create_tenant(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    store
        .create_volume(&t.id, &vol("data"), &Labels::new())
        .await
        .unwrap();
    (store, t.id)
}

/// Calls `get_volume` until it succeeds; every failure on the way must be `Unavailable`.
async fn until_served(store: &PostgresStore, tenant: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match store.get_volume(tenant, &vol("data")).await {
            Ok(v) => {
                assert_eq!(v.name, "data");
                return start.elapsed();
            }
            Err(StateError::Unavailable(_)) if start.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after {:?}: {e:?}", start.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_backends_give_unavailable_or_success_then_recover() {
    if !selected() {
        return;
    }
    let db = FreshDatabase::create().await;
    let (store, acme) = populated(&db.url).await;
    let store = Arc::new(store);

    // Several pooled connections, then all of them ended at once while idle.
    let mut warm = JoinSet::new();
    for _ in 0..8 {
        let (s, acme) = (store.clone(), acme.clone());
        warm.spawn(async move { s.get_volume(&acme, &vol("data")).await.map(|_| ()) });
    }
    while let Some(r) = warm.join_next().await {
        r.unwrap().unwrap();
    }
    assert!(
        db.terminate_backends().await >= 1,
        "the pool had connections"
    );
    match store.get_volume(&acme, &vol("data")).await {
        Ok(v) => assert_eq!(v.name, "data"),
        Err(StateError::Unavailable(m)) => eprintln!("first call after termination: {m}"),
        Err(e) => panic!("after pg_terminate_backend: {e:?}"),
    }

    // Backends ended again and again while readers and writers are busy: each call succeeds or
    // is `Unavailable`, never anything else.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut busy = JoinSet::new();
    for i in 0..8 {
        let (s, acme, stop) = (store.clone(), acme.clone(), stop.clone());
        busy.spawn(async move {
            let (mut ok, mut unavailable) = (0u32, 0u32);
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let result = if i % 2 == 0 {
                    s.get_volume(&acme, &vol("data")).await.map(|_| ())
                } else {
                    let name = vol(&format!("w{i}-{n}"));
                    s.create_volume(&acme, &name, &Labels::new())
                        .await
                        .map(|_| ())
                };
                match result {
                    Ok(()) => ok += 1,
                    Err(StateError::Unavailable(_)) => unavailable += 1,
                    Err(e) => panic!("while backends are being terminated: {e:?}"),
                }
            }
            (ok, unavailable)
        });
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        db.terminate_backends().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut unavailable) = (0, 0);
    while let Some(r) = busy.join_next().await {
        let (o, u) = r.unwrap();
        ok += o;
        unavailable += u;
    }
    eprintln!("during terminations: {ok} calls succeeded, {unavailable} were unavailable");

    // And then the store serves again, by itself.
    let took = until_served(&store, &acme, Duration::from_secs(15)).await;
    eprintln!("served again after {took:?}");
    for _ in 0..20 {
        store.get_volume(&acme, &vol("data")).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_closed_to_connections_is_unavailable_until_it_reopens() {
    if !selected() {
        return;
    }
    let db = FreshDatabase::create().await;
    let (store, acme) = populated(&db.url).await;
    db.allow_connections(false).await;
    db.terminate_backends().await;
    for _ in 0..3 {
        let e = store.get_volume(&acme, &vol("data")).await.unwrap_err();
        assert!(matches!(e, StateError::Unavailable(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("not currently accepting connections"),
            "{e}"
        );
    }
    db.allow_connections(true).await;
    let took = until_served(&store, &acme, Duration::from_secs(15)).await;
    eprintln!("served again {took:?} after the database reopened");
}

/// A TCP relay in front of the test server that can be taken down (every connection cut, new
/// ones refused) and brought back on the same port: a database host that goes away.
struct Relay {
    port: u16,
    target: String,
    tasks: Option<JoinSet<()>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            target,
            tasks: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            // Connections live in this task's set: aborting the task drops (cuts) them all.
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Cuts every connection and refuses new ones.
    async fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Accepts connections again on the same port.
    async fn up(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], self.port).into()).unwrap();
        self.serve(socket.listen(64).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_goes_away_is_unavailable_and_recovers_when_it_returns() {
    if !selected() {
        return;
    }
    let db = FreshDatabase::create().await;
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let mut relay = Relay::start(target).await;
    let url = db.url.replacen(
        &format!(":{}/", options.get_port()),
        &format!(":{}/", relay.port),
        1,
    );
    assert!(url.contains(&relay.port.to_string()), "{url}");
    let (store, acme) = populated(&url).await;

    relay.down().await;
    let started = Instant::now();
    let (data, more, no_labels, some_key) =
        (vol("data"), vol("more"), Labels::new(), ApiKey::generate());
    // Concurrently: each waits for a connection for a few seconds before giving up.
    let (got, created, authenticated) = tokio::join!(
        store.get_volume(&acme, &data),
        store.create_volume(&acme, &more, &no_labels),
        store.authenticate(&some_key),
    );
    eprintln!(
        "while down ({:?}): {:?}",
        started.elapsed(),
        got.as_ref().err()
    );
    for e in [
        got.unwrap_err(),
        created.unwrap_err(),
        authenticated.unwrap_err(),
    ] {
        assert!(matches!(e, StateError::Unavailable(_)), "{e:?}");
    }

    relay.up().await;
    let took = until_served(&store, &acme, Duration::from_secs(15)).await;
    eprintln!("served again {took:?} after the database came back");
    store
        .create_volume(&acme, &vol("more"), &Labels::new())
        .await
        .unwrap();
    relay.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_starting_together_on_a_new_database_migrate_once_and_bootstrap_once() {
    // (PostgreSQL only: SQLite is one server's embedded database.)
    if !selected() {
        return;
    }
    let db = FreshDatabase::create().await;
    let opened = futures_join_all((0..4).map(|_| {
        let url = db.url.clone();
        async move { PostgresStore::connect(&url).await }
    }))
    .await;
    let stores: Vec<PostgresStore> = opened.into_iter().map(Result::unwrap).collect();
    let boots = futures_join_all(stores.iter().map(|s| {
        let s = s.clone();
        async move { s.bootstrap(None).await }
    }))
    .await;
    let created: Vec<ApiKey> = boots.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(created.len(), 1, "exactly one bootstrap creates a key");
    for s in &stores {
        assert!(s.authenticate(&created[0]).await.unwrap().admin);
    }
}

/// Runs futures concurrently (on tasks) and returns their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn connection_errors_name_the_server_but_never_the_password() {
    if !selected() {
        return;
    }
    let password = "pw-never-shown-4711";
    let missing = format!("nstest_missing_{}", uuid::Uuid::new_v4().simple());
    let url = nullspace_testkit::with_database(&nullspace_testkit::admin_url(), &missing);
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let url = format!("{scheme}://nobody:{password}@{rest}");
    let e = PostgresStore::connect(&url).await.unwrap_err();
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(password), "{shown}");
        assert!(
            shown.contains(&missing) || shown.contains("nobody"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_store_never_shows_its_password() {
    if !selected() {
        return;
    }
    let db = FreshDatabase::create().await;
    let password = "pw-never-shown-0815";
    // The test server trusts local connections, so any password is accepted.
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let user = user.split(':').next().unwrap();
    let url = format!("{scheme}://{user}:{password}@{host}");
    let store = PostgresStore::connect(&url).await.unwrap();
    store.bootstrap(None).await.unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains(password), "{shown}");
    assert!(shown.contains(&db.name), "{shown}");
}
