//! End-to-end tests of the service: the real server on a random port with a fresh database per
//! test, on SQLite and on PostgreSQL, against fake platforms. One test binary; a module per
//! area of the API.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod access;
mod auth;
mod connections;
mod content;
mod dashboard;
mod dashboard_browser;
mod delivery;
mod inbox;
mod live;
mod oauth;
mod openapi;
mod orgs;
mod sends;
mod webhooks;
