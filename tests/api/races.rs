//! Races: however many users, requests and server processes, no two
//! confirmed bookings overlap. Every loser gets a 409, never a 5xx.

use crate::helpers::{at, TestApp, TestUser};
use futures::future::join_all;
use serde_json::{json, Value};

async fn statuses(
    futs: Vec<impl std::future::Future<Output = reqwest::Response>>,
) -> (usize, usize, Vec<u16>) {
    let codes: Vec<u16> = join_all(futs)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let created = codes.iter().filter(|c| **c == 201).count();
    let conflicts = codes.iter().filter(|c| **c == 409).count();
    (created, conflicts, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_racing_for_one_slot_get_one_booking() {
    let app = TestApp::spawn().await;
    let users = app.users(50).await;
    let room = app.room().await;
    let (s, e) = (at(5, 9, 0), at(5, 10, 0));
    let futs = users.iter().map(|u| app.book(u, &room, &s, &e)).collect();
    let (created, conflicts, codes) = statuses(futs).await;
    assert_eq!((created, conflicts), (1, 49), "{codes:?}");
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_racing_for_overlapping_unequal_periods_get_one_booking() {
    let app = TestApp::spawn().await;
    let users = app.users(50).await;
    let room = app
        .resource(json!({"slot_minutes": 1, "min_duration_minutes": 1}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let futs = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let i = i as u32;
            app.book(u, &room, &at(5, 9, i), &at(5, 10, i))
        })
        .collect();
    let (created, conflicts, codes) = statuses(futs).await;
    assert_eq!((created, conflicts), (1, 49), "{codes:?}");
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_race_across_two_server_instances_still_yields_one_booking() {
    let app = TestApp::spawn().await;
    let other = app.another_server().await;
    let users = app.users(40).await;
    let room = app.room().await;
    let (s, e) = (at(5, 9, 0), at(5, 10, 0));
    let futs = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if i % 2 == 0 {
                app.book(u, &room, &s, &e)
            } else {
                other.book(u, &room, &s, &e)
            }
        })
        .collect();
    let (created, conflicts, codes) = statuses(futs).await;
    assert_eq!((created, conflicts), (1, 39), "{codes:?}");
    assert_eq!(app.confirmed_count(&room).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_racing_a_create_lets_at_most_one_win() {
    let app = TestApp::spawn().await;
    let (a, b): (TestUser, TestUser) = (
        app.user("+14155550300").await,
        app.user("+14155550301").await,
    );
    let room = app.room().await;
    for round in 0..10u32 {
        let day = 6 + i64::from(round);
        let mine: Value = app
            .book(&a, &room, &at(day, 8, 0), &at(day, 9, 0))
            .await
            .json()
            .await
            .expect("json");
        let path = format!("/v1/bookings/{}", mine["id"].as_str().expect("id"));
        let target = (at(day, 11, 0), at(day, 12, 0));
        let (moved, created) = tokio::join!(
            app.patch(&a.token, &path, json!({"start": target.0, "end": target.1})),
            app.book(&b, &room, &target.0, &target.1)
        );
        let (ms, cs) = (moved.status().as_u16(), created.status().as_u16());
        assert!(
            matches!((ms, cs), (200, 409) | (409, 201)),
            "round {round}: reschedule {ms}, create {cs}"
        );
        let now: Value = app.get(&a.token, &path).await.json().await.expect("json");
        if ms == 409 {
            assert_eq!(
                now["start"],
                at(day, 8, 0),
                "the loser keeps its old period"
            );
        } else {
            assert_eq!(now["start"], target.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_racing_themself_holds_one_booking() {
    let app = TestApp::spawn().await;
    let u = app.user("+14155550302").await;
    let rooms = [
        app.room().await,
        app.room().await,
        app.room().await,
        app.room().await,
    ];
    let futs = rooms
        .iter()
        .map(|r| app.book(&u, r, &at(5, 9, 0), &at(5, 10, 0)))
        .collect();
    let (created, conflicts, codes) = statuses(futs).await;
    assert_eq!((created, conflicts), (1, 3), "{codes:?}");
}
