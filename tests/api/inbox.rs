//! The team inbox end to end, on both backends: listing with every filter and the counts,
//! assignment, read state, labels, search, message history, notes, pagination while messages
//! arrive, API keys and plan limits, retention.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::inbox::{Org, customers_write_concurrently, org_with_number};
use common::{Backend, TestApp, assert_problem, str_of, with_webhook_secrets};
use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::domain::Plan;
use snorq::domain::search::{WORD_BITS_COLUMNS, WordBits};

backend_tests!(
    filters_and_counts_follow_every_change,
    search_finds_words_in_names_and_messages,
    conversations_written_before_the_search_index_are_indexed_by_the_janitor,
    message_history_pages_newest_first,
    notes_stay_internal_and_are_deleted_by_author_or_admin,
    labels_are_unique_per_organization_and_replace_as_a_set,
    pagination_sees_every_conversation_once_while_messages_arrive,
    unread_counts_stay_exact_under_concurrent_messages,
    api_keys_are_a_business_feature_scoped_to_their_organization,
    retention_deletes_exactly_free_history_older_than_30_days,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, with_webhook_secrets).await
}

/// Three customers wrote (Ana last).
async fn three_conversations(app: &TestApp) -> (Org, HashMap<&'static str, String>) {
    let org = org_with_number(app, "owner@example.com", "100000000000001").await;
    for (i, (customer, name)) in [("1001", "Carl"), ("1002", "Bea"), ("1003", "Ana")]
        .iter()
        .enumerate()
    {
        org.customer_says(
            app,
            customer,
            name,
            &format!("wamid.{customer}"),
            "hello",
            300 - i as i64 * 100,
        )
        .await;
    }
    let mut ids = HashMap::new();
    for (customer, name) in [("1001", "carl"), ("1002", "bea"), ("1003", "ana")] {
        ids.insert(name, org.conversation_of(app, customer).await);
    }
    (org, ids)
}

fn counts(page: &Value) -> (i64, i64, i64, i64) {
    let c = &page["counts"];
    (
        c["open"].as_i64().unwrap(),
        c["mine"].as_i64().unwrap(),
        c["unassigned"].as_i64().unwrap(),
        c["unread"].as_i64().unwrap(),
    )
}

