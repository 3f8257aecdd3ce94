//! The interactive documentation page and its assets, from the binary.

use crate::helpers::{assert_problem, header, TestApp};

#[tokio::test]
async fn docs_answer_200_html_and_load_their_assets_from_the_binary() {
    let mut app = TestApp::spawn().await;
    // no redirects followed: /docs itself is the page
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut page = String::new();
    for path in ["/docs", "/docs/", "/docs/index.html"] {
        let r = client.get(app.url(path)).send().await.expect("docs");
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            header(&r, "content-type").starts_with("text/html"),
            "{path}"
        );
        page = r.text().await.expect("html");
        assert!(page.contains("swagger-ui"), "{path}");
        assert!(page.contains("<base href=\"/docs/\""), "{path}");
    }
    // every asset the page names is served, with a sensible type
    let assets: Vec<String> = page
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
        .map(|s| s.trim_start_matches("./").to_string())
        .collect();
    assert!(assets.len() >= 5, "{assets:?}");
    for a in &assets {
        let r = client
            .get(app.url(&format!("/docs/{a}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{a}");
        let ct = header(&r, "content-type");
        let want = match a.rsplit('.').next() {
            Some("js") => "javascript",
            Some("css") => "text/css",
            _ => "image/png",
        };
        assert!(ct.contains(want), "{a}: {ct}");
        assert!(!r.bytes().await.expect("bytes").is_empty(), "{a}");
    }
    let bundle = client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("bundle");
    assert!(
        bundle.bytes().await.expect("bytes").len() > 100_000,
        "the real bundle"
    );
    // the UI is pointed at our document, which is served
    let init = client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("init")
        .text()
        .await
        .expect("text");
    assert!(init.contains("\"/openapi.json\""), "{init}");
    let r = client
        .get(app.url("/docs/no-such-file.js"))
        .send()
        .await
        .expect("404");
    assert_problem(r, 404, "not_found").await;
    app.stop().await;
}
