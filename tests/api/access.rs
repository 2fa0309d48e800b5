//! Who may do what, on both backends. A tenant-isolation matrix: every org-scoped route called
//! with another organization's ids answers 404 and changes nothing. A role matrix: what members,
//! admins and owners may do in the inbox, labels, notes, API keys and sends.

use crate::common;

use common::inbox::{Org, org_with_number};
use common::{Backend, TestApp, str_of, with_webhook_secrets};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use snorq::domain::Plan;

backend_tests!(
    another_organization_s_ids_answer_404_and_change_nothing,
    roles_decide_who_manages_and_who_works_the_inbox,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        // Replies do not leave the machine: the test's fake platform answers account calls only.
        c.send_retry_delays_secs = vec![3600];
    })
    .await
}

/// Everything an organization can own, created through the API.
struct Owned {
    org: Org,
    conversation: String,
    label: String,
    note: String,
    api_key: String,
    api_key_id: String,
    send: String,
    connection: String,
}

async fn populate(app: &TestApp, email: &str, number: &str) -> Owned {
    let org = org_with_number(app, email, number).await;
    app.set_plan(&org.id, Plan::Business).await;
    org.customer_says(app, "1", "Customer", &format!("wamid.{number}"), "hello", 10)
        .await;
    let conversation = org.conversation_of(app, "1").await;
    let (_, label) = app
        .post(&org.path("/labels"), &org.token, json!({"name": "VIP"}))
        .await;
    let (_, note) = app
        .post(
            &org.path(&format!("/conversations/{conversation}/notes")),
            &org.token,
            json!({"text": "n"}),
        )
        .await;
    let (_, key) = app
        .post(&org.path("/api-keys"), &org.token, json!({"name": "k"}))
        .await;
    let (status, send) = app
        .post(
            &org.path(&format!("/conversations/{conversation}/messages")),
            &org.token,
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{send}");
    let connection = str_of(&org.get_ok(app, "/connections").await["items"][0]["id"]);
    Owned {
        conversation,
        label: str_of(&label["id"]),
        note: str_of(&note["id"]),
        api_key: str_of(&key["token"]),
        api_key_id: str_of(&key["id"]),
        send: str_of(&send["id"]),
        connection,
        org,
    }
}

/// What can be observed of an organization's data, to compare before and after.
async fn snapshot(app: &TestApp, o: &Owned) -> Value {
    let get = |rest: String| {
        let path = o.org.path(&rest);
        async move {
            let (status, body) = app.get(&path, &o.org.token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let mut conversation = get(format!("/conversations/{}", o.conversation)).await;
    // The reply window's end is computed from the clock.
    conversation["window_expires_at"] = Value::Null;
    let mut send = get(format!("/sends/{}", o.send)).await;
    // The worker may be trying the unreachable platform meanwhile.
    for field in [
        "status",
        "attempts",
        "attempt_log",
        "next_attempt_at",
        "last_attempt_at",
        "error_code",
        "error_message",
        "failure_reason",
        "updated_at",
    ] {
        send[field] = Value::Null;
    }
    json!({
        "org": get(String::new()).await,
        "members": get("/members".into()).await,
        "connection": get(format!("/connections/{}", o.connection)).await,
        "conversation": conversation,
        "notes": get(format!("/conversations/{}/notes", o.conversation)).await,
        "labels": get("/labels".into()).await,
        "api_keys": get("/api-keys".into()).await,
        "send": send,
        "message_count": get(format!("/conversations/{}/messages", o.conversation)).await["items"].as_array().unwrap().len(),
    })
}

async fn another_organization_s_ids_answer_404_and_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let me = populate(&app, "me@example.com", "100000000000001").await;
    let them = populate(&app, "them@example.com", "100000000000002").await;
    let (_, their_user) = (them.org.token.clone(), them.org.user_id.clone());
    let before = snapshot(&app, &them).await;

    // Their object ids under my organization, and my token under theirs.
    let routes: Vec<(Method, String, Value)> = vec![
        (
            Method::GET,
            format!("/conversations/{}", them.conversation),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/conversations/{}", them.conversation),
            json!({"status": "closed"}),
        ),
        (
            Method::POST,
            format!("/conversations/{}/read", them.conversation),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/conversations/{}/labels", them.conversation),
            json!({"label_ids": []}),
        ),
        (
            Method::GET,
            format!("/conversations/{}/messages", them.conversation),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/conversations/{}/messages", them.conversation),
            json!({"text": "x"}),
        ),
        (
            Method::GET,
            format!("/conversations/{}/notes", them.conversation),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/conversations/{}/notes", them.conversation),
            json!({"text": "x"}),
        ),
        (
            Method::DELETE,
            format!("/conversations/{}/notes/{}", them.conversation, them.note),
            Value::Null,
        ),
        (
            Method::DELETE,
            format!("/conversations/{}/notes/{}", me.conversation, them.note),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/labels/{}", them.label),
            json!({"name": "mine now"}),
        ),
        (Method::DELETE, format!("/labels/{}", them.label), Value::Null),
        (
            Method::DELETE,
            format!("/api-keys/{}", them.api_key_id),
            Value::Null,
        ),
        (Method::GET, format!("/sends/{}", them.send), Value::Null),
        (Method::POST, format!("/sends/{}/retry", them.send), json!({})),
        (Method::POST, format!("/sends/{}/discard", them.send), json!({})),
        (
            Method::GET,
            format!("/connections/{}", them.connection),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/connections/{}", them.connection),
            json!({"name": "x"}),
        ),
        (
            Method::DELETE,
            format!("/connections/{}", them.connection),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/members/{their_user}"),
            json!({"role": "member"}),
        ),
        (Method::DELETE, format!("/members/{their_user}"), Value::Null),
    ];
    for (method, rest, body) in &routes {
        let path = me.org.path(rest);
        let body = (!body.is_null()).then(|| body.clone());
        let (status, answer) = app.call(method.clone(), &path, Some(&me.org.token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "not_found", "{method} {path}");
    }
    // Their organization's own routes, with my token or my API key: 404 whatever the route.
    let theirs: Vec<(Method, String, Value)> = vec![
        (Method::GET, String::new(), Value::Null),
        (Method::PATCH, String::new(), json!({"name": "x"})),
        (Method::GET, "/conversations".into(), Value::Null),
        (Method::GET, "/labels".into(), Value::Null),
        (Method::POST, "/labels".into(), json!({"name": "x"})),
        (Method::GET, "/api-keys".into(), Value::Null),
        (Method::POST, "/api-keys".into(), json!({"name": "x"})),
        (Method::GET, "/events".into(), Value::Null),
        (Method::GET, "/sends".into(), Value::Null),
        (Method::POST, "/sends/retry".into(), json!({})),
        (Method::GET, "/members".into(), Value::Null),
        (
            Method::POST,
            "/invitations".into(),
            json!({"email": "me@example.com"}),
        ),
        (Method::GET, "/invitations".into(), Value::Null),
        (Method::GET, "/connections".into(), Value::Null),
        (
            Method::POST,
            "/connections".into(),
            json!({"platform": "whatsapp", "platform_user_id": "9", "access_token": "t"}),
        ),
    ];
    let mut all = theirs.clone();
    all.extend(routes.iter().cloned());
    for (method, rest, body) in &all {
        let path = them.org.path(rest);
        for token in [&me.org.token, &me.api_key] {
            let body = (!body.is_null()).then(|| body.clone());
            let (status, answer) = app.call(method.clone(), &path, Some(token), body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        }
    }
    assert_eq!(snapshot(&app, &them).await, before, "their data changed");
    // Their API key still works for them.
    let (status, _) = app.get(&them.org.path("/conversations"), &them.api_key).await;
    assert_eq!(status, StatusCode::OK);
}

async fn roles_decide_who_manages_and_who_works_the_inbox(backend: Backend) {
    let app = spawn(backend).await;
    let o = populate(&app, "owner@example.com", "100000000000001").await;
    let (admin, _) = app.signup("admin@example.com").await;
    let (member, _) = app.signup("member@example.com").await;
    app.add_member(&o.org.token, &o.org.id, "admin@example.com", "admin")
        .await;
    app.add_member(&o.org.token, &o.org.id, "member@example.com", "member")
        .await;
    let c = &o.conversation;

    // Everyone may work the inbox.
    for (who, token) in [("member", &member), ("admin", &admin), ("owner", &o.org.token)] {
        for (method, rest, body) in [
            (Method::GET, "/conversations".to_owned(), Value::Null),
            (Method::GET, format!("/conversations/{c}"), Value::Null),
            (
                Method::PATCH,
                format!("/conversations/{c}"),
                json!({"status": "open"}),
            ),
            (Method::POST, format!("/conversations/{c}/read"), json!({})),
            (
                Method::PUT,
                format!("/conversations/{c}/labels"),
                json!({"label_ids": [o.label]}),
            ),
            (Method::GET, format!("/conversations/{c}/messages"), Value::Null),
            (
                Method::POST,
                format!("/conversations/{c}/notes"),
                json!({"text": who}),
            ),
            (Method::GET, format!("/conversations/{c}/notes"), Value::Null),
            (Method::GET, "/labels".to_owned(), Value::Null),
            (Method::GET, "/sends".to_owned(), Value::Null),
            (Method::GET, format!("/sends/{}", o.send), Value::Null),
        ] {
            let body = (!body.is_null()).then_some(body);
            let (status, answer) = app
                .call(method.clone(), &o.org.path(&rest), Some(token), body)
                .await;
            assert!(status.is_success(), "{who}: {method} {rest}: {status} {answer}");
        }
    }

    // Managing labels, API keys, sends, connections and members takes an admin.
    let managed = |n: usize| -> Vec<(Method, String, Value)> {
        vec![
            (
                Method::POST,
                "/labels".into(),
                json!({"name": format!("label {n}")}),
            ),
            (
                Method::PATCH,
                format!("/labels/{}", o.label),
                json!({"color": "#00ff00"}),
            ),
            (Method::GET, "/api-keys".into(), Value::Null),
            (
                Method::POST,
                "/api-keys".into(),
                json!({"name": format!("key {n}")}),
            ),
            (Method::POST, format!("/sends/{}/discard", o.send), json!({})),
            (Method::POST, "/sends/retry".into(), json!({})),
            (
                Method::PATCH,
                format!("/connections/{}", o.connection),
                json!({"name": format!("n{n}")}),
            ),
            (Method::GET, "/members".into(), Value::Null),
        ]
    };
    let labels_before = o.org.get_ok(&app, "/labels").await;
    let keys_before = o.org.get_ok(&app, "/api-keys").await;
    for (method, rest, body) in managed(0) {
        if method == Method::GET && rest == "/members" {
            continue; // members may see who is in their organization
        }
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = app
            .call(method.clone(), &o.org.path(&rest), Some(&member), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "member: {method} {rest}: {answer}");
        assert_eq!(answer["code"], "forbidden");
    }
    assert_eq!(
        o.org.get_ok(&app, "/labels").await,
        labels_before,
        "a forbidden call changed labels"
    );
    assert_eq!(
        o.org.get_ok(&app, "/api-keys").await,
        keys_before,
        "a forbidden call created a key"
    );
    for (n, (who, token)) in [("admin", &admin), ("owner", &o.org.token)]
        .into_iter()
        .enumerate()
    {
        for (method, rest, body) in managed(n + 1) {
            if rest.ends_with("/discard") && n == 1 {
                continue; // discarded once already
            }
            let body = (!body.is_null()).then_some(body);
            let (status, answer) = app
                .call(method.clone(), &o.org.path(&rest), Some(token), body)
                .await;
            assert!(status.is_success(), "{who}: {method} {rest}: {status} {answer}");
        }
    }

    // Notes: a member deletes only their own; an admin anyone's.
    let notes = o.org.get_ok(&app, &format!("/conversations/{c}/notes")).await;
    let by = |body: &str| {
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["text"] == body)
            .map(|n| str_of(&n["id"]))
            .unwrap()
    };
    let note_path = |id: String| o.org.path(&format!("/conversations/{c}/notes/{id}"));
    assert_eq!(
        app.delete(&note_path(by("owner")), &member).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&note_path(by("member")), &member).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&note_path(by("owner")), &admin).await.0,
        StatusCode::NO_CONTENT
    );
    // Deleting labels and keys: admins, not members.
    assert_eq!(
        app.delete(&o.org.path(&format!("/labels/{}", o.label)), &member)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&o.org.path(&format!("/api-keys/{}", o.api_key_id)), &member)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&o.org.path(&format!("/labels/{}", o.label)), &admin)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&o.org.path(&format!("/api-keys/{}", o.api_key_id)), &admin)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}
