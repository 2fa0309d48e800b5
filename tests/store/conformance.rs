//! The storage conformance suite: the same tests against the `Store` trait on SQLite and on
//! PostgreSQL. Each test name appears twice in the test output, `sqlite::…` and `postgres::…`.

use crate::common;

use std::sync::Arc;

use chrono::Duration;
use common::{Backend, TestDb};
use serde_json::json;
use snorq::domain::{self, ConnectionStatus, Plan, Role};
use snorq::store::*;
use snorq_connectors::Platform;
use sqlx::types::Json;
use uuid::Uuid;

async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    store
        .insert_user(&NewUser {
            id: domain::new_id(),
            email: email.to_owned(),
            email_normalized: email.to_lowercase(),
            name: "Someone".into(),
            password_hash: Some("$argon2id$fake".into()),
            created_at: domain::now(),
        })
        .await
        .expect("insert user")
}

async fn org(store: &Arc<dyn Store>, owner: &User, slug: &str, plan: Plan) -> Organization {
    store
        .insert_organization(&NewOrganization {
            id: domain::new_id(),
            name: format!("Org {slug}"),
            slug: slug.to_owned(),
            plan,
            owner_id: owner.id,
            created_at: domain::now(),
        })
        .await
        .expect("insert org")
}

fn connection(org: &Organization, platform: Platform, account: &str) -> Connection {
    let now = domain::now();
    Connection {
        id: domain::new_id(),
        organization_id: org.id,
        platform: PlatformColumn(platform),
        platform_user_id: account.to_owned(),
        name: Some("Main line".into()),
        status: ConnectionStatus::Active,
        access_token_enc: Some("snorq1.k1.access".into()),
        refresh_token_enc: None,
        token_fingerprint: Some("sha256:00000000".into()),
        access_token_expires_at: Some(now + Duration::hours(24)),
        refresh_token_expires_at: None,
        settings: Json(json!({"human_agent": true})),
        last_error: None,
        granted_by_external_id: None,
        failure_count: 0,
        last_checked_at: None,
        last_refreshed_at: None,
        created_at: now,
        updated_at: now,
        granted_at: None,
    }
}

