//! The behaviour suite every `StateStore` engine must pass: one function per claim of the trait's
//! documentation, and one test per claim and engine (`sqlite::volume_lifecycle`,
//! `postgres::volume_lifecycle`), each on a fresh database, so that a failure on one engine
//! cannot hide the run on the other.
//!
//! `NULLSPACE_TEST_STATE` selects the engines (see `nullspace_testkit`): unset, SQLite, and
//! PostgreSQL when a server answers at the test URL (`NULLSPACE_TEST_PG_URL`, default
//! `postgres://root@127.0.0.1:5432/postgres`) or in CI, where it must; `sqlite`, `postgres`, a
//! comma-separated list or `all` require those. A test of an engine not selected says so and
//! passes. Each PostgreSQL test gets a database of its own (`nstest_<random>`), dropped
//! afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use nullspace_state::{PostgresStore, SqliteStore, StateStore};
use nullspace_testkit::{Engine, FreshDatabase, Selection};

/// A fresh, empty database of one engine. `open` may be called again to reopen the same data,
/// or while another store is open on it (a second server).
#[async_trait]
trait TestDb: Send + Sync {
    async fn open(&self) -> Arc<dyn StateStore>;
}

/// A fresh database of `engine`, or `None` (having said why) when the selection skips it.
async fn fresh(engine: Engine) -> Option<Box<dyn TestDb>> {
    if !Selection::from_env().runs(engine) {
        return None;
    }
    Some(match engine {
        Engine::Sqlite => SqliteDb::fresh().await,
        Engine::Postgres => PostgresDb::fresh().await,
    })
}

/// A SQLite file in its own temporary directory.
struct SqliteDb {
    dir: tempfile::TempDir,
}

impl SqliteDb {
    async fn fresh() -> Box<dyn TestDb> {
        Box::new(SqliteDb {
            dir: tempfile::tempdir().expect("tempdir"),
        })
    }
}

#[async_trait]
impl TestDb for SqliteDb {
    async fn open(&self) -> Arc<dyn StateStore> {
        Arc::new(
            SqliteStore::open(&self.dir.path().join("state.db"))
                .await
                .expect("open SQLite"),
        )
    }
}

/// A database of its own on the test PostgreSQL server.
struct PostgresDb {
    db: FreshDatabase,
}

impl PostgresDb {
    async fn fresh() -> Box<dyn TestDb> {
        Box::new(PostgresDb {
            db: FreshDatabase::create().await,
        })
    }
}

#[async_trait]
impl TestDb for PostgresDb {
    async fn open(&self) -> Arc<dyn StateStore> {
        Arc::new(
            PostgresStore::connect(&self.db.url)
                .await
                .expect("connect to PostgreSQL"),
        )
    }
}

/// Declares one `#[tokio::test]` per claim in a module per engine. A claim takes what it
/// needs: `store` (`&dyn StateStore`), `shared` (`Arc<dyn StateStore>`, to hand to tasks) or
/// `db` (`&dyn TestDb`, to reopen).
macro_rules! behaviour {
    (@engine $module:ident, $engine:ident, $($claim:ident($kind:ident)),*) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $claim() {
                    let Some(db) = fresh(Engine::$engine).await else {
                        return;
                    };
                    behaviour!(@run $kind, $claim, db);
                }
            )*
        }
    };
    (@run store, $claim:ident, $db:ident) => { claims::$claim(&*$db.open().await).await };
    (@run shared, $claim:ident, $db:ident) => { claims::$claim($db.open().await).await };
    (@run db, $claim:ident, $db:ident) => { claims::$claim(&*$db).await };
    ($($claim:ident($kind:ident)),* $(,)?) => {
        behaviour!(@engine sqlite, Sqlite, $($claim($kind)),*);
        behaviour!(@engine postgres, Postgres, $($claim($kind)),*);
    };
}

behaviour! {
    bootstrap_creates_default_tenant_with_admin_key(store),
    bootstrap_is_idempotent(store),
    bootstrap_uses_the_given_key(store),
    concurrent_bootstraps_create_one_key(shared),
    authenticate_accepts_stored_keys_only(store),
    create_tenant_issues_a_non_admin_key(store),
    duplicate_tenant_already_exists(store),
    unknown_tenant_is_not_found(store),
    tenant_cap_applies_to_new_volumes(store),
    volume_lifecycle(store),
    volume_names_are_unique_per_tenant(store),
    tenants_are_isolated(store),
    create_volume_for_unknown_tenant_is_not_found(store),
    list_is_sorted_by_name_and_selectors_all_match(store),
    all_volumes_spans_tenants(store),
    usage_updates_round_trip(store),
    reopening_keeps_everything(db),
    concurrent_creates_of_one_name_admit_exactly_one(shared),
    keys_are_redacted_in_debug(store),
    keys_have_roles_expire_and_are_revoked_at_once(db),
    list_sorts_names_bytewise(store),
    labels_round_trip_exactly(store),
    two_stores_on_one_database_see_each_others_writes(db),
    concurrent_creates_through_two_stores_admit_exactly_one(db),
    concurrent_bootstraps_through_two_stores_create_one_key(db),
    caps_set_through_one_store_apply_through_another(db),
    sandbox_records_round_trip(store),
    sandbox_lists_select_by_tenant_server_and_volume(store),
    sandbox_create_is_all_or_nothing(store),
    sandbox_update_replaces_state_and_attachments(store),
    sandbox_delete_releases_its_attachments(store),
    volume_delete_removes_its_attachment_records(store),
    sandbox_records_are_shared_by_two_stores(db),
    tenant_limits_round_trip_and_change_only_what_is_given(store),
    sandbox_creates_within_limits_count_every_sandbox(store),
    volume_creates_within_limits_keep_names_first(store),
    concurrent_creates_through_two_stores_stay_within_max_sandboxes(db),
    the_cache_generation_moves_with_every_change_that_stales_a_cached_entry(db),
    volume_rename_keeps_the_volume_and_refuses_while_attached(store),
}

mod claims {
    use std::sync::Arc;