async fn filters_and_counts_follow_every_change(backend: Backend) {
    let app = spawn(backend).await;
    let (org, c) = three_conversations(&app).await;
    let page = org.get_ok(&app, "/conversations").await;
    assert_eq!(
        org.conversation_ids(&app, "").await,
        [c["ana"].as_str(), c["bea"].as_str(), c["carl"].as_str()],
        "newest activity first"
    );
    assert_eq!(counts(&page), (3, 0, 3, 3));
    let first = &page["items"][0];
    assert_eq!(first["contact"]["name"], "Ana");
    assert_eq!(first["unread_count"], 1);
    assert_eq!(first["can_reply"], true);
    assert!(first["window_expires_at"].is_string());
    assert_eq!(first["platform"], "whatsapp");
    assert_eq!(first["status"], "open");

    // Assign Bea's to me: mine 1, unassigned 2.
    let (status, body) = app
        .patch(
            &org.path(&format!("/conversations/{}", c["bea"])),
            &org.token,
            json!({"assignee_id": org.user_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee_id"], org.user_id.as_str());
    assert_eq!(
        org.conversation_ids(&app, "?assignee=me").await,
        [c["bea"].as_str()]
    );
    assert_eq!(
        org.conversation_ids(&app, &format!("?assignee={}", org.user_id))
            .await,
        [c["bea"].as_str()]
    );
    assert_eq!(
        org.conversation_ids(&app, "?assignee=unassigned").await,
        [c["ana"].as_str(), c["carl"].as_str()]
    );
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (3, 1, 2, 3));

    // Read Carl's: unread 2.
    let (status, body) = app
        .post(
            &org.path(&format!("/conversations/{}/read", c["carl"])),
            &org.token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unread_count"], 0);
    assert_eq!(
        org.conversation_ids(&app, "?unread=true").await,
        [c["ana"].as_str(), c["bea"].as_str()]
    );
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (3, 1, 2, 2));

    // Close Bea's: it leaves the open view and every open count.
    let (status, _) = app
        .patch(
            &org.path(&format!("/conversations/{}", c["bea"])),
            &org.token,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        org.conversation_ids(&app, "").await,
        [c["ana"].as_str(), c["carl"].as_str()]
    );
    assert_eq!(
        org.conversation_ids(&app, "?status=closed").await,
        [c["bea"].as_str()]
    );
    assert_eq!(org.conversation_ids(&app, "?status=all").await.len(), 3);
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (2, 0, 2, 1));

    // A new customer message reopens it and counts as unread again.
    org.customer_says(&app, "1002", "Bea", "wamid.1002-b", "still there?", 0)
        .await;
    assert_eq!(org.conversation_ids(&app, "").await[0], c["bea"]);
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (3, 1, 2, 2));

    // Unassign; other filters.
    let (status, body) = app
        .patch(
            &org.path(&format!("/conversations/{}", c["bea"])),
            &org.token,
            json!({"assignee_id": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["assignee_id"].is_null());
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (3, 0, 3, 2));
    assert_eq!(org.conversation_ids(&app, "?platform=tiktok").await.len(), 0);
    assert_eq!(org.conversation_ids(&app, "?platform=whatsapp").await.len(), 3);
    let connection = str_of(&org.get_ok(&app, "/connections").await["items"][0]["id"]);
    assert_eq!(
        org.conversation_ids(&app, &format!("?connection_id={connection}"))
            .await
            .len(),
        3
    );

    // Bad values are named.
    for (query, field) in [
        ("?status=pending", "status"),
        ("?assignee=someone", "assignee"),
        ("?unread=yes", "unread"),
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
        ("?platform=icq", "platform"),
        ("?label=nope", "label"),
    ] {
        let (status, body) = app
            .get(&org.path(&format!("/conversations{query}")), &org.token)
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(body["field"], field, "{query}");
    }
    // An assignee must be a member.
    let (_, stranger) = app.signup("stranger@example.com").await;
    let (status, body) = app
        .patch(
            &org.path(&format!("/conversations/{}", c["ana"])),
            &org.token,
            json!({"assignee_id": stranger}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "assignee_id");
    let (status, body) = app
        .patch(
            &org.path(&format!("/conversations/{}", c["ana"])),
            &org.token,
            json!({"status": "snoozed"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

/// Both plans of a search give the same answers: a threshold of 0 walks the inbox for every
/// word that has a match, a huge one always starts from the matches.
async fn search_finds_words_in_names_and_messages(backend: Backend) {
    for threshold in [0, 1_000_000] {
        search_with_walk_threshold(backend, threshold).await;
    }
}

async fn search_with_walk_threshold(backend: Backend, threshold: u32) {
    let app = TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        c.search_walk_threshold = threshold;
    })
    .await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    org.customer_says(
        &app,
        "2001",
        "Maria Lopez",
        "wamid.a",
        "Where is my invoice number 4521?",
        30,
    )
    .await;
    org.customer_says(
        &app,
        "2002",
        "John Smith",
        "wamid.b",
        "The parcel arrived damaged",
        20,
    )
    .await;
    org.customer_says(&app, "2003", "Jo Ann", "wamid.c", "Thanks a lot!", 10)
        .await;
    let maria = org.conversation_of(&app, "2001").await;
    let john = org.conversation_of(&app, "2002").await;
    let jo = org.conversation_of(&app, "2003").await;
    assert_eq!(org.conversation_ids(&app, "?q=invoice").await, [maria.as_str()]);
    assert_eq!(
        org.conversation_ids(&app, "?q=INVOI").await,
        [maria.as_str()],
        "prefix, any case"
    );
    assert_eq!(org.conversation_ids(&app, "?q=4521").await, [maria.as_str()]);
    assert_eq!(
        org.conversation_ids(&app, "?q=lopez").await,
        [maria.as_str()],
        "contact name"
    );
    assert_eq!(
        org.conversation_ids(&app, "?q=parcel%20damaged").await,
        [john.as_str()]
    );
    assert!(
        org.conversation_ids(&app, "?q=parcel%20invoice").await.is_empty(),
        "all words in one conversation"
    );
    assert!(org.conversation_ids(&app, "?q=invoices").await.is_empty());
    assert!(org.conversation_ids(&app, "?q=nothing").await.is_empty());
    assert_eq!(
        org.conversation_ids(&app, "?q=jo").await,
        [jo.as_str(), john.as_str()],
        "prefix of Jo and John"
    );
    // Search syntax of either database is not reachable from q.
    for q in [
        "%22invoice%22%20OR%20x",
        "invoice*",
        "invoice%3A*%20%7C%20thanks",
        "NOT%20thanks",
    ] {
        let (status, body) = app
            .get(&org.path(&format!("/conversations?q={q}")), &org.token)
            .await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
    }
    let (status, body) = app.get(&org.path("/conversations?q=%22%2A%22"), &org.token).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Searched listings page like the others, and combine with a label.
    org.customer_says(&app, "2003", "Jo Ann", "wamid.d", "my parcel is late", 5)
        .await;
    assert_eq!(
        org.conversation_ids(&app, "?q=thanks%20parcel").await,
        [jo.as_str()],
        "words of two messages of one conversation"
    );
    assert_eq!(
        org.conversation_ids(&app, "?q=ann%20late").await,
        [jo.as_str()],
        "a name and a message"
    );
    // An agent's reply is searchable as soon as it is written.
    let (status, body) = app
        .post(
            &org.path(&format!("/conversations/{maria}/messages")),
            &org.token,
            json!({"text": "Your invoice was resent to your mailbox"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(org.conversation_ids(&app, "?q=mailbox").await, [maria.as_str()]);
    let first = org.get_ok(&app, "/conversations?q=parcel&limit=1").await;
    assert_eq!(first["items"][0]["id"], jo.as_str());
    let cursor = str_of(&first["next_cursor"]);
    let second = org
        .get_ok(&app, &format!("/conversations?q=parcel&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["id"], john.as_str());
    assert!(second["next_cursor"].is_null(), "{second}");
    let (_, label) = app
        .post(&org.path("/labels"), &org.token, json!({"name": "damaged"}))
        .await;
    app.put(
        &org.path(&format!("/conversations/{john}/labels")),
        &org.token,
        json!({"label_ids": [label["id"]]}),
    )
    .await;
    assert_eq!(
        org.conversation_ids(&app, &format!("?q=parcel&label={}", str_of(&label["id"])))
            .await,
        [john.as_str()]
    );
    // Another organization's messages are not found.
    let other = org_with_number(&app, "other@example.com", "100000000000002").await;
    other
        .customer_says(&app, "2001", "Maria Lopez", "wamid.o", "invoice please", 5)
        .await;
    assert_eq!(org.conversation_ids(&app, "?q=invoice").await, [maria.as_str()]);
    assert_eq!(other.conversation_ids(&app, "?q=invoice").await.len(), 1);
    // Filters narrow a walk as they narrow the matches.
    assert_eq!(
        org.conversation_ids(&app, "?q=parcel&platform=whatsapp").await,
        [jo.as_str(), john.as_str()]
    );
    assert!(
        org.conversation_ids(&app, "?q=parcel&status=closed")
            .await
            .is_empty()
    );
    assert_word_bits_are_exact(&app).await;
}

/// Every conversation's word bits are exactly those of its indexed words: none missing (a
/// walk would skip the conversation), none left over from words that are gone.
async fn assert_word_bits_are_exact(app: &TestApp) {
    let mut words: HashMap<String, Vec<String>> = HashMap::new();
    for row in app
        .db
        .rows(
            "SELECT o.slug || '/' || c.external_id, t.term FROM conversation_terms t \
             JOIN conversations c ON c.id = t.conversation_id JOIN organizations o ON o.id = c.organization_id",
        )
        .await
    {
        let (conversation, word) = row.split_once('|').expect("two columns");
        words.entry(conversation.to_owned()).or_default().push(word.to_owned());
    }
    let columns: Vec<String> = (0..WORD_BITS_COLUMNS)
        .map(|n| format!("CAST(c.word_bits_{n} AS TEXT)"))
        .collect();
    let rows = app
        .db
        .rows(&format!(
            "SELECT o.slug || '/' || c.external_id, {} FROM conversations c \
             JOIN organizations o ON o.id = c.organization_id",
            columns.join(", ")
        ))
        .await;
    assert!(!rows.is_empty());
    for row in rows {
        let mut fields = row.split('|');
        let conversation = fields.next().expect("organization and external id");
        let stored: Vec<i64> = fields.map(|f| f.parse().expect("bits")).collect();
        let expected = WordBits::of(words.get(conversation).into_iter().flatten().map(String::as_str));
        assert_eq!(stored, expected.0, "word bits of conversation {conversation}");
    }
}

/// After an upgrade, conversations written before the search index existed are not found until
/// the janitor (or `snorq retention`) has indexed them, then they are.
async fn conversations_written_before_the_search_index_are_indexed_by_the_janitor(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    org.customer_says(&app, "2001", "Maria Lopez", "wamid.a", "Where is my invoice?", 30)
        .await;
    org.customer_says(&app, "2002", "John Smith", "wamid.b", "Parcel damaged", 20)
        .await;
    let maria = org.conversation_of(&app, "2001").await;
    // As migrations 11 and 12 leave an older database: nothing indexed, every conversation
    // marked, all its word bits set.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    app.db
        .execute_at("DELETE FROM conversation_terms WHERE $1 IS NOT NULL", later)
        .await;
    let all_bits: Vec<String> = (0..WORD_BITS_COLUMNS)
        .map(|n| format!("word_bits_{n} = -1"))
        .collect();
    app.db
        .execute_at(
            &format!(
                "UPDATE conversations SET search_indexed = FALSE, {} WHERE created_at < $1",
                all_bits.join(", ")
            ),
            later,
        )
        .await;
    assert!(org.conversation_ids(&app, "?q=invoice").await.is_empty());
    let done = snorq::app::retention::run(&*app.app.store, chrono::Utc::now(), chrono::Duration::hours(72))
        .await
        .expect("janitor pass");
    assert_eq!(done.indexed, 2);
    assert_eq!(org.conversation_ids(&app, "?q=invoice").await, [maria.as_str()]);
    assert_eq!(org.conversation_ids(&app, "?q=lopez").await, [maria.as_str()]);
    assert_word_bits_are_exact(&app).await;
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM conversations WHERE NOT search_indexed")
            .await,
        0
    );
    let again = snorq::app::retention::run(&*app.app.store, chrono::Utc::now(), chrono::Duration::hours(72))
        .await
        .expect("janitor pass");
    assert_eq!(again.indexed, 0);
}

async fn message_history_pages_newest_first(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    for i in 0..5 {
        org.customer_says(
            &app,
            "3001",
            "Kim",
            &format!("wamid.{i}"),
            &format!("message {i}"),
            100 - i,
        )
        .await;
    }
    let conversation = org.conversation_of(&app, "3001").await;
    // A reply is in the history with its sender.
    let (status, body) = app
        .post(
            &org.path(&format!("/conversations/{conversation}/messages")),
            &org.token,
            json!({"text": "on it"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&before={c}"),
            None => "?limit=2".to_owned(),
        };
        let page = org
            .get_ok(&app, &format!("/conversations/{conversation}/messages{query}"))
            .await;
        for m in page["items"].as_array().unwrap() {
            seen.push(m.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let reply = &seen[0];
    assert_eq!(reply["direction"], "outbound");
    assert_eq!(reply["content"]["text"], "on it");
    assert_eq!(reply["sender"]["user_id"], org.user_id.as_str());
    assert_eq!(reply["sender"]["name"], "Test User");
    assert!(reply["status"].is_string() && reply["attempts"].is_number());
    let texts: Vec<&str> = seen[1..]
        .iter()
        .map(|m| m["content"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["message 4", "message 3", "message 2", "message 1", "message 0"]
    );
    assert!(
        seen[1..]
            .iter()
            .all(|m| m["direction"] == "inbound" && m["sender"].is_null())
    );
    let (status, body) = app
        .get(
            &org.path(&format!("/conversations/{conversation}/messages?before=zzz")),
            &org.token,
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn notes_stay_internal_and_are_deleted_by_author_or_admin(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    app.set_plan(&org.id, Plan::Business).await;
    org.customer_says(&app, "4001", "Lee", "wamid.n", "hi", 10).await;
    let conversation = org.conversation_of(&app, "4001").await;
    let (member, _) = app.signup("member@example.com").await;
    let (other_member, _) = app.signup("member2@example.com").await;
    app.add_member(&org.token, &org.id, "member@example.com", "member")
        .await;
    app.add_member(&org.token, &org.id, "member2@example.com", "member")
        .await;
    let notes = org.path(&format!("/conversations/{conversation}/notes"));
    let (status, note) = app
        .post(&notes, &member, json!({"text": "VIP customer, be nice"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let (status, body) = app.post(&notes, &member, json!({"text": "   "})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, second) = app.post(&notes, &org.token, json!({"text": "second"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let page = org
        .get_ok(&app, &format!("/conversations/{conversation}/notes"))
        .await;
    let bodies: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["second", "VIP customer, be nice"]);
    assert_eq!(page["items"][1]["author_name"], "Test User");
    // Notes are not messages and nothing was queued for the platform.
    let history = org
        .get_ok(&app, &format!("/conversations/{conversation}/messages"))
        .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.db
            .count(&format!("SELECT COUNT(*) FROM {}", app.db.jobs_table()))
            .await,
        0
    );
    // Another member may not delete it; its author may; an admin may delete anyone's.
    let note_path = format!("{notes}/{}", str_of(&note["id"]));
    let (status, body) = app.delete(&note_path, &other_member).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app.delete(&note_path, &member).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.delete(&note_path, &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let second_path = format!("{notes}/{}", str_of(&second["id"]));
    let (status, _) = app.delete(&second_path, &other_member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.delete(&second_path, &org.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM notes").await, 0);
}

async fn labels_are_unique_per_organization_and_replace_as_a_set(backend: Backend) {
    let app = spawn(backend).await;
    let (org, c) = three_conversations(&app).await;
    let (status, vip) = app
        .post(
            &org.path("/labels"),
            &org.token,
            json!({"name": "VIP", "color": "#FF0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vip}");
    assert_eq!(vip["color"], "#ff0000");
    let (status, body) = app
        .post(&org.path("/labels"), &org.token, json!({"name": "VIP"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "name");
    let (status, body) = app
        .post(
            &org.path("/labels"),
            &org.token,
            json!({"name": "x", "color": "red"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (_, billing) = app
        .post(&org.path("/labels"), &org.token, json!({"name": "billing"}))
        .await;
    let (vip_id, billing_id) = (str_of(&vip["id"]), str_of(&billing["id"]));
    // Another organization may use the same name.
    let other = org_with_number(&app, "other@example.com", "100000000000002").await;
    let (status, foreign) = app
        .post(&other.path("/labels"), &other.token, json!({"name": "VIP"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let set = |id: &String| org.path(&format!("/conversations/{id}/labels"));
    let (status, body) = app
        .put(
            &set(&c["ana"]),
            &org.token,
            json!({"label_ids": [vip_id, billing_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VIP", "billing"]);
    app.put(&set(&c["bea"]), &org.token, json!({"label_ids": [billing_id]}))
        .await;
    assert_eq!(
        org.conversation_ids(&app, &format!("?label={vip_id}")).await,
        [c["ana"].as_str()]
    );
    assert_eq!(
        org.conversation_ids(&app, &format!("?label={billing_id}")).await,
        [c["ana"].as_str(), c["bea"].as_str()]
    );
    // The label's listing follows activity: Bea writes, her conversation comes first; pages
    // of one walk the label in that order.
    org.customer_says(&app, "1002", "Bea", "wamid.1002-again", "hello again", 0)
        .await;
    assert_eq!(
        org.conversation_ids(&app, &format!("?label={billing_id}")).await,
        [c["bea"].as_str(), c["ana"].as_str()]
    );
    let first = org
        .get_ok(&app, &format!("/conversations?label={billing_id}&limit=1"))
        .await;
    let cursor = str_of(&first["next_cursor"]);
    let second = org
        .get_ok(
            &app,
            &format!("/conversations?label={billing_id}&limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(first["items"][0]["id"], c["bea"].as_str());
    assert_eq!(second["items"][0]["id"], c["ana"].as_str());
    assert!(second["next_cursor"].is_null());
    // Replacing the set; another organization's label is refused.
    let (status, body) = app
        .put(&set(&c["ana"]), &org.token, json!({"label_ids": [vip_id]}))
        .await;
    assert_eq!(body["labels"].as_array().unwrap().len(), 1, "{status} {body}");
    let (status, body) = app
        .put(&set(&c["ana"]), &org.token, json!({"label_ids": [foreign["id"]]}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Rename, recolor, delete (it comes off the conversations).
    let (status, body) = app
        .patch(
            &org.path(&format!("/labels/{vip_id}")),
            &org.token,
            json!({"name": "Gold", "color": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["color"].is_null() && body["name"] == "Gold");
    let (status, body) = app
        .patch(
            &org.path(&format!("/labels/{vip_id}")),
            &org.token,
            json!({"name": "billing"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, _) = app
        .delete(&org.path(&format!("/labels/{billing_id}")), &org.token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        org.conversation_ids(&app, &format!("?label={billing_id}"))
            .await
            .is_empty()
    );
    let labels = org.get_ok(&app, "/labels").await;
    assert_eq!(labels["items"].as_array().unwrap().len(), 1);
}

/// Walks the open conversations page by page while customers keep writing (to conversations
/// already seen, not yet seen, and new ones): each conversation that existed when the walk
/// started is seen exactly once.
async fn pagination_sees_every_conversation_once_while_messages_arrive(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    const N: usize = 40;
    for i in 0..N {
        org.customer_says(
            &app,
            &format!("5{i:03}"),
            "Customer",
            &format!("wamid.start-{i}"),
            "hi",
            10_000 - i as i64 * 10,
        )
        .await;
    }
    let all = org.conversation_ids(&app, "?limit=100").await;
    assert_eq!(all.len(), N);

    let writer =
        customers_write_concurrently(&app, &org.number, 1, 400, Duration::from_millis(3), |_, round| {
            // Old customers (seen or not yet) and new ones, with current timestamps.
            let customer = if round % 5 == 0 {
                format!("6{round:03}")
            } else {
                format!("5{:03}", (round * 7) % N)
            };
            (customer, format!("wamid.live-{round}"))
        });
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".to_owned(),
        };
        let page = org.get_ok(&app, &format!("/conversations{query}")).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|c| str_of(&c["id"])));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for w in writer {
        w.await.expect("writer");
    }
    assert!(pages > 5, "the walk took {pages} pages");
    let mut counted: HashMap<&String, usize> = HashMap::new();
    for id in &seen {
        *counted.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = counted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "seen twice: {duplicates:?}");
    let missing: Vec<_> = all.iter().filter(|id| !counted.contains_key(id)).collect();
    assert!(missing.is_empty(), "never seen: {missing:?}");
    // New conversations appeared meanwhile: the next walk (from the top) has them.
    assert!(org.conversation_ids(&app, "?limit=100").await.len() > N);
}

async fn unread_counts_stay_exact_under_concurrent_messages(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    org.customer_says(&app, "7001", "U", "wamid.u0", "first", 0).await;
    let conversation = org.conversation_of(&app, "7001").await;
    // 60 messages to one conversation from 6 concurrent senders, with reads in between.
    let senders = customers_write_concurrently(&app, &org.number, 6, 10, Duration::ZERO, |s, i| {
        ("7001".to_owned(), format!("wamid.u{s}-{i}"))
    });
    for _ in 0..5 {
        app.post(
            &org.path(&format!("/conversations/{conversation}/read")),
            &org.token,
            json!({}),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for s in senders {
        s.await.expect("sender");
    }
    // After a last read, the count is 0 and one more message makes it exactly 1.
    app.post(
        &org.path(&format!("/conversations/{conversation}/read")),
        &org.token,
        json!({}),
    )
    .await;
    org.customer_says(&app, "7001", "U", "wamid.u-last", "last", 0)
        .await;
    let view = org.get_ok(&app, &format!("/conversations/{conversation}")).await;
    assert_eq!(view["unread_count"], 1);
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await).3, 1);
    // Without reads, the count is the number of messages.
    org.customer_says(&app, "7002", "V", "wamid.v0", "a", 0).await;
    let other = org.conversation_of(&app, "7002").await;
    let senders = customers_write_concurrently(&app, &org.number, 4, 10, Duration::ZERO, |s, i| {
        ("7002".to_owned(), format!("wamid.v{s}-{i}"))
    });
    for s in senders {
        s.await.expect("sender");
    }
    let view = org.get_ok(&app, &format!("/conversations/{other}")).await;
    assert_eq!(view["unread_count"], 41);
    assert_eq!(counts(&org.get_ok(&app, "/conversations").await), (2, 0, 2, 2));
}

async fn api_keys_are_a_business_feature_scoped_to_their_organization(backend: Backend) {
    let app = spawn(backend).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    let other = org_with_number(&app, "other@example.com", "100000000000002").await;
    let (status, body) = app
        .post(&org.path("/api-keys"), &org.token, json!({"name": "CRM sync"}))
        .await;
    assert_problem(status, &body, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    let (status, body) = app.get(&org.path("/api-keys"), &org.token).await;
    assert_problem(status, &body, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    app.set_plan(&org.id, Plan::Business).await;
    let (status, created) = app
        .post(&org.path("/api-keys"), &org.token, json!({"name": "CRM sync"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = str_of(&created["token"]);
    // Listed without the key; only its hash is stored.
    let listed = org.get_ok(&app, "/api-keys").await;
    assert_eq!(listed["items"][0]["name"], "CRM sync");
    assert!(listed["items"][0].get("token").is_none());
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT COUNT(*) FROM api_tokens WHERE token_hash = '{key}'"
            ))
            .await,
        0
    );
    // It works as a bearer token in its organization, nowhere else.
    let (status, _) = app.get(&org.path("/conversations"), &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&other.path("/conversations"), &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Off BUSINESS it stops working; back on, it works again; revoked, it is refused.
    app.set_plan(&org.id, Plan::Pro).await;
    let (status, body) = app.get(&org.path("/conversations"), &key).await;
    assert_problem(status, &body, StatusCode::PAYMENT_REQUIRED, "plan_limit");
    app.set_plan(&org.id, Plan::Business).await;
    let (status, _) = app.get(&org.path("/labels"), &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .delete(
            &org.path(&format!("/api-keys/{}", str_of(&created["id"]))),
            &org.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&org.path("/conversations"), &key).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        org.get_ok(&app, "/api-keys").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn retention_deletes_exactly_free_history_older_than_30_days(backend: Backend) {
    let app = spawn(backend).await;
    let free = org_with_number(&app, "free@example.com", "100000000000001").await;
    let business = org_with_number(&app, "biz@example.com", "100000000000002").await;
    app.set_plan(&business.id, Plan::Business).await;
    const DAY: i64 = 86_400;
    for (org, tag) in [(&free, "f"), (&business, "b")] {
        org.customer_says(
            &app,
            "8001",
            "Old",
            &format!("wamid.{tag}-40d"),
            "forty days",
            40 * DAY,
        )
        .await;
        org.customer_says(
            &app,
            "8001",
            "Old",
            &format!("wamid.{tag}-31d"),
            "thirty-one days",
            31 * DAY,
        )
        .await;
        org.customer_says(
            &app,
            "8001",
            "Old",
            &format!("wamid.{tag}-29d"),
            "twenty-nine days",
            29 * DAY,
        )
        .await;
        org.customer_says(&app, "8002", "New", &format!("wamid.{tag}-1h"), "an hour", 3600)
            .await;
    }
    // A note on the old conversation stays (retention is about message history).
    let old = free.conversation_of(&app, "8001").await;
    app.post(
        &free.path(&format!("/conversations/{old}/notes")),
        &free.token,
        json!({"text": "keep"}),
    )
    .await;
    let done = snorq::app::retention::run(&*app.app.store, chrono::Utc::now(), chrono::Duration::hours(72))
        .await
        .expect("retention");
    assert_eq!(done.messages, 2);
    let remaining = |org: &Org| {
        format!(
            "SELECT external_id FROM messages WHERE organization_id IN (SELECT id FROM organizations WHERE name = 'Org of {}') ORDER BY external_id",
            org_email(org)
        )
    };
    let mut free_left = app.db.rows(&remaining(&free)).await;
    free_left.sort();
    assert_eq!(free_left, ["wamid.f-1h", "wamid.f-29d"]);
    assert_eq!(app.db.rows(&remaining(&business)).await.len(), 4);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM notes").await, 1);
    // The conversation stays, with what is left of its history; search no longer finds the rest.
    let history = free.get_ok(&app, &format!("/conversations/{old}/messages")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert!(free.conversation_ids(&app, "?q=forty").await.is_empty());
    assert_eq!(business.conversation_ids(&app, "?q=forty").await.len(), 1);
    // What is left is still found: the words were rebuilt, not dropped.
    assert_eq!(
        free.conversation_ids(&app, "?q=twenty%20nine").await,
        [old.as_str()]
    );
    assert_eq!(free.conversation_ids(&app, "?q=old").await, [old.as_str()]);
    assert_word_bits_are_exact(&app).await;
    // A second pass has nothing left to do.
    let again = snorq::app::retention::run(&*app.app.store, chrono::Utc::now(), chrono::Duration::hours(72))
        .await
        .expect("retention");
    assert_eq!(again.messages, 0);
}

fn org_email(org: &Org) -> &'static str {
    if org.number.ends_with('1') {
        "free@example.com"
    } else {
        "biz@example.com"
    }
}