async fn users_are_unique_by_case_insensitive_email(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "Ana@Example.com").await;
    let again = store
        .insert_user(&NewUser {
            id: domain::new_id(),
            email: "ANA@example.com".into(),
            email_normalized: "ana@example.com".into(),
            name: "Impostor".into(),
            password_hash: None,
            created_at: domain::now(),
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Constraint::UserEmail))),
        "{again:?}"
    );
    let found = store.user_credentials("ana@example.com").await.unwrap().unwrap();
    assert_eq!(found.user, ana);
    assert_eq!(found.password_hash.as_deref(), Some("$argon2id$fake"));
    assert_eq!(store.user(ana.id).await.unwrap(), Some(ana));
    assert!(
        store
            .user_credentials("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn timestamps_round_trip_exactly(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let created = user(&store, "time@example.com").await;
    let read = store.user(created.id).await.unwrap().unwrap();
    assert_eq!(read.created_at, created.created_at);
}

async fn sessions_expire_and_revoke(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let now = domain::now();
    let live = NewApiToken {
        id: domain::new_id(),
        token_hash: "a".repeat(64),
        user_id: ana.id,
        organization_id: None,
        kind: TokenKind::Session,
        name: None,
        created_at: now,
        expires_at: Some(now + Duration::hours(1)),
    };
    store.insert_api_token(&live).await.unwrap();
    let expired = NewApiToken {
        id: domain::new_id(),
        token_hash: "b".repeat(64),
        expires_at: Some(now - Duration::seconds(1)),
        ..live
    };
    store.insert_api_token(&expired).await.unwrap();

    let session = store
        .session(&"a".repeat(64), now)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(session.user, ana);
    assert_eq!(session.token_organization_id, None);
    assert!(
        store.session(&"b".repeat(64), now).await.unwrap().is_none(),
        "expired"
    );
    // Sub-second precision matters at the boundary.
    assert!(
        store
            .session(&"a".repeat(64), now + Duration::hours(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session(&"a".repeat(64), now + Duration::minutes(59))
            .await
            .unwrap()
            .is_some()
    );

    store.revoke_api_token(session.token_id, now).await.unwrap();
    assert!(
        store.session(&"a".repeat(64), now).await.unwrap().is_none(),
        "revoked"
    );
}

/// The one-statement lookup an organization route makes: the session and the membership, the
/// membership absent for a non-member, nothing for a dead token.
async fn sessions_are_read_with_their_membership(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let bea = user(&store, "bea@example.com").await;
    let team = org(&store, &ana, "team", Plan::Business).await;
    let other = org(&store, &bea, "other", Plan::Free).await;
    store
        .add_member(team.id, bea.id, Role::Admin, domain::now())
        .await
        .unwrap();
    let now = domain::now();
    let token = |user: &User, hash: char, expires_in: Duration| NewApiToken {
        id: domain::new_id(),
        token_hash: hash.to_string().repeat(64),
        user_id: user.id,
        organization_id: None,
        kind: TokenKind::Session,
        name: None,
        created_at: now,
        expires_at: Some(now + expires_in),
    };
    store
        .insert_api_token(&token(&bea, 'a', Duration::hours(1)))
        .await
        .unwrap();
    store
        .insert_api_token(&token(&ana, 'b', -Duration::seconds(1)))
        .await
        .unwrap();

    let (session, membership) = store
        .session_in_org(&"a".repeat(64), now, team.id)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(session.user, bea);
    let membership = membership.expect("bea is a member of team");
    let expected = store.membership(team.id, bea.id).await.unwrap().unwrap();
    assert_eq!(membership.organization, expected.organization);
    assert_eq!(membership.organization, team);
    assert_eq!(membership.role, Role::Admin);

    let (session, membership) = store
        .session_in_org(&"a".repeat(64), now, other.id)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(session.user, bea);
    assert_eq!(membership.expect("bea owns other").role, Role::Owner);

    // An unknown organization, a non-member (ana in bea's organization), dead tokens.
    let (_, none) = store
        .session_in_org(&"a".repeat(64), now, domain::new_id())
        .await
        .unwrap()
        .unwrap();
    assert!(none.is_none());
    store
        .insert_api_token(&token(&ana, 'c', Duration::hours(1)))
        .await
        .unwrap();
    let (session, none) = store
        .session_in_org(&"c".repeat(64), now, other.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user, ana);
    assert!(none.is_none(), "ana is not a member of other");
    for dead in ['b', 'd'] {
        assert!(
            store
                .session_in_org(&dead.to_string().repeat(64), now, team.id)
                .await
                .unwrap()
                .is_none(),
            "expired or unknown token {dead}"
        );
    }
}

async fn organizations_start_with_their_owner(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let acme = org(&store, &ana, "acme", Plan::Free).await;
    assert_eq!(acme.plan, Plan::Free);
    let members = store.members(acme.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].user_id, members[0].role), (ana.id, Role::Owner));
    let memberships = store.memberships(ana.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].organization, acme);
    assert_eq!(
        store.organization_by_slug("acme").await.unwrap(),
        Some(acme.clone())
    );

    let dup = store
        .insert_organization(&NewOrganization {
            id: domain::new_id(),
            name: "Other".into(),
            slug: "acme".into(),
            plan: Plan::Free,
            owner_id: ana.id,
            created_at: domain::now(),
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(Constraint::OrganizationSlug))),
        "{dup:?}"
    );
    // The failed insert left no half-made organization behind.
    assert_eq!(store.memberships(ana.id).await.unwrap().len(), 1);

    let renamed = store
        .update_organization(
            acme.id,
            &OrganizationUpdate {
                name: Some("Acme Inc".into()),
                plan: Some(Plan::Pro),
                ..OrganizationUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.slug.as_str(), renamed.plan),
        ("Acme Inc", "acme", Plan::Pro)
    );
    let missing = store
        .update_organization(Uuid::now_v7(), &OrganizationUpdate::default())
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn seat_limits_follow_the_plan(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "owner@example.com").await;
    let others = [
        user(&store, "b@example.com").await,
        user(&store, "c@example.com").await,
        user(&store, "d@example.com").await,
        user(&store, "e@example.com").await,
    ];
    for (plan, seats) in [(Plan::Free, 1), (Plan::Pro, 3), (Plan::Business, 4)] {
        let o = org(
            &store,
            &owner,
            &format!("plan-{}", plan.as_db().to_lowercase()),
            plan,
        )
        .await;
        let mut added = 0;
        for u in &others {
            match store.add_member(o.id, u.id, Role::Member, domain::now()).await {
                Ok(m) => {
                    assert_eq!(m.role, Role::Member);
                    added += 1;
                }
                Err(StoreError::PlanLimit { limit }) => assert_eq!(limit, seats),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(added + 1, seats, "{plan:?}");
        assert_eq!(store.members(o.id).await.unwrap().len() as i64, seats);
    }
}

async fn concurrent_adds_never_exceed_the_seat_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "owner@example.com").await;
    let o = org(&store, &owner, "race", Plan::Pro).await;
    let mut candidates = Vec::new();
    for i in 0..6 {
        candidates.push(user(&store, &format!("u{i}@example.com")).await);
    }
    let tasks: Vec<_> = candidates
        .iter()
        .map(|u| {
            let store = store.clone();
            let (org_id, user_id) = (o.id, u.id);
            tokio::spawn(async move {
                store
                    .add_member(org_id, user_id, Role::Member, domain::now())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::PlanLimit { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 2, "PRO has 3 seats, the owner holds one");
    assert_eq!(store.members(o.id).await.unwrap().len(), 3);
}

async fn membership_changes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let owner = user(&store, "owner@example.com").await;
    let bea = user(&store, "bea@example.com").await;
    let o = org(&store, &owner, "team", Plan::Business).await;
    store
        .add_member(o.id, bea.id, Role::Member, domain::now())
        .await
        .unwrap();
    let dup = store.add_member(o.id, bea.id, Role::Admin, domain::now()).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(Constraint::Membership))),
        "{dup:?}"
    );

    assert_eq!(
        store
            .set_member_role(o.id, bea.id, Role::Admin)
            .await
            .unwrap()
            .role,
        Role::Admin
    );
    // The owner's role is not changed by set_member_role, nor is the owner removed.
    assert!(matches!(
        store.set_member_role(o.id, owner.id, Role::Member).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.remove_member(o.id, owner.id).await.unwrap());

    store
        .transfer_ownership(o.id, owner.id, bea.id, domain::now())
        .await
        .unwrap();
    let roles: Vec<_> = store
        .members(o.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert!(
        roles.contains(&(bea.id, Role::Owner)) && roles.contains(&(owner.id, Role::Admin)),
        "{roles:?}"
    );
    let membership = store.membership(o.id, bea.id).await.unwrap().unwrap();
    assert_eq!(membership.organization.owner_id, bea.id);
    // A transfer from someone who is no longer the owner changes nothing.
    let stale = store
        .transfer_ownership(o.id, owner.id, owner.id, domain::now())
        .await;
    assert!(matches!(stale, Err(StoreError::NotFound)));
    assert_eq!(
        store.membership(o.id, bea.id).await.unwrap().unwrap().role,
        Role::Owner
    );

    assert!(store.remove_member(o.id, owner.id).await.unwrap());
    assert!(!store.remove_member(o.id, owner.id).await.unwrap());
    assert!(store.membership(o.id, owner.id).await.unwrap().is_none());
}

/// Finding 3 of the trust issue: every event woke every live stream of every organization. The
/// pump now wakes an organization's streams only when that organization has new events.
async fn an_event_wakes_only_its_own_organizations_streams(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let one = org(&store, &ana, "one", Plan::Free).await;
    let two = org(&store, &ana, "two", Plan::Free).await;
    let pump = snorq::app::live::EventPump::default();
    let mut first = pump.subscribe(store.clone(), one.id);
    let second = pump.subscribe(store.clone(), two.id);
    // Let the pump take its starting point, then write an event of the first organization.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    store
        .insert_connection(&connection(&one, Platform::WhatsApp, "5001"))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), first.changed())
        .await
        .expect("the first organization's streams are woken")
        .unwrap();
    assert!(*first.borrow() > 0);
    // Several pump rounds later, the second organization's streams were never woken.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !second.has_changed().unwrap(),
        "another organization's event woke this stream"
    );
    pump.close();
}

