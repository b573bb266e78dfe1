//! The job console: jobs by state with payload, attempts, last error and
//! lease; dead jobs re-queued or discarded by an admin, each action recorded
//! with who, when and why.

use std::time::Duration;

use kassa_common::queue::{DbJobStore, Enqueued, NewJob};
use kassa_tests::app::TestApp;
use kassa_worker::jobs::Probe;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn push(app: &TestApp, probe: Probe, run_at_ms: Option<i64>) -> i64 {
    let store = DbJobStore::new(app.db().await);
    let mut job = NewJob::new(&probe).expect("probe encodes");
    if let Some(run_at_ms) = run_at_ms {
        job = job.run_at_ms(run_at_ms);
    }
    match store.push(&job).await.expect("job pushed") {
        Enqueued::Created(id) | Enqueued::Duplicate(id) => id.0,
    }
}

/// Polls the console until `GET /admin/jobs/{id}` is in `state`.
async fn wait_for_state(app: &TestApp, token: &str, job_id: i64, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let job = app.get(&format!("/admin/jobs/{job_id}"), Some(token)).await.expect(200);
        if job["state"] == state {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "job {job_id} never reached {state}: {job:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"].as_array().expect("items").iter().map(|j| j["id"].as_i64().expect("id")).collect()
}

kassa_tests::black_box! {
#[tokio::test]
async fn jobs_are_listed_by_state_with_payload_attempts_error_and_lease_holder() {
    let app = TestApp::spawn().await;
    // Retries an hour away keep a failed job in `retrying` for the whole test.
    let _worker = app.spawn_worker("w1", &[("KASSA_RETRY_BASE_MS", "3600000")]);
    let (_, admin) = app.admin("root").await;
    let dead = push(&app, Probe { key: 1, fail_permanently: true, ..Probe::default() }, None).await;
    let retrying = push(&app, Probe { key: 2, fail_attempts: 1, ..Probe::default() }, None).await;
    let running = push(&app, Probe { key: 3, hang_attempts: 1, ..Probe::default() }, None).await;
    let tomorrow_ms = kassa_common::db::now_ms() + 86_400_000;
    let pending = push(&app, Probe { key: 4, ..Probe::default() }, Some(tomorrow_ms)).await;

    let dead_job = wait_for_state(&app, &admin, dead, "dead").await;
    wait_for_state(&app, &admin, retrying, "retrying").await;
    wait_for_state(&app, &admin, running, "running").await;

    let page = app.get("/admin/jobs?state=dead", Some(&admin)).await.expect(200);
    assert_eq!((ids(&page), page["total"].as_i64()), (vec![dead], Some(1)), "{page:#}");
    let listed = &page["items"][0];
    assert_eq!(listed["job_type"], "probe");
    assert_eq!(listed["payload"]["key"], 1, "the payload is shown as JSON");
    assert_eq!(listed["attempts"], 1);
    assert!(listed["last_error"].as_str().expect("last_error").contains("fail permanently"), "{listed:#}");
    assert!(listed["run_at"].as_str().is_some() && listed["finished_at"].as_str().is_some());
    assert_eq!(dead_job["attempt_history"][0]["outcome"], "dead");

    let page = app.get("/admin/jobs?state=retrying", Some(&admin)).await.expect(200);
    assert_eq!(ids(&page), [retrying]);
    assert_eq!(page["items"][0]["attempts"], 1);
    assert!(page["items"][0]["last_error"].as_str().expect("error").contains("fail attempt 1"));

    let page = app.get("/admin/jobs?state=running", Some(&admin)).await.expect(200);
    assert_eq!(ids(&page), [running]);
    assert_eq!(page["items"][0]["lease_owner"], "w1", "the lease holder");
    assert!(page["items"][0]["lease_expires_at"].is_string());

    let page = app.get("/admin/jobs?state=pending&type=probe", Some(&admin)).await.expect(200);
    assert_eq!(ids(&page), [pending]);
    assert_eq!(page["items"][0]["attempts"], 0);
    assert_eq!(page["items"][0]["lease_owner"], Value::Null);

    let all = app.get("/admin/jobs?type=probe&limit=2&offset=1", Some(&admin)).await.expect(200);
    assert_eq!((ids(&all), all["total"].as_i64()), (vec![running, retrying], Some(4)), "newest first, paged");
    let none = app.get("/admin/jobs?type=charge", Some(&admin)).await.expect(200);
    assert_eq!(none["total"], 0);
    app.get("/admin/jobs?state=stuck", Some(&admin)).await.expect_problem(422);
    app.get("/admin/jobs?limit=0", Some(&admin)).await.expect_problem(422);

    let dashboard = app.get("/admin/dashboard", Some(&admin)).await.expect(200);
    let probe = dashboard["queue"]["job_types"]
        .as_array()
        .expect("job types")
        .iter()
        .find(|t| t["job_type"] == "probe")
        .expect("probe")
        .clone();
    assert_eq!(
        [&probe["pending"], &probe["retrying"], &probe["running"], &probe["dead"]],
        [&json!(1), &json!(1), &json!(1), &json!(1)],
        "{probe:#}"
    );
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn dead_jobs_are_retried_or_discarded_by_admins_and_each_action_is_recorded() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[("KASSA_RETRY_BASE_MS", "3600000")]);
    let (admin_id, admin) = app.admin("root").await;
    let dead = push(&app, Probe { key: 1, fail_permanently: true, ..Probe::default() }, None).await;
    let retrying = push(&app, Probe { key: 2, fail_attempts: 1, ..Probe::default() }, None).await;
    wait_for_state(&app, &admin, dead, "dead").await;
    wait_for_state(&app, &admin, retrying, "retrying").await;

    let conflict = app.post(&format!("/admin/jobs/{retrying}/retry"), Some(&admin), &json!({})).await;
    assert_eq!(conflict.expect_problem(409)["state"], "pending", "only dead jobs can be retried");
    app.post(&format!("/admin/jobs/{retrying}/discard"), Some(&admin), &json!({"reason": "no"}))
        .await
        .expect_problem(409);
    app.post("/admin/jobs/999999/retry", Some(&admin), &json!({})).await.expect_problem(404);

    let requeued = app
        .post(&format!("/admin/jobs/{dead}/retry"), Some(&admin), &json!({"reason": "gateway fixed"}))
        .await
        .expect(200);
    assert_eq!(requeued["attempts"], 0, "a fresh set of attempts: {requeued:#}");
    // The probe still fails permanently, so the worker runs it again and it dies again.
    let again = wait_for_state(&app, &admin, dead, "dead").await;
    assert_eq!(again["attempt_history"].as_array().expect("attempts").len(), 2, "it ran again: {again:#}");

    app.post(&format!("/admin/jobs/{dead}/discard"), Some(&admin), &json!({})).await.expect_problem(422);
    let discarded = app
        .post(&format!("/admin/jobs/{dead}/discard"), Some(&admin), &json!({"reason": "refunded by hand"}))
        .await
        .expect(200);
    assert_eq!(discarded["state"], "discarded");
    app.post(&format!("/admin/jobs/{dead}/retry"), Some(&admin), &json!({})).await.expect_problem(409);

    let actions = discarded["operator_actions"].as_array().expect("operator_actions");
    let recorded: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["action"].as_str().expect("action"),
                a["actor"].as_str().expect("actor"),
                a["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    let actor = format!("admin:{admin_id}");
    assert_eq!(
        recorded,
        [("requeue", actor.as_str(), "gateway fixed"), ("discard", actor.as_str(), "refunded by hand")]
    );
    assert!(actions.iter().all(|a| a["at"].as_str().is_some_and(|at| at.ends_with('Z'))), "when: {actions:#?}");
    let page = app.get("/admin/jobs?state=discarded", Some(&admin)).await.expect(200);
    assert_eq!(ids(&page), [dead]);
}
}
