//! Organizations and members through the real HTTP server: roles, seat limits, ownership, and
//! isolation between organizations.

use crate::common;

use common::{Backend, TestApp, assert_problem, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::domain::Plan;

async fn create_list_show_update(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, user_id) = app.signup("owner@example.com").await;
    let (status, org) = app
        .post("/api/v1/orgs", &token, json!({"name": "Acme Support, Ltd."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(org["slug"], "acme-support-ltd");
    assert_eq!(org["plan"], "free");
    assert_eq!(org["role"], "owner");
    assert_eq!(str_of(&org["owner_id"]), user_id);
    let org_id = str_of(&org["id"]);

    // Same name again: a derived slug with a suffix, not an error.
    let (status, second) = app
        .post("/api/v1/orgs", &token, json!({"name": "Acme Support, Ltd."}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        str_of(&second["slug"]).starts_with("acme-support-ltd-"),
        "{second}"
    );
    // An explicit slug that is taken: 409 on the field.
    let (status, body) = app
        .post(
            "/api/v1/orgs",
            &token,
            json!({"name": "X", "slug": "acme-support-ltd"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "slug");

    let (status, list) = app.get("/api/v1/orgs", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let (status, shown) = app.get(&format!("/api/v1/orgs/{org_id}"), &token).await;
    assert_eq!((status, &shown["id"]), (StatusCode::OK, &org["id"]));

    let (status, updated) = app
        .patch(
            &format!("/api/v1/orgs/{org_id}"),
            &token,
            json!({"name": "Acme", "slug": "acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["name"].as_str(), updated["slug"].as_str()),
        (Some("Acme"), Some("acme"))
    );
    let (status, body) = app
        .patch(
            &format!("/api/v1/orgs/{org_id}"),
            &token,
            json!({"slug": "Not A Slug"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "slug");
    let (status, body) = app
        .patch(
            &format!("/api/v1/orgs/{org_id}"),
            &token,
            json!({"plan": "business"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "plan", "the plan is not self-service");
}

/// Finding 6: adding a member by email answered 422 for strangers and silently added known
/// users (their name in the answer). Now an invitation answers the same for both, the invited
/// person accepts or declines, and pending invitations hold seats.
async fn invitations_reveal_nothing_and_hold_seats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _) = app.signup("owner@example.com").await;
    let (bea, _) = app.signup("bea@example.com").await;
    let (cy, _) = app.signup("cy@example.com").await;
    let org_id = app.create_org(&owner, "Acme").await;
    let invitations = format!("/api/v1/orgs/{org_id}/invitations");
    let members = format!("/api/v1/orgs/{org_id}/members");
    // FREE: the owner is the only seat.
    let (status, body) = app
        .post(&invitations, &owner, json!({"email": "bea@example.com"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "plan_limit");

    app.set_plan(&org_id, Plan::Pro).await;
    // A registered email and an unknown one get answers of the same shape: nothing in them
    // says which has an account, and nobody is a member yet.
    let (known_status, known) = app
        .post(&invitations, &owner, json!({"email": "Bea@example.com"}))
        .await;
    let (ghost_status, ghost) = app
        .post(&invitations, &owner, json!({"email": "ghost@example.com"}))
        .await;
    assert_eq!(
        (known_status, ghost_status),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{known} {ghost}"
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&known), keys(&ghost));
    assert!(
        !known.to_string().contains("Test User"),
        "no name of the invited user: {known}"
    );
    assert_eq!(known["role"], "member");
    assert_eq!(
        app.get(&members, &owner).await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // PRO has three seats: the owner and two pending invitations fill them.
    let (status, body) = app
        .post(&invitations, &owner, json!({"email": "cy@example.com"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "plan_limit");
    let (status, body) = app
        .post(&invitations, &owner, json!({"email": "bea@example.com"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    let (_, pending) = app.get(&invitations, &owner).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 2);

    // Revoking frees a seat; the revoked invitation cannot be accepted.
    let ghost_id = str_of(&ghost["id"]);
    assert_eq!(
        app.delete(&format!("{invitations}/{ghost_id}"), &owner).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{invitations}/{ghost_id}"), &owner).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, cy_invitation) = app
        .post(
            &invitations,
            &owner,
            json!({"email": "cy@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cy_invitation}");

    // The invited see their invitations (and only theirs), and decide.
    let (_, mine) = app.get("/api/v1/me/invitations", &bea).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["items"][0]["organization_name"], "Acme");
    let bea_invitation = str_of(&mine["items"][0]["id"]);
    let (status, _) = app
        .post(
            &format!("/api/v1/me/invitations/{bea_invitation}/accept"),
            &cy,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's invitation");
    let (status, joined) = app
        .post(
            &format!("/api/v1/me/invitations/{bea_invitation}/accept"),
            &bea,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(
        (str_of(&joined["id"]), joined["role"].as_str()),
        (org_id.clone(), Some("member"))
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/me/invitations/{bea_invitation}/accept"),
            &bea,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "accepted once");
    let cy_id = str_of(&cy_invitation["id"]);
    let (status, _) = app
        .post(&format!("/api/v1/me/invitations/{cy_id}/decline"), &cy, json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&members, &owner).await;
    let emails: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| str_of(&m["email"]))
        .collect();
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert!(emails.contains(&"bea@example.com".to_owned()) && !emails.contains(&"cy@example.com".to_owned()));
    // The old route that added people without their consent is gone.
    let (status, _) = app
        .post(&members, &owner, json!({"email": "cy@example.com"}))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Members are not admins: they cannot invite or see invitations.
    let (status, body) = app
        .post(&invitations, &bea, json!({"email": "x@example.com"}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn roles_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, owner_id) = app.signup("owner@example.com").await;
    let (admin, admin_id) = app.signup("admin@example.com").await;
    let (member, member_id) = app.signup("member@example.com").await;
    app.signup("new@example.com").await;
    let org_id = app.create_org(&owner, "Acme").await;
    app.set_plan(&org_id, Plan::Business).await;
    app.add_member(&owner, &org_id, "admin@example.com", "admin")
        .await;
    app.add_member(&owner, &org_id, "member@example.com", "member")
        .await;
    let org = format!("/api/v1/orgs/{org_id}");
    let members = format!("{org}/members");

    // A MEMBER reads but does not manage.
    assert_eq!(app.get(&org, &member).await.0, StatusCode::OK);
    assert_eq!(app.get(&members, &member).await.0, StatusCode::OK);
    let (status, body) = app.patch(&org, &member, json!({"name": "Mine"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .post(
            &format!("{org}/invitations"),
            &member,
            json!({"email": "new@example.com"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .patch(
            &format!("{members}/{admin_id}"),
            &member,
            json!({"role": "member"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // An ADMIN manages members but cannot touch the owner or hand out ownership.
    let (status, body) = app.patch(&org, &admin, json!({"name": "Acme Admin"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .patch(
            &format!("{members}/{member_id}"),
            &admin,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!((status, body["role"].as_str()), (StatusCode::OK, Some("admin")));
    let (status, body) = app
        .patch(
            &format!("{members}/{member_id}"),
            &admin,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!((status, body["role"].as_str()), (StatusCode::OK, Some("member")));
    let (status, body) = app
        .patch(
            &format!("{members}/{owner_id}"),
            &admin,
            json!({"role": "member"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = app
        .patch(
            &format!("{members}/{member_id}"),
            &admin,
            json!({"role": "owner"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.delete(&format!("{members}/{owner_id}"), &admin).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = app
        .post(
            &format!("{org}/invitations"),
            &admin,
            json!({"email": "new@example.com", "role": "owner"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // The owner cannot demote or remove themselves either: ownership moves by transfer only.
    let (status, body) = app
        .patch(&format!("{members}/{owner_id}"), &owner, json!({"role": "admin"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = app.delete(&format!("{members}/{owner_id}"), &owner).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");

    // Transfer: the admin becomes owner, the old owner an admin.
    let (status, body) = app
        .patch(&format!("{members}/{admin_id}"), &owner, json!({"role": "owner"}))
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("owner")),
        "{body}"
    );
    let (_, shown) = app.get(&org, &owner).await;
    assert_eq!(
        (shown["role"].as_str(), str_of(&shown["owner_id"])),
        (Some("admin"), admin_id.clone())
    );

    // A member may leave; an admin may remove a member.
    let (status, _) = app.delete(&format!("{members}/{member_id}"), &member).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_problem(
        app.get(&org, &member).await.0,
        &app.get(&org, &member).await.1,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, _) = app.delete(&format!("{members}/{owner_id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&members, &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn other_organizations_are_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, _) = app.signup("alice@example.com").await;
    let (bob, bob_id) = app.signup("bob@example.com").await;
    let alice_org = app.create_org(&alice, "Alice Co").await;
    let bob_org = app.create_org(&bob, "Bob Co").await;
    let org = format!("/api/v1/orgs/{alice_org}");

    for (status, body) in [
        app.get(&org, &bob).await,
        app.get(&format!("{org}/members"), &bob).await,
        app.patch(&org, &bob, json!({"name": "Pwned"})).await,
        app.post(
            &format!("{org}/invitations"),
            &bob,
            json!({"email": "bob@example.com"}),
        )
        .await,
        app.get(&format!("{org}/invitations"), &bob).await,
        app.patch(&format!("{org}/members/{bob_id}"), &bob, json!({"role": "admin"}))
            .await,
        app.delete(&format!("{org}/members/{bob_id}"), &bob).await,
        app.get("/api/v1/orgs/not-a-uuid", &bob).await,
        app.get(&format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()), &bob)
            .await,
    ] {
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    // Bob's own listing shows only Bob's organization; Alice's is unchanged.
    let (_, list) = app.get("/api/v1/orgs", &bob).await;
    let ids: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| str_of(&o["id"]))
        .collect();
    assert_eq!(ids, vec![bob_org]);
    let (_, shown) = app.get(&org, &alice).await;
    assert_eq!(shown["name"], "Alice Co");
}

backend_tests!(
    create_list_show_update,
    invitations_reveal_nothing_and_hold_seats,
    roles_are_enforced,
    other_organizations_are_invisible,
);