/// Issue 21: a commit of events signals the readers of every process on the database
/// (PostgreSQL: LISTEN/NOTIFY between two pools; SQLite, which has no notifications: the
/// writing process's own readers), and the events are below the horizon once signalled.
async fn committed_events_signal_the_readers_of_every_process(backend: Backend) {
    let db = TestDb::new(backend).await;
    let writer = db.store().await;
    let reader = match backend {
        Backend::Postgres => db.store().await,
        Backend::Sqlite => writer.clone(),
    };
    let ana = user(&writer, "ana@example.com").await;
    let one = org(&writer, &ana, "one", Plan::Free).await;
    let mut signal = reader.event_signal();
    if matches!(backend, Backend::Postgres) {
        // The listener signals once it listens; only then can it hear the commit.
        tokio::time::timeout(std::time::Duration::from_secs(5), signal.changed())
            .await
            .expect("the listener starts")
            .unwrap();
    }
    signal.borrow_and_update();
    let horizon = reader.event_horizon().await.unwrap();
    let before = reader.latest_org_event_id(one.id, horizon).await.unwrap();
    writer
        .insert_connection(&connection(&one, Platform::WhatsApp, "5001"))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), signal.changed())
        .await
        .expect("the commit reaches the reader's process")
        .unwrap();
    let horizon = reader.event_horizon().await.unwrap();
    let events = reader.events_after(one.id, before, horizon, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["connection.created"],
        "the signalled event is readable"
    );
}

