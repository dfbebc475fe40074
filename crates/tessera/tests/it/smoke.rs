use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn register_login_me() {
    let app = TestApp::spawn().await;
    let (email, login) = app.user().await;
    let (status, me) = json_of(app.get("/v1/auth/me", Some(&login.access)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], email);
    app.stop().await;
}