    use nullspace_core::{
        AttachmentState, LabelSelector, Labels, SandboxState, TenantName, VolumeName,
        DEFAULT_VOLUME_CAP,
    };
    use nullspace_state::{
        ApiKey, AttachmentRecord, SandboxRecord, StateError, StateStore, TenantLimits, TenantUsage,
        DEFAULT_TENANT,
    };
    use tokio::sync::Barrier;

    use super::TestDb;

    fn tenant(s: &str) -> TenantName {
        TenantName::parse(s).unwrap()
    }

    fn vol(s: &str) -> VolumeName {
        VolumeName::parse(s).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn selectors(list: &[&str]) -> Vec<LabelSelector> {
        list.iter()
            .map(|s| LabelSelector::parse(s).unwrap())
            .collect()
    }

    fn names(vols: &[nullspace_core::Volume]) -> Vec<&str> {
        vols.iter().map(|v| v.name.as_str()).collect()
    }

    /// Creates a tenant and returns its id.
    async fn new_tenant(s: &dyn StateStore, name: &str) -> String {
        s.create_tenant(&tenant(name)).await.unwrap().0.id
    }

    fn assert_not_found(e: StateError, message: &str) {
        assert!(matches!(e, StateError::NotFound(_)), "{e:?}");
        assert_eq!(e.to_string(), message);
    }

    fn assert_already_exists(e: StateError, message: &str) {
        assert!(matches!(e, StateError::AlreadyExists(_)), "{e:?}");
        assert_eq!(e.to_string(), message);
    }

    pub async fn bootstrap_creates_default_tenant_with_admin_key(s: &dyn StateStore) {
        let key = s
            .bootstrap(None)
            .await
            .unwrap()
            .expect("first bootstrap creates a key");
        assert!(key.expose().starts_with("nsk_"));
        let who = s.authenticate(&key).await.unwrap();
        assert!(who.admin);
        assert_eq!(who.tenant_name, DEFAULT_TENANT);
        let t = s.get_tenant(&tenant(DEFAULT_TENANT)).await.unwrap();
        assert_eq!(t.id, who.tenant_id);
        assert!(t.id.starts_with("ten_"), "{}", t.id);
        assert_eq!(t.name, DEFAULT_TENANT);
        assert_eq!(t.volume_cap_bytes, None);
    }

    pub async fn bootstrap_is_idempotent(s: &dyn StateStore) {
        let first = s.bootstrap(None).await.unwrap().unwrap();
        let given = ApiKey::new("nsk_given_too_late");
        assert_eq!(s.bootstrap(None).await.unwrap(), None);
        assert_eq!(s.bootstrap(Some(&given)).await.unwrap(), None);
        assert!(s.authenticate(&first).await.unwrap().admin);
        let e = s.authenticate(&given).await.unwrap_err();
        assert!(matches!(e, StateError::Unauthenticated), "{e:?}");
    }

    pub async fn bootstrap_uses_the_given_key(s: &dyn StateStore) {
        let given = ApiKey::new("nsk_chosen_by_the_operator");
        assert_eq!(
            s.bootstrap(Some(&given)).await.unwrap(),
            Some(given.clone())
        );
        let who = s.authenticate(&given).await.unwrap();
        assert!(who.admin);
        assert_eq!(who.tenant_name, DEFAULT_TENANT);
    }

    pub async fn concurrent_bootstraps_create_one_key(s: Arc<dyn StateStore>) {
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, start) = (s.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    s.bootstrap(None).await
                })
            })
            .collect();
        let mut created = Vec::new();
        for t in tasks {
            if let Some(k) = t.await.unwrap().unwrap() {
                created.push(k);
            }
        }
        assert_eq!(created.len(), 1, "exactly one bootstrap creates a key");
        assert!(s.authenticate(&created[0]).await.unwrap().admin);
    }

    pub async fn authenticate_accepts_stored_keys_only(s: &dyn StateStore) {
        let key = s.bootstrap(None).await.unwrap().unwrap();
        assert_eq!(
            s.authenticate(&key).await.unwrap().tenant_name,
            DEFAULT_TENANT
        );
        let mut near = key.expose().to_owned();
        near.pop();
        near.push('x');
        for wrong in [ApiKey::generate(), ApiKey::new(near), ApiKey::new("")] {
            let e = s.authenticate(&wrong).await.unwrap_err();
            assert!(matches!(e, StateError::Unauthenticated), "{e:?}");
        }
    }

    pub async fn keys_have_roles_expire_and_are_revoked_at_once(db: &dyn TestDb) {
        use nullspace_state::{NewKey, Role};
        let (s, other) = (db.open().await, db.open().await);
        s.bootstrap(None).await.unwrap();
        let acme = new_tenant(&*s, "acme").await;
        let (info, key) = s
            .create_key(
                &acme,
                &NewKey {
                    name: Some("ci".into()),
                    role: Role::ReadOnly,
                    expires_at: None,
                    token: None,
                },
                &TenantLimits::default(),
            )
            .await
            .unwrap();
        assert_eq!(info.prefix, key.expose()[..12]);
        let who = other.authenticate(&key).await.unwrap();
        assert_eq!(
            (who.role, who.admin, who.key_id.as_str()),
            (Role::ReadOnly, false, info.id.as_str())
        );
        // Listed, last use recorded, never a secret.
        let listed = s.list_keys(&acme).await.unwrap();
        assert_eq!(listed.len(), 2, "the first key and this one: {listed:?}");
        let row = listed.iter().find(|k| k.id == info.id).unwrap();
        assert!(row.last_used_at.is_some() && row.revoked_at.is_none());
        assert!(!format!("{listed:?}").contains(key.expose()));
        // The first key of a tenant is its admin, but no operator.
        let first = listed.iter().find(|k| k.id != info.id).unwrap();
        assert_eq!(first.role, Role::Admin);
        // Another tenant does not see it.
        let e = s.get_key("ten_nope", &info.id).await.unwrap_err();
        assert!(matches!(e, StateError::NotFound(_)), "{e:?}");
        let e = s.revoke_key("ten_nope", &info.id).await.unwrap_err();
        assert!(matches!(e, StateError::NotFound(_)), "{e:?}");
        other.authenticate(&key).await.unwrap();
        // Revoked through one store: refused by the other at once; twice keeps the first time.
        let revoked = s.revoke_key(&acme, &info.id).await.unwrap();
        let at = revoked.revoked_at.expect("revoked_at");
        let e = other.authenticate(&key).await.unwrap_err();
        assert!(matches!(e, StateError::Unauthenticated), "{e:?}");
        assert_eq!(
            other.revoke_key(&acme, &info.id).await.unwrap().revoked_at,
            Some(at)
        );
        // An expiry in the past: refused.
        let (_, old) = s
            .create_key(
                &acme,
                &NewKey {
                    name: None,
                    role: Role::Member,
                    expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
                    token: None,
                },
                &TenantLimits::default(),
            )
            .await
            .unwrap();
        let e = other.authenticate(&old).await.unwrap_err();
        assert!(matches!(e, StateError::Unauthenticated), "{e:?}");

        // At most `max_keys` live keys: the revoked and the expired one do not count, so the
        // first key and one more fit under 2; then `Exhausted` for this tenant only, until
        // one is revoked.
        let two = TenantLimits {
            max_keys: Some(2),
            ..Default::default()
        };
        let member = || NewKey {
            name: None,
            role: Role::Member,
            expires_at: None,
            token: None,
        };
        let (second, _) = s.create_key(&acme, &member(), &two).await.unwrap();
        let e = other.create_key(&acme, &member(), &two).await.unwrap_err();
        assert!(
            matches!(&e, StateError::Exhausted(m) if m.contains("max_keys")),
            "{e:?}"
        );
        let beta = new_tenant(&*s, "beta").await;
        s.create_key(&beta, &member(), &two).await.unwrap();
        s.revoke_key(&acme, &second.id).await.unwrap();
        other.create_key(&acme, &member(), &two).await.unwrap();
        // The tenant's own limit wins over the default.
        s.set_tenant_limits(
            &tenant("acme"),
            &TenantLimits {
                max_keys: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.create_key(&acme, &member(), &two).await.unwrap();
        let (_, _, usage) = s.tenant_limits(&tenant("acme")).await.unwrap();
        assert_eq!(usage.keys, 3);
    }

    pub async fn create_tenant_issues_a_non_admin_key(s: &dyn StateStore) {
        s.bootstrap(None).await.unwrap();
        let (t, key) = s.create_tenant(&tenant("acme")).await.unwrap();
        assert!(t.id.starts_with("ten_"), "{}", t.id);
        assert_eq!(t.name, "acme");
        assert_eq!(t.volume_cap_bytes, None);
        let who = s.authenticate(&key).await.unwrap();
        assert!(!who.admin);
        assert_eq!(
            (who.tenant_id.as_str(), who.tenant_name.as_str()),
            (t.id.as_str(), "acme")
        );
        assert_eq!(s.get_tenant(&tenant("acme")).await.unwrap(), t);
    }

    pub async fn duplicate_tenant_already_exists(s: &dyn StateStore) {
        s.bootstrap(None).await.unwrap();
        let (_, first_key) = s.create_tenant(&tenant("acme")).await.unwrap();
        let e = s.create_tenant(&tenant("acme")).await.unwrap_err();
        assert_already_exists(e, r#"tenant "acme" already exists"#);
        let e = s.create_tenant(&tenant(DEFAULT_TENANT)).await.unwrap_err();
        assert_already_exists(e, r#"tenant "default" already exists"#);
        // The failed attempt left the first tenant and its key alone.
        assert_eq!(
            s.authenticate(&first_key).await.unwrap().tenant_name,
            "acme"
        );
    }

    pub async fn unknown_tenant_is_not_found(s: &dyn StateStore) {
        let e = s.get_tenant(&tenant("ghost")).await.unwrap_err();
        assert_not_found(e, r#"tenant "ghost" not found"#);
        let e = s
            .set_tenant_volume_cap(&tenant("ghost"), 1 << 20)
            .await
            .unwrap_err();
        assert_not_found(e, r#"tenant "ghost" not found"#);
    }

    pub async fn tenant_cap_applies_to_new_volumes(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        let before = s
            .create_volume(&acme, &vol("before"), &Labels::new())
            .await
            .unwrap();
        assert_eq!(before.cap_bytes, DEFAULT_VOLUME_CAP);

        let t = s
            .set_tenant_volume_cap(&tenant("acme"), 5 << 30)
            .await
            .unwrap();
        assert_eq!(t.volume_cap_bytes, Some(5 << 30));
        assert_eq!(s.get_tenant(&tenant("acme")).await.unwrap(), t);

        let after = s
            .create_volume(&acme, &vol("after"), &Labels::new())
            .await
            .unwrap();
        assert_eq!(after.cap_bytes, 5 << 30);
        // Existing volumes keep their cap; other tenants keep the default.
        assert_eq!(
            s.get_volume(&acme, &vol("before")).await.unwrap().cap_bytes,
            DEFAULT_VOLUME_CAP
        );
        let theirs = s
            .create_volume(&other, &vol("after"), &Labels::new())
            .await
            .unwrap();
        assert_eq!(theirs.cap_bytes, DEFAULT_VOLUME_CAP);
    }

    pub async fn volume_lifecycle(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let l = labels(&[("team", "ml"), ("env", "prod")]);
        let v = s.create_volume(&acme, &vol("data"), &l).await.unwrap();
        assert!(v.id.starts_with("vol_"), "{}", v.id);
        assert_eq!(v.name, "data");
        assert_eq!(v.labels, l);
        assert_eq!(v.state, "ready");
        assert_eq!((v.used_bytes, v.file_count, v.attachments), (0, 0, 0));
        assert_eq!(v.cap_bytes, DEFAULT_VOLUME_CAP);
        assert_eq!(v.created_at, v.updated_at);

        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap(),
            v,
            "get returns what create did"
        );
        assert_eq!(s.list_volumes(&acme, &[]).await.unwrap(), vec![v.clone()]);

        assert_eq!(s.delete_volume(&acme, &vol("data")).await.unwrap(), v);
        let e = s.get_volume(&acme, &vol("data")).await.unwrap_err();
        assert_not_found(e, r#"volume "data" not found"#);
        let e = s.delete_volume(&acme, &vol("data")).await.unwrap_err();
        assert_not_found(e, r#"volume "data" not found"#);
        assert!(s.list_volumes(&acme, &[]).await.unwrap().is_empty());

        // The name is free again, under a new id.
        let again = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        assert_ne!(again.id, v.id);
    }

    pub async fn volume_names_are_unique_per_tenant(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        let first = s
            .create_volume(&acme, &vol("data"), &labels(&[("a", "1")]))
            .await
            .unwrap();
        let e = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap_err();
        assert_already_exists(e, r#"volume "data" already exists"#);
        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap(),
            first,
            "the loser changed nothing"
        );

        let theirs = s
            .create_volume(&other, &vol("data"), &Labels::new())
            .await
            .unwrap();
        assert_ne!(theirs.id, first.id);
    }

    pub async fn tenants_are_isolated(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        let mine = s
            .create_volume(&acme, &vol("secret"), &labels(&[("k", "v")]))
            .await
            .unwrap();

        let e = s.get_volume(&other, &vol("secret")).await.unwrap_err();
        assert_not_found(e, r#"volume "secret" not found"#);
        let e = s.delete_volume(&other, &vol("secret")).await.unwrap_err();
        assert_not_found(e, r#"volume "secret" not found"#);
        assert!(s.list_volumes(&other, &[]).await.unwrap().is_empty());
        assert!(s
            .list_volumes(&other, &selectors(&["k=v"]))
            .await
            .unwrap()
            .is_empty());

        assert_eq!(
            s.get_volume(&acme, &vol("secret")).await.unwrap(),
            mine,
            "still there"
        );
    }

    pub async fn create_volume_for_unknown_tenant_is_not_found(s: &dyn StateStore) {
        let e = s
            .create_volume("ten_nope", &vol("data"), &Labels::new())
            .await
            .unwrap_err();
        assert_not_found(e, r#"tenant "ten_nope" not found"#);
        assert!(s.all_volumes().await.unwrap().is_empty());
    }

    pub async fn list_is_sorted_by_name_and_selectors_all_match(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        for (name, l) in [
            ("zeta", labels(&[("team", "ml"), ("env", "prod")])),
            ("alpha", labels(&[("team", "ml"), ("env", "dev")])),
            ("mid", labels(&[("team", "web"), ("env", "prod")])),
            ("bare", Labels::new()),
        ] {
            s.create_volume(&acme, &vol(name), &l).await.unwrap();
        }
        let list = |sel: &'static [&'static str]| {
            let acme = acme.clone();
            async move { s.list_volumes(&acme, &selectors(sel)).await.unwrap() }
        };
        assert_eq!(names(&list(&[]).await), ["alpha", "bare", "mid", "zeta"]);
        assert_eq!(names(&list(&["team=ml"]).await), ["alpha", "zeta"]);
        assert_eq!(names(&list(&["env=prod"]).await), ["mid", "zeta"]);
        assert_eq!(names(&list(&["team=ml", "env=prod"]).await), ["zeta"]);
        assert!(list(&["team=ml", "env=staging"]).await.is_empty());
        assert!(list(&["team=ML"]).await.is_empty(), "values match exactly");
        assert!(
            list(&["team="]).await.is_empty(),
            "an empty value is a value, not a wildcard"
        );
    }

    pub async fn all_volumes_spans_tenants(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        let a = s
            .create_volume(&acme, &vol("a"), &Labels::new())
            .await
            .unwrap();
        let b = s
            .create_volume(&other, &vol("b"), &Labels::new())
            .await
            .unwrap();
        let mut ids: Vec<String> = s
            .all_volumes()
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        ids.sort();
        let mut want = vec![a.id, b.id];
        want.sort();
        assert_eq!(ids, want);
    }

    pub async fn usage_updates_round_trip(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let v = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        s.set_volume_usage(&v.id, 1234, 5).await.unwrap();
        let got = s.get_volume(&acme, &vol("data")).await.unwrap();
        assert_eq!((got.used_bytes, got.file_count), (1234, 5));
        assert!(got.updated_at >= v.updated_at);
        assert_eq!(got.created_at, v.created_at);

        // Absolute, not additive; shrinking is allowed.
        s.set_volume_usage(&v.id, 10, 1).await.unwrap();
        let got = s.get_volume(&acme, &vol("data")).await.unwrap();
        assert_eq!((got.used_bytes, got.file_count), (10, 1));
        let big = i64::MAX as u64;
        s.set_volume_usage(&v.id, big, big).await.unwrap();
        let got = s.get_volume(&acme, &vol("data")).await.unwrap();
        assert_eq!((got.used_bytes, got.file_count), (big, big));

        let e = s.set_volume_usage("vol_nope", 1, 1).await.unwrap_err();
        assert!(matches!(e, StateError::NotFound(_)), "{e:?}");
    }

    pub async fn reopening_keeps_everything(db: &dyn TestDb) {
        let admin = ApiKey::new("nsk_durable_admin_key");
        let (acme, acme_key, v) = {
            let s = db.open().await;
            s.bootstrap(Some(&admin)).await.unwrap().unwrap();
            let (_, key) = s.create_tenant(&tenant("acme")).await.unwrap();
            let acme = s
                .set_tenant_volume_cap(&tenant("acme"), 3 << 30)
                .await
                .unwrap();
            let v = s
                .create_volume(&acme.id, &vol("data"), &labels(&[("x", "y")]))
                .await
                .unwrap();
            s.set_volume_usage(&v.id, 42, 2).await.unwrap();
            let v = s.get_volume(&acme.id, &vol("data")).await.unwrap();
            (acme, key, v)
        };

        let s = db.open().await;
        assert_eq!(s.bootstrap(None).await.unwrap(), None, "still bootstrapped");
        assert!(s.authenticate(&admin).await.unwrap().admin);
        assert_eq!(s.authenticate(&acme_key).await.unwrap().tenant_id, acme.id);
        assert_eq!(s.get_tenant(&tenant("acme")).await.unwrap(), acme);
        assert_eq!(s.get_volume(&acme.id, &vol("data")).await.unwrap(), v);
        assert_eq!(s.all_volumes().await.unwrap(), vec![v]);
    }

    pub async fn concurrent_creates_of_one_name_admit_exactly_one(s: Arc<dyn StateStore>) {
        let acme = new_tenant(&*s, "acme").await;
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, start, acme) = (s.clone(), start.clone(), acme.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let l = labels(&[("writer", &i.to_string())]);
                    s.create_volume(&acme, &vol("race"), &l).await
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(v) => won.push(v),
                Err(e) => assert_already_exists(e, r#"volume "race" already exists"#),
            }
        }
        assert_eq!(won.len(), 1, "exactly one create succeeds");
        assert_eq!(s.list_volumes(&acme, &[]).await.unwrap(), won);
    }

    pub async fn keys_are_redacted_in_debug(s: &dyn StateStore) {
        let admin = ApiKey::new("nsk_redaction_probe_admin");
        let created = s.bootstrap(Some(&admin)).await.unwrap();
        let (t, key) = s.create_tenant(&tenant("acme")).await.unwrap();
        let pair = (t, key.clone());
        for shown in [
            format!("{created:?}"),
            format!("{pair:?}"),
            format!("{admin:?}"),
        ] {
            for secret in [admin.expose(), key.expose()] {
                assert!(!shown.contains(secret), "{shown} reveals a key");
            }
            for hash in [admin.hash(), key.hash()] {
                assert!(!shown.contains(&hash), "{shown} reveals a key hash");
            }
        }
    }

    pub async fn list_sorts_names_bytewise(s: &dyn StateStore) {
        // Every character a name may hold, in byte order: '-' < '.' < digits < '_' < letters.
        // A locale-aware collation would order these differently.
        let acme = new_tenant(s, "acme").await;
        let mut want = vec!["a-b", "a.b", "a0", "a9", "a_b", "aa", "ab", "b", "b-", "ba"];
        for name in want.iter().rev() {
            s.create_volume(&acme, &vol(name), &Labels::new())
                .await
                .unwrap();
        }
        want.sort_unstable();
        assert_eq!(names(&s.list_volumes(&acme, &[]).await.unwrap()), want);
    }

    pub async fn labels_round_trip_exactly(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let l = labels(&[
            ("plain", "value"),
            ("empty", ""),
            ("unicode", "grüße, 日本, 🚀"),
            ("quotes", r#"say "hi" \ back"#),
            ("json-ish", r#"{"not": "an object"}"#),
            ("app.io/tier", "a/b=c"),
        ]);
        let v = s.create_volume(&acme, &vol("data"), &l).await.unwrap();
        assert_eq!(v.labels, l);
        assert_eq!(s.get_volume(&acme, &vol("data")).await.unwrap().labels, l);
        let sel = selectors(&["unicode=grüße, 日本, 🚀", "app.io/tier=a/b=c"]);
        assert_eq!(names(&s.list_volumes(&acme, &sel).await.unwrap()), ["data"]);
    }

    pub async fn two_stores_on_one_database_see_each_others_writes(db: &dyn TestDb) {
        let (a, b) = (db.open().await, db.open().await);
        let admin = a.bootstrap(None).await.unwrap().unwrap();
        assert_eq!(b.bootstrap(None).await.unwrap(), None);
        assert!(b.authenticate(&admin).await.unwrap().admin);

        let (t, key) = b.create_tenant(&tenant("acme")).await.unwrap();
        assert_eq!(a.authenticate(&key).await.unwrap().tenant_id, t.id);
        assert_eq!(a.get_tenant(&tenant("acme")).await.unwrap(), t);

        let v = a
            .create_volume(&t.id, &vol("data"), &labels(&[("k", "v")]))
            .await
            .unwrap();
        assert_eq!(b.get_volume(&t.id, &vol("data")).await.unwrap(), v);
        b.set_volume_usage(&v.id, 99, 3).await.unwrap();
        let seen = a.get_volume(&t.id, &vol("data")).await.unwrap();
        assert_eq!((seen.used_bytes, seen.file_count), (99, 3));
        assert_eq!(b.all_volumes().await.unwrap(), vec![seen.clone()]);

        assert_eq!(b.delete_volume(&t.id, &vol("data")).await.unwrap(), seen);
        let e = a.get_volume(&t.id, &vol("data")).await.unwrap_err();
        assert_not_found(e, r#"volume "data" not found"#);
    }

    pub async fn concurrent_creates_through_two_stores_admit_exactly_one(db: &dyn TestDb) {
        let stores = [db.open().await, db.open().await];
        let acme = new_tenant(&*stores[0], "acme").await;
        for round in 0..5 {
            let name = format!("race-{round}");
            let start = Arc::new(Barrier::new(8));
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let s = stores[i % 2].clone();
                    let (start, acme, name) = (start.clone(), acme.clone(), name.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        let l = labels(&[("writer", &i.to_string())]);
                        s.create_volume(&acme, &vol(&name), &l).await
                    })
                })
                .collect();
            let mut won = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    Ok(v) => won.push(v),
                    Err(e) => assert_already_exists(e, &format!("volume {name:?} already exists")),
                }
            }
            assert_eq!(won.len(), 1, "exactly one create of {name} succeeds");
            for s in &stores {
                assert_eq!(s.get_volume(&acme, &vol(&name)).await.unwrap(), won[0]);
            }
        }
        assert_eq!(stores[1].list_volumes(&acme, &[]).await.unwrap().len(), 5);
    }

    pub async fn concurrent_bootstraps_through_two_stores_create_one_key(db: &dyn TestDb) {
        let stores = [db.open().await, db.open().await];
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, start) = (stores[i % 2].clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    s.bootstrap(None).await
                })
            })
            .collect();
        let mut created = Vec::new();
        for t in tasks {
            if let Some(k) = t.await.unwrap().unwrap() {
                created.push(k);
            }
        }
        assert_eq!(created.len(), 1, "exactly one bootstrap creates a key");
        for s in &stores {
            assert!(s.authenticate(&created[0]).await.unwrap().admin);
        }
    }

    pub async fn caps_set_through_one_store_apply_through_another(db: &dyn TestDb) {
        let (a, b) = (db.open().await, db.open().await);
        let acme = new_tenant(&*a, "acme").await;
        b.set_tenant_volume_cap(&tenant("acme"), 7 << 20)
            .await
            .unwrap();
        let v = a
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        assert_eq!(v.cap_bytes, 7 << 20);
    }

    fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_750_000_000 + secs, 123_456_000).unwrap()
    }

    fn attachment(id: &str, volume: &nullspace_core::Volume, path: &str) -> AttachmentRecord {
        AttachmentRecord {
            id: id.to_owned(),
            volume_id: volume.id.clone(),
            volume_name: volume.name.clone(),
            mount_path: path.to_owned(),
            read_only: false,
            subpath: None,
            state: AttachmentState::Mounted,
            error: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn sandbox(id: &str, tenant_id: &str, server: &str, created: i64) -> SandboxRecord {
        SandboxRecord {
            id: id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            server_id: server.to_owned(),
            name: None,
            template: "base".to_owned(),
            state: SandboxState::Running,
            timeout_secs: None,
            expires_at: None,
            created_at: at(created),
            updated_at: at(created),
            attachments: Vec::new(),
            // Not the defaults, so a round trip shows they are stored.
            limits: nullspace_state::SandboxLimits {
                cpu_millicores: 500,
                memory_bytes: 64 << 20,
                disk_bytes: 128 << 20,
                pids: 64,
            },
            // Not the default either.
            runtime: "gvisor".to_owned(),
        }
    }

    fn ids(list: &[SandboxRecord]) -> Vec<&str> {
        list.iter().map(|s| s.id.as_str()).collect()
    }

    pub async fn sandbox_records_round_trip(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let extra = s
            .create_volume(&acme, &vol("extra"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "host-a-7420", 5);
        sb.name = Some("grüße".to_owned());
        sb.timeout_secs = Some(30);
        sb.expires_at = Some(at(35));
        // Order is kept as given, not sorted by id or path.
        sb.attachments = vec![
            attachment("att-z", &extra, "/z"),
            AttachmentRecord {
                read_only: true,
                subpath: Some("a/b".to_owned()),
                state: AttachmentState::Failed,
                error: Some("volume is gone".to_owned()),
                ..attachment("att-a", &data, "/a")
            },
        ];
        s.create_sandbox(&sb).await.unwrap();
        assert_eq!(s.get_sandbox(&acme, "sb-1").await.unwrap(), sb);
        assert_eq!(s.list_sandboxes(&acme).await.unwrap(), vec![sb.clone()]);
        // The volume's `attachments` count comes from the records, in get, list and all.
        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap().attachments,
            1
        );
        let counts: Vec<u64> = s
            .list_volumes(&acme, &[])
            .await
            .unwrap()
            .iter()
            .map(|v| v.attachments)
            .collect();
        assert_eq!(counts, [1, 1]);
        assert!(s
            .all_volumes()
            .await
            .unwrap()
            .iter()
            .all(|v| v.attachments == 1));

        let e = s.create_sandbox(&sb).await.unwrap_err();
        assert_already_exists(e, r#"sandbox "sb-1" already exists"#);
        let other = new_tenant(s, "other").await;
        let e = s.get_sandbox(&other, "sb-1").await.unwrap_err();
        assert_not_found(e, r#"sandbox "sb-1" not found"#);
        assert_eq!(s.list_sandboxes(&other).await.unwrap(), vec![]);
        let e = s.get_sandbox(&acme, "sb-none").await.unwrap_err();
        assert_not_found(e, r#"sandbox "sb-none" not found"#);
    }

    pub async fn sandbox_lists_select_by_tenant_server_and_volume(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let beta = new_tenant(s, "beta").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let mut one = sandbox("sb-1", &acme, "a", 3);
        one.attachments = vec![attachment("att-1", &data, "/d")];
        let two = sandbox("sb-2", &acme, "b", 1);
        let three = sandbox("sb-3", &beta, "a", 2);
        for sb in [&one, &two, &three] {
            s.create_sandbox(sb).await.unwrap();
        }
        // Oldest first.
        assert_eq!(
            ids(&s.list_sandboxes(&acme).await.unwrap()),
            ["sb-2", "sb-1"]
        );
        assert_eq!(
            ids(&s.server_sandboxes("a").await.unwrap()),
            ["sb-3", "sb-1"]
        );
        assert_eq!(ids(&s.server_sandboxes("b").await.unwrap()), ["sb-2"]);
        assert_eq!(s.server_sandboxes("c").await.unwrap(), vec![]);
        assert_eq!(s.volume_sandboxes(&data.id).await.unwrap(), vec![one]);
    }

    pub async fn sandbox_create_is_all_or_nothing(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        // Two attachments on one path: refused, and no sandbox record is left.
        sb.attachments = vec![
            attachment("att-1", &data, "/d"),
            attachment("att-2", &data, "/d"),
        ];
        let e = s.create_sandbox(&sb).await.unwrap_err();
        assert!(matches!(e, StateError::AlreadyExists(_)), "{e:?}");
        // An attachment of a volume that does not exist: `NotFound` naming it.
        let mut ghost = attachment("att-3", &data, "/g");
        ghost.volume_id = "vol_gone".to_owned();
        ghost.volume_name = "gone".to_owned();
        sb.attachments = vec![attachment("att-1", &data, "/d"), ghost];
        let e = s.create_sandbox(&sb).await.unwrap_err();
        assert_not_found(e, r#"volume "gone" not found"#);
        assert_eq!(s.list_sandboxes(&acme).await.unwrap(), vec![]);
        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap().attachments,
            0
        );
        // An unknown tenant.
        let e = s
            .create_sandbox(&sandbox("sb-2", "ten_none", "a", 0))
            .await
            .unwrap_err();
        assert_not_found(e, r#"tenant "ten_none" not found"#);
    }

    pub async fn sandbox_update_replaces_state_and_attachments(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let extra = s
            .create_volume(&acme, &vol("extra"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        sb.attachments = vec![attachment("att-1", &data, "/d")];
        s.create_sandbox(&sb).await.unwrap();

        sb.state = SandboxState::Paused;
        sb.updated_at = at(9);
        sb.attachments[0].state = AttachmentState::Released;
        sb.attachments[0].updated_at = at(9);
        sb.attachments.push(attachment("att-2", &extra, "/e"));
        s.update_sandbox(&sb).await.unwrap();
        assert_eq!(s.get_sandbox(&acme, "sb-1").await.unwrap(), sb);

        sb.attachments.remove(0);
        s.update_sandbox(&sb).await.unwrap();
        assert_eq!(s.get_sandbox(&acme, "sb-1").await.unwrap(), sb);
        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap().attachments,
            0
        );
        assert_eq!(
            s.get_volume(&acme, &vol("extra"))
                .await
                .unwrap()
                .attachments,
            1
        );

        let e = s
            .update_sandbox(&sandbox("sb-none", &acme, "a", 0))
            .await
            .unwrap_err();
        assert_not_found(e, r#"sandbox "sb-none" not found"#);
    }

    pub async fn sandbox_delete_releases_its_attachments(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        sb.attachments = vec![attachment("att-1", &data, "/d")];
        s.create_sandbox(&sb).await.unwrap();
        s.delete_sandbox("sb-1").await.unwrap();
        assert_eq!(
            s.get_volume(&acme, &vol("data")).await.unwrap().attachments,
            0
        );
        assert_eq!(s.volume_sandboxes(&data.id).await.unwrap(), vec![]);
        let e = s.delete_sandbox("sb-1").await.unwrap_err();
        assert_not_found(e, r#"sandbox "sb-1" not found"#);
        // The id may be used again (a record is gone for good).
        s.create_sandbox(&sb).await.unwrap();
    }

    pub async fn volume_delete_removes_its_attachment_records(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let extra = s
            .create_volume(&acme, &vol("extra"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        sb.attachments = vec![
            attachment("att-1", &data, "/d"),
            attachment("att-2", &extra, "/e"),
        ];
        s.create_sandbox(&sb).await.unwrap();
        s.delete_volume(&acme, &vol("data")).await.unwrap();
        let left = s.get_sandbox(&acme, "sb-1").await.unwrap();
        assert_eq!(left.attachments, vec![sb.attachments[1].clone()]);
    }

    /// What a server may cache (resolved keys, volume records with their attachment counts)
    /// is current while the generation has not moved: every change that can stale it moves
    /// the generation seen through another store of the database, and a usage copy does not.
    pub async fn the_cache_generation_moves_with_every_change_that_stales_a_cached_entry(
        db: &dyn TestDb,
    ) {
        use nullspace_state::{NewKey, Role};
        let (s, other) = (db.open().await, db.open().await);
        let generation = || async { other.generation().await.unwrap().expect("a generation") };
        let acme = new_tenant(&*s, "acme").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let (info, key) = s
            .create_key(
                &acme,
                &NewKey {
                    name: None,
                    role: Role::Member,
                    expires_at: None,
                    token: None,
                },
                &TenantLimits::default(),
            )
            .await
            .unwrap();
        let g = generation().await;
        // Resolved under the current generation, by either store.
        assert_eq!(other.authenticate(&key).await.unwrap().generation, Some(g));
        s.set_volume_usage(&data.id, 10, 1).await.unwrap();
        assert_eq!(generation().await, g, "a usage copy stales nothing");
        let mut last = g;
        let mut moved = |what: &str, now: u64| {
            assert!(now != last, "{what} did not move the generation");
            last = now;
        };
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        sb.attachments = vec![attachment("att-1", &data, "/d")];
        s.create_sandbox(&sb).await.unwrap();
        moved("a sandbox create", generation().await);
        sb.attachments.clear();
        s.update_sandbox(&sb).await.unwrap();
        moved("a sandbox update", generation().await);
        s.delete_sandbox("sb-1").await.unwrap();
        moved("a sandbox delete", generation().await);
        s.rename_volume(&acme, &vol("data"), &vol("renamed"))
            .await
            .unwrap();
        moved("a volume rename", generation().await);
        s.delete_volume(&acme, &vol("renamed")).await.unwrap();
        moved("a volume delete", generation().await);
        s.revoke_key(&acme, &info.id).await.unwrap();
        moved("a revocation", generation().await);
        let e = other.authenticate(&key).await.unwrap_err();
        assert!(matches!(e, StateError::Unauthenticated), "{e:?}");
    }

    pub async fn volume_rename_keeps_the_volume_and_refuses_while_attached(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        let data = s
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        s.create_volume(&acme, &vol("taken"), &Labels::new())
            .await
            .unwrap();
        s.create_volume(&other, &vol("free"), &Labels::new())
            .await
            .unwrap();

        let renamed = s
            .rename_volume(&acme, &vol("data"), &vol("fresh"))
            .await
            .unwrap();
        assert_eq!(renamed.id, data.id);
        assert_eq!(renamed.name, "fresh");
        assert_eq!(renamed.cap_bytes, data.cap_bytes);
        assert_eq!(
            s.get_volume(&acme, &vol("fresh")).await.unwrap().id,
            data.id
        );
        let e = s.get_volume(&acme, &vol("data")).await.unwrap_err();
        assert_not_found(e, r#"volume "data" not found"#);

        // Another volume's name is taken; another tenant's is not.
        let e = s
            .rename_volume(&acme, &vol("fresh"), &vol("taken"))
            .await
            .unwrap_err();
        assert!(matches!(e, StateError::AlreadyExists(_)), "{e:?}");
        s.rename_volume(&acme, &vol("fresh"), &vol("free"))
            .await
            .unwrap();
        let e = s
            .rename_volume(&acme, &vol("nope"), &vol("x"))
            .await
            .unwrap_err();
        assert_not_found(e, r#"volume "nope" not found"#);
        let e = s
            .rename_volume(&other, &vol("free"), &vol("free"))
            .await
            .unwrap();
        assert_eq!(e.name, "free", "renaming to its own name is a no-op");

        // Attached (whatever the sandbox's state): refused, nothing changes.
        let mut sb = sandbox("sb-1", &acme, "a", 0);
        sb.attachments = vec![attachment("att-1", &renamed, "/d")];
        s.create_sandbox(&sb).await.unwrap();
        let e = s
            .rename_volume(&acme, &vol("free"), &vol("moved"))
            .await
            .unwrap_err();
        assert!(matches!(e, StateError::InUse(_)), "{e:?}");
        assert_eq!(s.get_volume(&acme, &vol("free")).await.unwrap().id, data.id);
        s.delete_sandbox("sb-1").await.unwrap();
        s.rename_volume(&acme, &vol("free"), &vol("moved"))
            .await
            .unwrap();
    }

    pub async fn tenant_limits_round_trip_and_change_only_what_is_given(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let (t, own, usage) = s.tenant_limits(&tenant("acme")).await.unwrap();
        assert_eq!(t.id, acme);
        assert_eq!(own, TenantLimits::default(), "no limits of its own yet");
        // Nothing held but the tenant's first key.
        assert_eq!(
            usage,
            TenantUsage {
                keys: 1,
                ..Default::default()
            }
        );
        let first = TenantLimits {
            max_sandboxes: Some(3),
            max_total_memory: Some(5 << 30),
            ..Default::default()
        };
        s.set_tenant_limits(&tenant("acme"), &first).await.unwrap();
        let more = TenantLimits {
            max_volumes: Some(9),
            max_sandboxes: Some(4),
            ..Default::default()
        };
        s.set_tenant_limits(&tenant("acme"), &more).await.unwrap();
        let (_, own, _) = s.tenant_limits(&tenant("acme")).await.unwrap();
        assert_eq!(
            own,
            TenantLimits {
                max_sandboxes: Some(4),
                max_volumes: Some(9),
                max_total_memory: Some(5 << 30),
                ..Default::default()
            }
        );
        assert_not_found(
            s.set_tenant_limits(&tenant("nobody"), &first)
                .await
                .unwrap_err(),
            "tenant \"nobody\" not found",
        );
    }

    pub async fn sandbox_creates_within_limits_count_every_sandbox(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let other = new_tenant(s, "other").await;
        // 64 MiB memory and 128 MiB disk each (see `sandbox`).
        let defaults = TenantLimits {
            max_sandboxes: Some(2),
            max_total_memory: Some(100 << 20),
            ..Default::default()
        };
        s.create_sandbox_within(&sandbox("sb-1", &acme, "a", 0), &defaults)
            .await
            .unwrap();
        let e = s
            .create_sandbox_within(&sandbox("sb-2", &acme, "a", 1), &defaults)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StateError::Exhausted(m) if m.contains("max_total_memory")),
            "{e:?}"
        );
        // The tenant's own limit wins over the default.
        let own = TenantLimits {
            max_total_memory: Some(1 << 30),
            max_total_disk: Some(200 << 20),
            ..Default::default()
        };
        s.set_tenant_limits(&tenant("acme"), &own).await.unwrap();
        let e = s
            .create_sandbox_within(&sandbox("sb-2", &acme, "a", 1), &defaults)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StateError::Exhausted(m) if m.contains("max_total_disk")),
            "{e:?}"
        );
        let (_, _, usage) = s.tenant_limits(&tenant("acme")).await.unwrap();
        assert_eq!(
            usage,
            TenantUsage {
                sandboxes: 1,
                volumes: 0,
                memory_bytes: 64 << 20,
                disk_bytes: 128 << 20,
                // The tenant's first key.
                keys: 1,
            }
        );
        assert_eq!(ids(&s.list_sandboxes(&acme).await.unwrap()), ["sb-1"]);
        // Another tenant counts its own.
        s.create_sandbox_within(&sandbox("sb-3", &other, "a", 2), &defaults)
            .await
            .unwrap();
        let e = s
            .create_sandbox_within(&sandbox("sb-4", "ten_none", "a", 3), &defaults)
            .await
            .unwrap_err();
        assert!(matches!(e, StateError::NotFound(_)), "{e:?}");
    }

    pub async fn volume_creates_within_limits_keep_names_first(s: &dyn StateStore) {
        let acme = new_tenant(s, "acme").await;
        let defaults = TenantLimits {
            max_volumes: Some(1),
            ..Default::default()
        };
        s.create_volume_within(&acme, &vol("one"), &Labels::new(), &defaults)
            .await
            .unwrap();
        assert_already_exists(
            s.create_volume_within(&acme, &vol("one"), &Labels::new(), &defaults)
                .await
                .unwrap_err(),
            "volume \"one\" already exists",
        );
        let e = s
            .create_volume_within(&acme, &vol("two"), &Labels::new(), &defaults)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StateError::Exhausted(m) if m.contains("max_volumes")),
            "{e:?}"
        );
        assert_eq!(names(&s.list_volumes(&acme, &[]).await.unwrap()), ["one"]);
    }

    pub async fn concurrent_creates_through_two_stores_stay_within_max_sandboxes(db: &dyn TestDb) {
        let stores = [db.open().await, db.open().await];
        let acme = new_tenant(&*stores[0], "acme").await;
        let defaults = TenantLimits {
            max_sandboxes: Some(3),
            ..Default::default()
        };
        let start = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = stores[i % 2].clone();
                let (start, acme) = (start.clone(), acme.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let sb = sandbox(&format!("sb-{i}"), &acme, "a", i as i64);
                    s.create_sandbox_within(&sb, &defaults).await
                })
            })
            .collect();
        let mut made = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => made += 1,
                Err(StateError::Exhausted(m)) => assert!(m.contains("max_sandboxes"), "{m}"),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(made, 3);
        assert_eq!(stores[1].list_sandboxes(&acme).await.unwrap().len(), 3);
    }

    pub async fn sandbox_records_are_shared_by_two_stores(db: &dyn TestDb) {
        let (a, b) = (db.open().await, db.open().await);
        let acme = new_tenant(&*a, "acme").await;
        let data = a
            .create_volume(&acme, &vol("data"), &Labels::new())
            .await
            .unwrap();
        let mut sb = sandbox("sb-1", &acme, "server-a", 0);
        sb.attachments = vec![attachment("att-1", &data, "/d")];
        a.create_sandbox(&sb).await.unwrap();
        assert_eq!(b.get_sandbox(&acme, "sb-1").await.unwrap(), sb);
        assert_eq!(
            b.get_volume(&acme, &vol("data")).await.unwrap().attachments,
            1
        );
        sb.state = SandboxState::Hibernated;
        a.update_sandbox(&sb).await.unwrap();
        assert_eq!(b.list_sandboxes(&acme).await.unwrap(), vec![sb.clone()]);
        assert_eq!(b.server_sandboxes("server-a").await.unwrap(), vec![sb]);
        b.delete_sandbox("sb-1").await.unwrap();
        let e = a.get_sandbox(&acme, "sb-1").await.unwrap_err();
        assert_not_found(e, r#"sandbox "sb-1" not found"#);
    }
}