async fn one_live_connection_per_platform_account(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let one = org(&store, &ana, "one", Plan::Free).await;
    let two = org(&store, &ana, "two", Plan::Free).await;

    let first = store
        .insert_connection(&connection(&one, Platform::WhatsApp, "1001"))
        .await
        .unwrap();
    assert_eq!(first.settings.0, json!({"human_agent": true}));
    // The same account in another organization while the first is live: refused.
    let elsewhere = store
        .insert_connection(&connection(&two, Platform::WhatsApp, "1001"))
        .await;
    assert!(
        matches!(
            elsewhere,
            Err(StoreError::Conflict(Constraint::ConnectionLiveAccount))
        ),
        "{elsewhere:?}"
    );
    // The same id on another platform is another account.
    store
        .insert_connection(&connection(&two, Platform::Facebook, "1001"))
        .await
        .unwrap();
    // Twice in the same organization: refused.
    let twice = store
        .insert_connection(&connection(&one, Platform::WhatsApp, "1001"))
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");

    // Once disconnected, another organization may connect the account.
    let mut gone = first.clone();
    gone.status = ConnectionStatus::Disconnected;
    gone.access_token_enc = None;
    gone.updated_at = domain::now();
    store.save_connection(&gone, first.updated_at).await.unwrap();
    let moved = store
        .insert_connection(&connection(&two, Platform::WhatsApp, "1001"))
        .await
        .unwrap();
    assert_eq!(moved.organization_id, two.id);

    let found = store
        .connection_by_account(one.id, Platform::WhatsApp, "1001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, ConnectionStatus::Disconnected);
    assert_eq!(store.connections(two.id).await.unwrap().len(), 2);
}

async fn connections_are_scoped_by_organization(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let one = org(&store, &ana, "one", Plan::Free).await;
    let two = org(&store, &ana, "two", Plan::Free).await;
    let c = store
        .insert_connection(&connection(&one, Platform::TikTok, "open-1"))
        .await
        .unwrap();
    assert_eq!(store.connection(one.id, c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.connection(two.id, c.id).await.unwrap(), None);
    let mut hijack = c.clone();
    hijack.organization_id = two.id;
    hijack.name = Some("stolen".into());
    assert!(matches!(
        store.save_connection(&hijack, c.updated_at).await,
        Err(StoreError::NotFound)
    ));
    // A write based on an outdated read is refused, whatever it changes.
    let mut first_edit = c.clone();
    first_edit.name = Some("Sales".into());
    first_edit.updated_at = domain::now();
    store.save_connection(&first_edit, c.updated_at).await.unwrap();
    let mut late_edit = c.clone();
    late_edit.name = Some("Support".into());
    late_edit.updated_at = domain::now();
    assert!(matches!(
        store.save_connection(&late_edit, c.updated_at).await,
        Err(StoreError::Stale)
    ));
    let name = store.connection(one.id, c.id).await.unwrap().unwrap().name;
    assert_eq!(name.as_deref(), Some("Sales"));
}

async fn secrets_are_paged_and_swapped_only_if_unchanged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let ana = user(&store, "ana@example.com").await;
    let o = org(&store, &ana, "keys", Plan::Free).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .insert_connection(&connection(&o, Platform::WhatsApp, &format!("n{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.connection_secrets_page(after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(seen, ids, "every connection once, in id order");

    let old = store.connection_secrets_page(None, 1).await.unwrap().remove(0);
    let new = ConnectionSecrets {
        access_token_enc: Some("snorq1.k2.new".into()),
        refresh_token_enc: Some("snorq1.k2.refresh".into()),
        ..old.clone()
    };
    let before = store.connections(o.id).await.unwrap().remove(0);
    assert!(store.replace_connection_secrets(&old, &new).await.unwrap());
    // Rotation bumps updated_at: an edit that read the old envelope cannot write it back.
    let mut stale_edit = before.clone();
    stale_edit.updated_at = domain::now();
    assert!(matches!(
        store.save_connection(&stale_edit, before.updated_at).await,
        Err(StoreError::Stale)
    ));
    // A second swap from the stale value does nothing.
    let other = ConnectionSecrets {
        access_token_enc: Some("snorq1.k3.other".into()),
        ..old.clone()
    };
    assert!(!store.replace_connection_secrets(&old, &other).await.unwrap());
    let now = store.connection_secrets_page(None, 1).await.unwrap().remove(0);
    assert_eq!(now, new);
}

backend_tests!(
    committed_events_signal_the_readers_of_every_process,
    an_event_wakes_only_its_own_organizations_streams,
    users_are_unique_by_case_insensitive_email,
    timestamps_round_trip_exactly,
    sessions_expire_and_revoke,
    sessions_are_read_with_their_membership,
    organizations_start_with_their_owner,
    seat_limits_follow_the_plan,
    concurrent_adds_never_exceed_the_seat_limit,
    membership_changes,
    one_live_connection_per_platform_account,
    connections_are_scoped_by_organization,
    secrets_are_paged_and_swapped_only_if_unchanged,
);
